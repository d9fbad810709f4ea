package dev.hotpatch.core

import java.time.Instant
import java.util.Collections

/** Where the update pipeline is. */
enum class Phase(val wire: String) {
    IDLE("idle"), ROOT("root"), CHECKING("checking"), DOWNLOADING("downloading"), INSTALLING("installing");

    companion object {
        fun of(text: String): Phase = entries.firstOrNull { it.wire == text } ?: throw SchemaException("'${text.take(40)}' is not a phase", "phase")
    }
}

/** The outcome an installation report carries. */
enum class ReportStatus(val wire: String) { APPLIED("applied"), FAILED("failed"), ROLLED_BACK("rolled_back") }

/** Where a failure happened. */
enum class ReportPhase(val wire: String) {
    DOWNLOAD("download"), VERIFY("verify"), APPLY("apply"), FIRST_LAUNCH("first_launch");

    companion object {
        fun of(text: String): ReportPhase =
            entries.firstOrNull { it.wire == text } ?: throw SchemaException("'${text.take(40)}' is not a report phase", "phase")
    }
}

/** An installed, verified bundle the device can launch; [patchedFrom] names the bundle a patch was applied to. */
data class Bundle(
    val manifestId: String,
    val version: String,
    val epoch: Long,
    val sequence: Long,
    val mandatory: Boolean = false,
    val patchedFrom: String? = null,
) {
    companion object {
        fun of(release: VerifiedRelease): Bundle = release.manifest.let {
            Bundle(release.manifestId, it.version, it.epoch, it.sequence, it.mandatory)
        }
    }
}

/** A verified release being downloaded or installed, kept to resume after a restart; [acceptedAt] fixes the time it is judged at. */
class Offer(val bundle: Bundle, envelope: ByteArray, val acceptedAt: Instant) {
    private val bytes = envelope.copyOf()
    val envelope: ByteArray get() = bytes.copyOf()

    override fun equals(other: Any?): Boolean =
        other is Offer && other.bundle == bundle && other.bytes.contentEquals(bytes) && other.acceptedAt == acceptedAt

    override fun hashCode(): Int = bundle.hashCode()
}

/** Everything a device remembers about updates (hotpatch_core.machine.DeviceState); persisted atomically. */
data class DeviceState(
    val phase: Phase = Phase.IDLE,
    val nativeVersion: String? = null,
    val confirmed: Bundle? = null,
    val pending: Bundle? = null,
    val trial: Bundle? = null,
    val trialLaunches: Int = 0,
    val running: Bundle? = null,
    val launched: Boolean = false,
    val offer: Offer? = null,
    val highWater: Map<String, HighWaterMark> = emptyMap(),
    val failed: List<String> = emptyList(),
    /** The newest trust root envelope accepted by rotation (null: the embedded one). */
    val trustRoot: ByteArray? = null,
    /** Root versions taken during the check in progress (bounded by [Machine.MAX_ROOT_STEPS]). */
    val rootSteps: Int = 0,
    /** The newest signed time verified: expiry is judged at the later of the clock and this (A5). */
    val trustedTime: Instant? = null,
    /** Per channel, the newest channel head time verified, give or take half the tolerance. */
    val headSeen: Map<String, Instant> = emptyMap(),
) {
    /** The time expiry is judged at: [now], or the trusted time if later. */
    fun judgedAt(now: Instant): Instant = trustedTime?.takeIf { it.isAfter(now) } ?: now

    /** Bundles on disk that the device may launch. */
    fun installed(): List<Bundle> = listOfNotNull(confirmed, trial, pending)

    override fun equals(other: Any?): Boolean =
        other is DeviceState && StateCodec.encode(this) == StateCodec.encode(other)

    override fun hashCode(): Int = StateCodec.encode(this).hashCode()
}

/** What the app build fixes: identity, embedded trust root, crash threshold, bundle file, embedded base. */
data class DeviceConfig(
    val identity: DeviceIdentity,
    val trustRoot: TrustRoot,
    val crashThreshold: Int = 2,
    val bundleFile: String? = null,
    val embeddedBase: String? = null,
) {
    /** The archive path of the bundle the JS engine loads. */
    val entryFile: String get() = bundleFile ?: identity.platform.entryFile
}

