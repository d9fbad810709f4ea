package dev.hotpatch.reactnative

import android.content.Context
import android.content.res.AssetManager
import dev.hotpatch.core.Agent
import dev.hotpatch.core.AgentConfig
import dev.hotpatch.core.EmbeddedBundle
import dev.hotpatch.core.Http
import dev.hotpatch.core.JvmFileSystem
import dev.hotpatch.core.Platform
import dev.hotpatch.core.UrlConnectionHttp
import java.io.File
import java.io.InputStream
import java.time.Instant

/** Where the app checks for updates: fixed in the binary, next to the trust root it embeds. */
data class HotPatchSettings(
    val serverUrl: String,
    val appId: String,
    val channel: String = "production",
    /** The trust root file in the app's assets (`android/app/src/main/assets/...`). */
    val trustRootAsset: String = "hotpatch/trust-root.json",
    /** Launches a new bundle gets to reach `notifyAppReady()` before it is rolled back. */
    val crashThreshold: Int = 2,
    /**
     * The files of the bundle in the APK's assets that `hotpatch embedded register` registered
     * (extracted from the built APK), so the first update can be a patch from them. Empty: the
     * first update is always the whole archive.
     */
    val embeddedAssets: List<String> = listOf("index.android.bundle"),
)

/** The bundle in the APK, read from its assets (which the build stores byte for byte). */
private class AssetBundle(private val assets: AssetManager, override val paths: List<String>) : EmbeddedBundle {
    override fun open(path: String): InputStream = assets.open(path)
}

/**
 * The app's entry point: call [onLaunch] in `MainApplication.onCreate()`,
 * before React Native starts, and give React Native the file it returns
 * (`getDefaultReactHost(..., jsBundleFilePath = ...)`); null means the bundle
 * embedded in the APK. It counts the launch durably (the crash counter) and
 * rolls back a bundle that reached the threshold without `notifyAppReady()`.
 */
object HotPatch {
    @Volatile
    private var running: Pair<HotPatchSettings, Agent>? = null

    /** The agent and the settings [onLaunch] created, for the native module. */
    internal val current: Pair<HotPatchSettings, Agent>? get() = running

    /** Count this launch and pick its bundle; the absolute path of the file to load, or null for the embedded one. */
    @JvmStatic
    fun onLaunch(context: Context, settings: HotPatchSettings): String? = onLaunch(context, settings, UrlConnectionHttp(), Instant::now)

    internal fun onLaunch(context: Context, settings: HotPatchSettings, http: Http, clock: () -> Instant): String? {
        val app = context.applicationContext ?: context
        val root = app.assets.open(settings.trustRootAsset).use { it.readBytes() }
        @Suppress("DEPRECATION")
        val native = app.packageManager.getPackageInfo(app.packageName, 0).versionName
            ?: error("the app has no versionName: HotPatch matches releases to it")
        val directory = File(app.filesDir, "hotpatch").apply { mkdirs() }
        val agent = Agent(
            AgentConfig(
                serverUrl = settings.serverUrl,
                appId = settings.appId,
                platform = Platform.ANDROID,
                nativeVersion = native,
                trustRoot = root,
                channel = settings.channel,
                crashThreshold = settings.crashThreshold,
                embedded = settings.embeddedAssets.takeIf { it.isNotEmpty() }?.let { AssetBundle(app.assets, it) },
            ),
            JvmFileSystem(directory),
            http,
            clock,
        )
        running = settings to agent
        return try {
            agent.onLaunch()?.let { File(directory, it).absolutePath }
        } catch (e: Exception) {
            null // an app that cannot read its update state must still start, on its embedded bundle
        }
    }
}
