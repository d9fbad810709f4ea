package dev.hotpatch.reactnative

import android.content.Intent
import com.facebook.react.bridge.Arguments
import com.facebook.react.bridge.Promise
import com.facebook.react.bridge.ReactApplicationContext
import com.facebook.react.bridge.ReadableMap
import com.facebook.react.bridge.WritableMap
import dev.hotpatch.core.Agent
import dev.hotpatch.core.Bundle
import dev.hotpatch.core.HotPatchException
import dev.hotpatch.core.IllegalTransitionException
import dev.hotpatch.core.NetworkException
import dev.hotpatch.core.StorageException
import dev.hotpatch.core.VerifiedRelease
import java.util.concurrent.Executor
import java.util.concurrent.Executors

/**
 * The native module the JavaScript layer calls (`src/native.ts`), on the
 * spec React Native's codegen generates from `src/NativeHotPatch.ts`.
 * Every decision is the core's: this class only moves calls to a background
 * thread and answers in React Native's types. Rejections carry
 * `{code, message, userInfo: {reason}}` with the codes of `src/errors.ts`.
 */
class HotPatchModule internal constructor(
    context: ReactApplicationContext,
    private val background: Executor,
    private val exit: () -> Unit,
    private val newMap: () -> WritableMap,
) : NativeHotPatchSpec(context) {
    constructor(context: ReactApplicationContext) :
        this(context, Executors.newSingleThreadExecutor(), { Runtime.getRuntime().exit(0) }, Arguments::createMap)

    @Volatile
    private var configured = false

    override fun configure(config: ReadableMap, promise: Promise) {
        val (settings, _) = HotPatch.current ?: return promise.reject(
            "E_NOT_CONFIGURED",
            "HotPatch.onLaunch() was not called in MainApplication.onCreate()",
            reason("NotLaunched"),
        )
        val given = listOf("serverUrl", "appId", "channel").associateWith { if (config.hasKey(it)) config.getString(it) else null }
        val expected = mapOf("serverUrl" to settings.serverUrl, "appId" to settings.appId, "channel" to settings.channel)
        val differs = expected.keys.filter { given[it] != expected[it] }
        if (differs.isNotEmpty()) {
            return promise.reject(
                "E_INVALID_CONFIG",
                "configure() says ${differs.joinToString { "$it=${given[it]}" }}, the app binary says " +
                    differs.joinToString { "$it=${expected[it]}" } + " (HotPatchSettings in MainApplication)",
                reason("ConfigMismatch"),
            )
        }
        configured = true
        promise.resolve(null)
    }

    override fun checkForUpdate(promise: Promise) = run(promise) { agent ->
        sendReports(agent) // what earlier launches left queued (a rollback, a confirmation) goes first
        agent.checkForUpdate()?.let { update(it, agent.offeredPatchSize) }
    }

    override fun downloadUpdate(manifestId: String, promise: Promise) = run(promise) { agent ->
        agent.downloadUpdate(manifestId) { stage, done, total ->
            val event = newMap()
            event.putString("stage", stage)
            event.putDouble("done", done.toDouble())
            event.putDouble("total", total.toDouble())
            reactApplicationContext.emitDeviceEvent(PROGRESS_EVENT, event)
        }
        bundle(checkNotNull(agent.currentState.pending) { "a downloaded release is staged" })
    }

    override fun notifyAppReady(promise: Promise) = run(promise, then = ::sendReports) { agent ->
        agent.notifyReady()
        null
    }

    override fun getStatus(promise: Promise) {
        val agent = HotPatch.current?.second
        val status = newMap()
        status.putBoolean("configured", configured && agent != null)
        if (agent == null) {
            status.putString("nativeVersion", "")
            status.putNull("running")
            status.putNull("pending")
            status.putBoolean("onTrial", false)
            return promise.resolve(status)
        }
        val state = agent.currentState
        status.putString("nativeVersion", state.nativeVersion ?: "")
        state.running?.let { status.putMap("running", bundle(it)) } ?: status.putNull("running")
        state.pending?.let { status.putMap("pending", bundle(it)) } ?: status.putNull("pending")
        status.putBoolean("onTrial", state.trial != null && state.running == state.trial)
        promise.resolve(status)
    }

    /** Restart the app: React Native reads its bundle file once, so a staged bundle runs only in a new process. */
    override fun restartApp() {
        val context = reactApplicationContext
        val intent = context.packageManager.getLaunchIntentForPackage(context.packageName) ?: return
        intent.addFlags(Intent.FLAG_ACTIVITY_NEW_TASK or Intent.FLAG_ACTIVITY_CLEAR_TASK)
        context.startActivity(intent)
        exit()
    }

    override fun addListener(eventName: String) = Unit

    override fun removeListeners(count: Double) = Unit

    /** Do [work] on the background thread and settle [promise] with it; then [then], if it succeeded. */
    private fun run(promise: Promise, then: (Agent) -> Unit = {}, work: (Agent) -> Any?) {
        val agent = HotPatch.current?.second
        if (agent == null || !configured) {
            return promise.reject("E_NOT_CONFIGURED", "call configure() first (and HotPatch.onLaunch() in MainApplication)", reason("NotConfigured"))
        }
        background.execute {
            try {
                promise.resolve(work(agent))
            } catch (e: HotPatchException) {
                return@execute promise.reject(code(e), e.message ?: e.reason, reason(e.reason))
            } catch (e: RuntimeException) {
                return@execute promise.reject("E_UNKNOWN", e.message ?: e.toString(), reason(e.javaClass.simpleName))
            }
            then(agent)
        }
    }

    /**
     * Send the queued installation reports (installed, confirmed, rolled back);
     * the server's release health counts them. One that cannot go now stays
     * queued for the next check or confirmation.
     */
    private fun sendReports(agent: Agent) {
        try {
            agent.flushReports()
        } catch (e: HotPatchException) {
            // The storage could not be read: the reports wait, the update goes on.
        }
    }

    private fun reason(text: String): WritableMap = newMap().apply { putString("reason", text) }

    /** The offer for JavaScript; [patchSize] when the release will come as a patch of that many bytes. */
    private fun update(release: VerifiedRelease, patchSize: Long?): WritableMap = newMap().apply {
        val manifest = release.manifest
        putString("manifestId", release.manifestId)
        putString("version", manifest.version)
        putDouble("epoch", manifest.epoch.toDouble())
        putDouble("sequence", manifest.sequence.toDouble())
        putBoolean("mandatory", manifest.mandatory)
        putDouble("downloadSize", (patchSize ?: manifest.archive.length).toDouble())
        putBoolean("isPatch", patchSize != null)
    }

    private fun bundle(bundle: Bundle): WritableMap = newMap().apply {
        putString("manifestId", bundle.manifestId)
        putString("version", bundle.version)
        putDouble("epoch", bundle.epoch.toDouble())
        putDouble("sequence", bundle.sequence.toDouble())
    }

    /** The context events go to (tests read their fake's events through it). */
    internal fun reactApplicationContextForTests(): ReactApplicationContext = reactApplicationContext

    companion object {
        const val PROGRESS_EVENT = "HotPatchProgress"

        /** The JavaScript error code of a refusal or failure (`src/errors.ts`). */
        fun code(error: HotPatchException): String = when (error) {
            is NetworkException -> "E_NETWORK"
            is StorageException -> "E_STORAGE"
            is IllegalTransitionException -> "E_NO_UPDATE"
            else -> "E_VERIFICATION"
        }
    }
}