/** An answer's unsigned offer of a patch from [baseManifestId], [size] bytes long. */
data class PatchHint(val baseManifestId: String, val size: Long)

/** What happens to a device: the agent (the native adapter) feeds these to [Machine.step]. */
sealed interface Event {
    /** The app process started; the JS engine has not started yet. */
    data class Launched(val nativeVersion: Version) : Event

    /** The app rendered its first screen with the running bundle (`notifyAppReady`). */
    data object Ready : Event

    data object CheckStarted : Event

    /** The answer to [Action.FetchRoot]: that root version's envelope, or null if there is none. */
    class RootAnswered(val envelope: ByteArray?) : Event

    /** The server answered: a release envelope or null, the channel head, the device id sent, a patch hint. */
    class CheckAnswered(
        val envelope: ByteArray?,
        val now: Instant,
        val head: ByteArray? = null,
        val deviceId: String = "",
        val patch: PatchHint? = null,
    ) : Event

    data class CheckFailed(val reason: String) : Event

    /** The archive finished downloading; the agent hashed every byte it wrote. */
    data class DownloadFinished(val sha256: String, val length: Long) : Event

    data class DownloadFailed(val reason: String) : Event

    /** The archive was extracted, verified file by file, fsynced and staged. */
    data object InstallFinished : Event

    /** Extraction or staging failed; [permanent] when the signed content itself is bad. */
    data class InstallFailed(val reason: String, val permanent: Boolean) : Event

    /** The app asks to switch to the staged bundle now. */
    data object ApplyRequested : Event

    /** The work in flight stopped (the process died, storage failed): back to idle, the offer kept. */
    data object Interrupted : Event

    /** The release was built from a patch against [baseManifestId], every file checked and staged. */
    data class PatchInstalled(val baseManifestId: String) : Event

    /** Fetching ([ReportPhase.DOWNLOAD]) or applying the patch failed; the archive is next. */
    data class PatchFailed(val reason: String, val phase: ReportPhase) : Event
}

/** What the device must do, in order, after saving the state [Machine.step] returned. */
sealed interface Action {
    /** Start the JS engine on [bundle] (null: the bundle embedded in the binary). */
    data class RunBundle(val bundle: Bundle?) : Action

    /** Ask the server for trust root [version]. */
    data class FetchRoot(val version: Long) : Action

    /** Ask the server for an update, telling it what the device runs. */
    data class RequestCheck(val current: Bundle?, val nativeVersion: String) : Action

    /** Fetch [release]'s archive (resuming any partial file), capped at its signed length. */
    class Download(val release: VerifiedRelease) : Action

    /** Fetch the patch [hint] offers and build [release] from it, each file checked, staged. */
    class FetchPatch(val release: VerifiedRelease, val hint: PatchHint) : Action

    /** Extract and verify [release]'s archive into its own directory, fsync, stage. */
    class Install(val release: VerifiedRelease) : Action

    /** Remove the partial or complete download of this manifest's archive. */
    data class DiscardDownload(val manifestId: String) : Action

    /** Remove an installed bundle's directory (never the running one). */
    data class DeleteBundle(val manifestId: String) : Action

    /** Queue an installation report for the server, durably. */
    data class Report(
        val manifestId: String,
        val status: ReportStatus,
        val phase: ReportPhase? = null,
        val reason: String = "",
        val patchedFrom: String? = null,
    ) : Action

    /** Restart the app so the staged bundle runs now. */
    data object RestartApp : Action

    /** An answer was refused; the adapter surfaces [error] to JavaScript. */
    class Reject(val error: HotPatchException) : Action
}

/**
 * The device state machine, as hotpatch_core.machine: `step(state, event,
 * config) -> (state, actions)`. Every decision a device makes about updates
 * lives here; the adapter saves the returned state durably and only then
 * performs the actions. An event the phase cannot take throws
 * [IllegalTransitionException] and changes nothing.
 */
object Machine {
    /** How many trust root versions a device takes in one check (A10). */
    const val MAX_ROOT_STEPS = 16

    data class Result(val state: DeviceState, val actions: List<Action>)

    private val rootCache: MutableMap<String, TrustRoot> =
        Collections.synchronizedMap(object : LinkedHashMap<String, TrustRoot>(8, 0.75f, true) {
            override fun removeEldestEntry(eldest: MutableMap.MutableEntry<String, TrustRoot>?) = size > 8
        })

    /** The root the device verifies with: the newer of the embedded and the accepted one (never back). */
    fun trustedRoot(state: DeviceState, config: DeviceConfig): TrustRoot {
        val stored = state.trustRoot ?: return config.trustRoot
        // Loading checks its own signatures again, once per process, which also catches a damaged file.
        val accepted = rootCache.getOrPut(sha256Hex(stored)) { TrustRoots.load(stored) }
        return if (accepted.version > config.trustRoot.version) accepted else config.trustRoot
    }

    /** Apply [event] to [state]; return the new state and the actions to perform, in order. */
    fun step(state: DeviceState, event: Event, config: DeviceConfig): Result {
        val phase = state.phase
        fun illegal(): Nothing {
            val name = event::class.simpleName
            throw IllegalTransitionException("$name is not allowed in phase '${phase.wire}'")
        }
        return when (event) {
            is Event.Launched -> launched(state, event, config)
            is Event.Ready -> ready(state)
            is Event.ApplyRequested -> if (phase == Phase.IDLE) applyRequested(state) else illegal()
            is Event.CheckStarted -> if (phase == Phase.IDLE) checkStarted(state, config) else illegal()
            is Event.RootAnswered -> if (phase == Phase.ROOT) rootAnswered(state, event, config) else illegal()
            is Event.CheckFailed -> if (phase == Phase.ROOT || phase == Phase.CHECKING) Result(state.copy(phase = Phase.IDLE), emptyList()) else illegal()
            is Event.CheckAnswered -> if (phase == Phase.CHECKING) checkAnswered(state, event, config) else illegal()
            is Event.DownloadFinished -> if (phase == Phase.DOWNLOADING) downloadFinished(state, event, config) else illegal()
            is Event.DownloadFailed -> if (phase == Phase.DOWNLOADING) downloadFailed(state, event) else illegal()
            is Event.InstallFinished -> if (phase == Phase.INSTALLING) installFinished(state, null) else illegal()
            is Event.PatchInstalled -> if (phase == Phase.DOWNLOADING) installFinished(state, event.baseManifestId) else illegal()
            is Event.PatchFailed -> if (phase == Phase.DOWNLOADING) patchFailed(state, event, config) else illegal()
            is Event.InstallFailed -> if (phase == Phase.INSTALLING) installFailed(state, event) else illegal()
            is Event.Interrupted -> if (phase != Phase.IDLE) Result(state.copy(phase = Phase.IDLE), emptyList()) else illegal()
        }
    }

    private fun launched(start: DeviceState, event: Event.Launched, config: DeviceConfig): Result {
        var state = start
        val actions = mutableListOf<Action>()
        val native = event.nativeVersion.toString()
        // An unknown previous binary counts as a change: nothing survives that was not installed under this one.
        if (state.nativeVersion != native && (state.installed().isNotEmpty() || state.offer != null)) {
            state.installed().forEach { actions.add(Action.DeleteBundle(it.manifestId)) }
            state.offer?.let { actions.add(Action.DiscardDownload(it.bundle.manifestId)) }
            state = state.copy(confirmed = null, pending = null, trial = null, trialLaunches = 0, offer = null)
        }
        state = state.copy(phase = Phase.IDLE, nativeVersion = native, launched = true)
        val pending = state.pending
        if (pending != null) {
            // A newer bundle was staged while the trial one was unconfirmed.
            state.trial?.let { actions.add(Action.DeleteBundle(it.manifestId)) }
            state = state.copy(trial = pending, pending = null, trialLaunches = 0)
        }
        val trial = state.trial
        if (trial != null) {
            if (state.trialLaunches >= config.crashThreshold) {
                actions.add(
                    Action.Report(trial.manifestId, ReportStatus.ROLLED_BACK, ReportPhase.FIRST_LAUNCH, "${state.trialLaunches} launches without notify_ready"),
                )
                actions.add(Action.DeleteBundle(trial.manifestId))
                state = state.copy(trial = null, trialLaunches = 0, failed = state.failed + trial.manifestId)
            } else {
                state = state.copy(trialLaunches = state.trialLaunches + 1, running = trial)
                return Result(state, actions + Action.RunBundle(trial))
            }
        }
        state = state.copy(running = state.confirmed)
        return Result(state, actions + Action.RunBundle(state.confirmed))
    }

    private fun ready(state: DeviceState): Result {
        if (!state.launched) throw IllegalTransitionException("notify_ready before on_launch")
        val trial = state.trial
        if (trial == null || state.running != trial) return Result(state, emptyList()) // confirming twice is harmless
        val actions = mutableListOf<Action>(Action.Report(trial.manifestId, ReportStatus.APPLIED, patchedFrom = trial.patchedFrom))
        state.confirmed?.let { actions.add(Action.DeleteBundle(it.manifestId)) }
        return Result(state.copy(confirmed = trial, trial = null, trialLaunches = 0), actions)
    }

    private fun requestCheck(state: DeviceState): Action.RequestCheck =
        Action.RequestCheck(if (state.launched) state.running else state.confirmed, state.nativeVersion ?: "")

    private fun checkStarted(state: DeviceState, config: DeviceConfig): Result =
        Result(state.copy(phase = Phase.ROOT, rootSteps = 0), listOf(Action.FetchRoot(trustedRoot(state, config).version + 1)))

    /** Drop what a new epoch invalidates and nothing has run yet: the offer and the staged bundle. */
    private fun outdatedBy(start: DeviceState, root: TrustRoot): Result {
        var state = start
        val actions = mutableListOf<Action>()
        val offer = state.offer
        if (offer != null && offer.bundle.epoch < root.epoch) {
            val dropped = dropOffer(state)
            state = dropped.state
            actions += dropped.actions
        }
        val pending = state.pending
        if (pending != null && pending.epoch < root.epoch) {
            actions.add(Action.DeleteBundle(pending.manifestId))
            state = state.copy(pending = null)
        }
        return Result(state, actions)
    }

    private fun rootAnswered(state: DeviceState, event: Event.RootAnswered, config: DeviceConfig): Result {
        val envelope = event.envelope ?: return Result(state.copy(phase = Phase.CHECKING), listOf(requestCheck(state)))
        val previous = trustedRoot(state, config)
        val root = try {
            TrustRoots.rotate(previous, envelope)
        } catch (e: HotPatchException) {
            // Withheld is indistinguishable from "none newer"; forged or out of order is refused.
            return Result(state.copy(phase = Phase.IDLE), listOf(Action.Reject(e)))
        }
        val outdated = outdatedBy(state.copy(trustRoot = envelope, rootSteps = state.rootSteps + 1), root)
        var next = outdated.state
        if (root.timestamp != previous.timestamp) next = next.copy(headSeen = emptyMap())
        if (next.rootSteps >= MAX_ROOT_STEPS) {
            return Result(next.copy(phase = Phase.CHECKING), outdated.actions + requestCheck(next))
        }
        return Result(next, outdated.actions + Action.FetchRoot(root.version + 1))
    }

    private fun dropOffer(state: DeviceState): Result {
        val offer = state.offer ?: return Result(state, emptyList())
        return Result(state.copy(offer = null), listOf(Action.DiscardDownload(offer.bundle.manifestId)))
    }

    private fun known(state: DeviceState, manifestId: String): Boolean =
        manifestId in state.failed || state.installed().any { it.manifestId == manifestId }

    /** Verify the answer's channel head if the root asks for one; note when it was issued. */
    private fun freshHead(start: DeviceState, event: Event.CheckAnswered, config: DeviceConfig, root: TrustRoot): Pair<DeviceState, ChannelHead?> {
        val role = root.timestamp ?: return start to null // no head asked for: freshness rests on expiry alone
        val data = event.head ?: throw UnsignedException("the answer carries no channel head, and the trust root requires one")
        val scope = config.identity.scopeKey
        val seen = start.headSeen[scope]
        val head = ChannelHeads.verify(
            data, role, config.identity,
            at = event.now, // the server's clock signs heads: not the publishers' trusted time
            newestSeen = seen, highWater = start.highWater[scope]?.position,
        )
        val state = if (seen == null || !head.issuedAt.isBefore(seen.plus(ChannelHeads.TOLERANCE.dividedBy(2)))) {
            start.copy(headSeen = start.headSeen + (scope to head.issuedAt))
        } else {
            start
        }
        return state to head
    }

    /** The error if the answer does not offer what [head] says is due to this device under [root]. */
    private fun heldBack(state: DeviceState, event: Event.CheckAnswered, config: DeviceConfig, root: TrustRoot, head: ChannelHead, offered: String?): WithheldException? {
        val due = ChannelHeads.dueOffers(
            head, event.deviceId, config.identity.nativeVersion, root.epoch,
            state.highWater[config.identity.scopeKey]?.position, state.failed,
        )
        if (due == null || offered in due) return null
        val what = if (offered != null) "offered $offered" else "offered nothing"
        return WithheldException("the answer $what, but the channel head lists ${due.sorted().first()} for this device")
    }

    private fun contradicts(state: DeviceState, event: Event.CheckAnswered, config: DeviceConfig, root: TrustRoot, head: ChannelHead, release: VerifiedRelease): FreshnessException? {
        if (!head.lists(release.manifestId)) {
            return WithdrawnException(
                "release ${release.manifestId} (${release.manifest.version}) is not live: the channel head does not list it",
            )
        }
        return heldBack(state, event, config, root, head, release.manifestId)
    }

    private fun checkAnswered(state: DeviceState, event: Event.CheckAnswered, config: DeviceConfig): Result {
        var idle = state.copy(phase = Phase.IDLE)
        val root = trustedRoot(state, config)
        val head = try {
            freshHead(idle, event, config, root).let { (fresh, head) -> idle = fresh; head }
        } catch (e: HotPatchException) {
            return Result(idle, listOf(Action.Reject(e)))
        }
        val envelope = event.envelope
        if (envelope == null) {
            // The server offers nothing (e.g. the rollout was paused): stop any resume.
            val dropped = dropOffer(idle)
            val held = head?.let { heldBack(dropped.state, event, config, root, it, null) }
            return Result(dropped.state, dropped.actions + listOfNotNull(held?.let { Action.Reject(it) }))
        }
        val mark = state.highWater[config.identity.scopeKey]
        val at = state.judgedAt(event.now)
        val release = try {
            Releases.verify(envelope, root, config.identity, mark, at)
        } catch (e: HotPatchException) {
            return Result(idle, listOf(Action.Reject(e)))
        }
        val contradiction = head?.let { contradicts(idle, event, config, root, it, release) }
        if (contradiction != null) return Result(idle, listOf(Action.Reject(contradiction)))
        val signedTime = release.manifest.createdAt
        val trusted = state.trustedTime
        if (trusted == null || signedTime.isAfter(trusted)) idle = idle.copy(trustedTime = signedTime)
        if (known(state, release.manifestId)) return Result(idle, emptyList()) // installed already, or failed for good (A19)
        return takeOffer(idle, config, release, Offer(Bundle.of(release), envelope, at), event.patch)
    }

    /** Raise the high-water mark, then fetch the release (by patch when one fits), or refuse it. */
    private fun takeOffer(start: DeviceState, config: DeviceConfig, release: VerifiedRelease, offer: Offer, hint: PatchHint?): Result {
        var idle = start
        val actions = mutableListOf<Action>()
        if (idle.offer != null && idle.offer?.bundle?.manifestId != offer.bundle.manifestId) {
            val dropped = dropOffer(idle)
            idle = dropped.state
            actions += dropped.actions
        }
        val scope = config.identity.scopeKey
        val mark = idle.highWater[scope]
        if (mark == null || release.highWaterMark().position > mark.position) {
            idle = idle.copy(highWater = idle.highWater + (scope to release.highWaterMark()))
        }
        val manifestId = offer.bundle.manifestId
        if (release.manifest.files.none { it.path == config.entryFile }) {
            // Authentic but unusable: the JS engine could not load it. Never fetched, never again.
            val error = ArchiveMismatchException("the release has no ${config.entryFile} for the JS engine to load")
            return Result(
                idle.copy(failed = idle.failed + manifestId),
                actions + Action.Report(manifestId, ReportStatus.FAILED, ReportPhase.VERIFY, error.message ?: "") + Action.Reject(error),
            )
        }
        val state = idle.copy(phase = Phase.DOWNLOADING, offer = offer)
        if (hint != null && patchable(state, config, hint, release)) return Result(state, actions + Action.FetchPatch(release, hint))
        return Result(state, actions + Action.Download(release))
    }

    /** Take a patch only from a bundle this device has, and only if smaller than the archive. */
    private fun patchable(state: DeviceState, config: DeviceConfig, hint: PatchHint, release: VerifiedRelease): Boolean {
        if (hint.size >= release.manifest.archive.length) return false
        if (hint.baseManifestId == config.embeddedBase) return true
        return state.installed().any { it.manifestId == hint.baseManifestId }
    }

    /** Re-verify the stored envelope: only a VerifiedRelease may be fetched or installed, also after a restart. */
    private fun offered(state: DeviceState, config: DeviceConfig): VerifiedRelease {
        val offer = state.offer ?: error("the phase guarantees an offer")
        return Releases.verify(offer.envelope, trustedRoot(state, config), config.identity, state.highWater[config.identity.scopeKey], offer.acceptedAt)
    }

    private fun downloadFinished(state: DeviceState, event: Event.DownloadFinished, config: DeviceConfig): Result {
        val offer = state.offer ?: error("the DOWNLOADING phase always has an offer")
        val release = offered(state, config)
        val signed = release.manifest.archive
        if (event.sha256 != signed.sha256 || event.length != signed.length) {
            // Not marked failed: a man in the middle must not be able to blacklist a good release.
            val error = HashMismatchException(
                "archive sha256/length ${event.sha256.take(12)}…/${event.length} differ from the signed ${signed.sha256.take(12)}…/${signed.length}",
            )
            val id = offer.bundle.manifestId
            return Result(
                state.copy(phase = Phase.IDLE, offer = null),
                listOf(Action.DiscardDownload(id), Action.Report(id, ReportStatus.FAILED, ReportPhase.VERIFY, error.message ?: ""), Action.Reject(error)),
            )
        }
        return Result(state.copy(phase = Phase.INSTALLING), listOf(Action.Install(release)))
    }

    private fun patchFailed(state: DeviceState, event: Event.PatchFailed, config: DeviceConfig): Result {
        val offer = state.offer ?: error("the DOWNLOADING phase always has an offer")
        val reason = "${event.reason}; fell back to the full archive"
        return Result(state, listOf(Action.Report(offer.bundle.manifestId, ReportStatus.FAILED, event.phase, reason), Action.Download(offered(state, config))))
    }

    private fun downloadFailed(state: DeviceState, event: Event.DownloadFailed): Result {
        val offer = state.offer ?: error("the DOWNLOADING phase always has an offer")
        // The offer stays so the next sync resumes from the partial file.
        return Result(state.copy(phase = Phase.IDLE), listOf(Action.Report(offer.bundle.manifestId, ReportStatus.FAILED, ReportPhase.DOWNLOAD, event.reason)))
    }

    private fun installFinished(state: DeviceState, patchedFrom: String?): Result {
        val offer = state.offer ?: error("the phase always has an offer")
        val actions = mutableListOf<Action>(Action.DiscardDownload(offer.bundle.manifestId))
        state.pending?.let { actions.add(Action.DeleteBundle(it.manifestId)) }
        if (offer.bundle.mandatory) actions.add(Action.RestartApp)
        val staged = if (patchedFrom != null) offer.bundle.copy(patchedFrom = patchedFrom) else offer.bundle
        return Result(state.copy(phase = Phase.IDLE, offer = null, pending = staged), actions)
    }

    private fun installFailed(state: DeviceState, event: Event.InstallFailed): Result {
        val offer = state.offer ?: error("the INSTALLING phase always has an offer")
        val id = offer.bundle.manifestId
        val failed = if (event.permanent) state.failed + id else state.failed
        return Result(
            state.copy(phase = Phase.IDLE, offer = null, failed = failed),
            listOf(Action.DiscardDownload(id), Action.DeleteBundle(id), Action.Report(id, ReportStatus.FAILED, ReportPhase.APPLY, event.reason)),
        )
    }

    private fun applyRequested(state: DeviceState): Result {
        if (state.pending == null) throw IllegalTransitionException("apply() with no staged bundle")
        return Result(state, listOf(Action.RestartApp))
    }
}
