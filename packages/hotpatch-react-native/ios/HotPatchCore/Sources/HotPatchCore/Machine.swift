import Foundation

/// Where the update pipeline is.
public enum Phase: String, Sendable, CaseIterable {
    case idle, root, checking, downloading, installing

    static func of(_ text: String) throws -> Phase { try wireCase(text, "a phase", field: "phase") }
}

/// The outcome an installation report carries.
public enum ReportStatus: String, Sendable {
    case applied
    case failed
    case rolledBack = "rolled_back"
}

/// Where a failure happened.
public enum ReportPhase: String, Sendable, CaseIterable {
    case download, verify, apply
    case firstLaunch = "first_launch"

    public static func of(_ text: String) throws -> ReportPhase { try wireCase(text, "a report phase", field: "phase") }
}

/// An installed, verified bundle the device can launch; `patchedFrom` names the bundle a patch was applied to.
/// (The reference calls it `Bundle`; here that name is Foundation's.)
public struct BundleInfo: Equatable, Sendable {
    public var manifestId: String
    public var version: String
    public var epoch: Int64
    public var sequence: Int64
    public var mandatory = false
    public var patchedFrom: String?

    public init(manifestId: String, version: String, epoch: Int64, sequence: Int64, mandatory: Bool = false,
                patchedFrom: String? = nil) {
        self.manifestId = manifestId
        self.version = version
        self.epoch = epoch
        self.sequence = sequence
        self.mandatory = mandatory
        self.patchedFrom = patchedFrom
    }

    public static func of(_ release: VerifiedRelease) -> BundleInfo {
        let m = release.manifest
        return BundleInfo(manifestId: release.manifestId, version: m.version, epoch: m.epoch, sequence: m.sequence,
                      mandatory: m.mandatory)
    }
}

/// A verified release being downloaded or installed, kept to resume after a restart;
/// `acceptedAt` fixes the time it is judged at.
public struct Offer: Equatable, Sendable {
    public let bundle: BundleInfo
    public let envelope: [UInt8]
    public let acceptedAt: UTCSeconds
}

/// Everything a device remembers about updates (hotpatch_core.machine.DeviceState); persisted atomically.
public struct DeviceState: Equatable, Sendable {
    public var phase: Phase = .idle
    public var nativeVersion: String?
    public var confirmed: BundleInfo?
    public var pending: BundleInfo?
    public var trial: BundleInfo?
    public var trialLaunches = 0
    public var running: BundleInfo?
    public var launched = false
    public var offer: Offer?
    public var highWater: [String: HighWaterMark] = [:]
    public var failed: [String] = []
    /// The newest trust root envelope accepted by rotation (nil: the embedded one).
    public var trustRoot: [UInt8]?
    /// Root versions taken during the check in progress (bounded by `Machine.maxRootSteps`).
    public var rootSteps = 0
    /// The newest signed time verified: expiry is judged at the later of the clock and this (A5).
    public var trustedTime: UTCSeconds?
    /// Per channel, the newest channel head time verified, give or take half the tolerance.
    public var headSeen: [String: UTCSeconds] = [:]

    public init() {}

    /// The time expiry is judged at: `now`, or the trusted time if later.
    public func judgedAt(_ now: UTCSeconds) -> UTCSeconds { max(trustedTime ?? now, now) }

    /// Bundles on disk that the device may launch.
    public func installed() -> [BundleInfo] { [confirmed, trial, pending].compactMap { $0 } }

    public static func == (lhs: DeviceState, rhs: DeviceState) -> Bool {
        StrictJSON.canonical(StateCodec.encode(lhs)) == StrictJSON.canonical(StateCodec.encode(rhs))
    }
}

/// What the app build fixes: identity, embedded trust root, crash threshold, bundle file, embedded base.
public struct DeviceConfig: Sendable {
    public let identity: DeviceIdentity
    public let trustRoot: TrustRoot
    public let crashThreshold: Int
    public let bundleFile: String?
    /// The id of the bundle in the binary, once the agent has hashed it (nil: unknown).
    public var embeddedBase: String?

    public init(identity: DeviceIdentity, trustRoot: TrustRoot, crashThreshold: Int = 2, bundleFile: String? = nil,
                embeddedBase: String? = nil) {
        self.identity = identity
        self.trustRoot = trustRoot
        self.crashThreshold = crashThreshold
        self.bundleFile = bundleFile
        self.embeddedBase = embeddedBase
    }

    /// The archive path of the bundle the JS engine loads.
    public var entryFile: String { bundleFile ?? identity.platform.entryFile }
}

/// An answer's unsigned offer of a patch from `baseManifestId`, `size` bytes long.
public struct PatchHint: Equatable, Sendable {
    public let baseManifestId: String
    public let size: Int64

    public init(baseManifestId: String, size: Int64) {
        self.baseManifestId = baseManifestId
        self.size = size
    }
}

/// The server's answer to a check, as the agent hands it to the machine.
public struct CheckAnswer: Sendable {
    public let envelope: [UInt8]?
    public let now: UTCSeconds
    public let head: [UInt8]?
    public let deviceId: String
    public let patch: PatchHint?

    public init(envelope: [UInt8]?, now: UTCSeconds, head: [UInt8]? = nil, deviceId: String = "", patch: PatchHint? = nil) {
        self.envelope = envelope
        self.now = now
        self.head = head
        self.deviceId = deviceId
        self.patch = patch
    }
}

/// What happens to a device: the agent (the native adapter) feeds these to `Machine.step`.
public enum Event: Sendable {
    /// The app process started; the JS engine has not started yet.
    case launched(nativeVersion: Version)
    /// The app rendered its first screen with the running bundle (`notifyAppReady`).
    case ready
    case checkStarted
    /// The answer to `Action.fetchRoot`: that root version's envelope, or nil if there is none.
    case rootAnswered(envelope: [UInt8]?)
    case checkAnswered(CheckAnswer)
    case checkFailed(reason: String)
    /// The archive finished downloading; the agent hashed every byte it wrote.
    case downloadFinished(sha256: String, length: Int64)
    case downloadFailed(reason: String)
    /// The archive was extracted, verified file by file, fsynced and staged.
    case installFinished
    /// Extraction or staging failed; `permanent` when the signed content itself is bad.
    case installFailed(reason: String, permanent: Bool)
    /// The app asks to switch to the staged bundle now.
    case applyRequested
    /// The work in flight stopped (the process died, storage failed): back to idle, the offer kept.
    case interrupted
    /// The release was built from a patch against `baseManifestId`, every file checked and staged.
    case patchInstalled(baseManifestId: String)
    /// Fetching (`.download`) or applying the patch failed; the archive is next.
    case patchFailed(reason: String, phase: ReportPhase)

    /// The event's name in the reference and the conformance scenarios.
    public var name: String {
        switch self {
        case .launched: return "Launched"
        case .ready: return "Ready"
        case .checkStarted: return "CheckStarted"
        case .rootAnswered: return "RootAnswered"
        case .checkAnswered: return "CheckAnswered"
        case .checkFailed: return "CheckFailed"
        case .downloadFinished: return "DownloadFinished"
        case .downloadFailed: return "DownloadFailed"
        case .installFinished: return "InstallFinished"
        case .installFailed: return "InstallFailed"
        case .applyRequested: return "ApplyRequested"
        case .interrupted: return "Interrupted"
        case .patchInstalled: return "PatchInstalled"
        case .patchFailed: return "PatchFailed"
        }
    }
}

/// An installation report the device queues for the server.
public struct Report: Equatable, Sendable {
    public let manifestId: String
    public let status: ReportStatus
    public let phase: ReportPhase?
    public let reason: String
    public let patchedFrom: String?

    public init(manifestId: String, status: ReportStatus, phase: ReportPhase? = nil, reason: String = "",
                patchedFrom: String? = nil) {
        self.manifestId = manifestId
        self.status = status
        self.phase = phase
        self.reason = reason
        self.patchedFrom = patchedFrom
    }
}

/// What the device must do, in order, after saving the state `Machine.step` returned.
public enum Action: Sendable {
    /// Start the JS engine on the bundle (nil: the bundle embedded in the binary).
    case runBundle(BundleInfo?)
    /// Ask the server for trust root `version`.
    case fetchRoot(version: Int64)
    /// Ask the server for an update, telling it what the device runs.
    case requestCheck(current: BundleInfo?, nativeVersion: String)
    /// Fetch the release's archive (resuming any partial file), capped at its signed length.
    case download(VerifiedRelease)
    /// Fetch the patch the hint offers and build the release from it, each file checked, staged.
    case fetchPatch(VerifiedRelease, PatchHint)
    /// Extract and verify the release's archive into its own directory, fsync, stage.
    case install(VerifiedRelease)
    /// Remove the partial or complete download of this manifest's archive.
    case discardDownload(manifestId: String)
    /// Remove an installed bundle's directory (never the running one).
    case deleteBundle(manifestId: String)
    /// Queue an installation report for the server, durably.
    case report(Report)
    /// Restart the app so the staged bundle runs now.
    case restartApp
    /// An answer was refused; the adapter surfaces the error to JavaScript.
    case reject(HotPatchError)

    /// The action's name in the reference and the conformance scenarios.
    public var name: String {
        switch self {
        case .runBundle: return "RunBundle"
        case .fetchRoot: return "FetchRoot"
        case .requestCheck: return "RequestCheck"
        case .download: return "Download"
        case .fetchPatch: return "FetchPatch"
        case .install: return "Install"
        case .discardDownload: return "DiscardDownload"
        case .deleteBundle: return "DeleteBundle"
        case .report: return "Report"
        case .restartApp: return "RestartApp"
        case .reject: return "Reject"
        }
    }
}

/// Trust roots loaded from a device's stored envelope, by the envelope's sha256: loading
/// verifies its signatures again once per process, which also catches a damaged file.
private final class RootCache: @unchecked Sendable {
    private let lock = NSLock()
    private var roots: [String: TrustRoot] = [:]
    private var order: [String] = []

    func root(_ envelope: [UInt8], crypto: CryptoBackend) throws -> TrustRoot {
        let key = Hex.encode(crypto.sha256(envelope))
        lock.lock()
        let cached = roots[key]
        lock.unlock()
        if let cached { return cached }
        let loaded = try TrustRoots.load(envelope, crypto: crypto)
        lock.lock()
        defer { lock.unlock() }
        if roots[key] == nil {
            roots[key] = loaded
            order.append(key)
            if order.count > 8 { roots[order.removeFirst()] = nil }
        }
        return loaded
    }
}

/// The device state machine, as hotpatch_core.machine: `step(state, event, config) -> (state, actions)`.
/// Every decision a device makes about updates lives here; the adapter saves the returned
/// state durably and only then performs the actions. An event the phase cannot take
/// throws `IllegalTransitionError` and changes nothing.
public enum Machine {
    /// How many trust root versions a device takes in one check (A10).
    public static let maxRootSteps = 16
    private static let cache = RootCache()

    public struct Result {
        public let state: DeviceState
        public let actions: [Action]
    }

    /// The root the device verifies with: the newer of the embedded and the accepted one (never back).
    public static func trustedRoot(_ state: DeviceState, _ config: DeviceConfig) throws -> TrustRoot {
        guard let stored = state.trustRoot else { return config.trustRoot }
        let accepted = try cache.root(stored, crypto: CryptoBackends.system)
        return accepted.version > config.trustRoot.version ? accepted : config.trustRoot
    }

    /// Apply `event` to `state`; return the new state and the actions to perform, in order.
    public static func step(_ state: DeviceState, _ event: Event, _ config: DeviceConfig) throws -> Result {
        let phase = state.phase
        func illegal() -> HotPatchError {
            HotPatchError(.illegalTransition, "\(event.name) is not allowed in phase '\(phase.rawValue)'")
        }
        switch event {
        case let .launched(native): return launched(state, native, config)
        case .ready: return try ready(state)
        case .applyRequested:
            guard phase == .idle else { throw illegal() }
            return try applyRequested(state)
        case .checkStarted:
            guard phase == .idle else { throw illegal() }
            var next = state
            next.phase = .root
            next.rootSteps = 0
            return Result(state: next, actions: [.fetchRoot(version: try trustedRoot(state, config).version + 1)])
        case let .rootAnswered(envelope):
            guard phase == .root else { throw illegal() }
            return try rootAnswered(state, envelope, config)
        case .checkFailed:
            guard phase == .root || phase == .checking else { throw illegal() }
            return Result(state: with(state) { $0.phase = .idle }, actions: [])
        case let .checkAnswered(answer):
            guard phase == .checking else { throw illegal() }
            return try checkAnswered(state, answer, config)
        case let .downloadFinished(sha256, length):
            guard phase == .downloading else { throw illegal() }
            return try downloadFinished(state, sha256, length, config)
        case let .downloadFailed(reason):
            guard phase == .downloading, let offer = state.offer else { throw illegal() }
            // The offer stays so the next sync resumes from the partial file.
            return Result(state: with(state) { $0.phase = .idle },
                          actions: [.report(Report(manifestId: offer.bundle.manifestId, status: .failed, phase: .download,
                                                   reason: reason))])
        case .installFinished:
            guard phase == .installing, let offer = state.offer else { throw illegal() }
            return installFinished(state, offer, patchedFrom: nil)
        case let .patchInstalled(base):
            guard phase == .downloading, let offer = state.offer else { throw illegal() }
            return installFinished(state, offer, patchedFrom: base)
        case let .patchFailed(reason, failedPhase):
            guard phase == .downloading, let offer = state.offer else { throw illegal() }
            let report = Report(manifestId: offer.bundle.manifestId, status: .failed, phase: failedPhase,
                                reason: "\(reason); fell back to the full archive")
            return Result(state: state, actions: [.report(report), .download(try offered(state, config))])
        case let .installFailed(reason, permanent):
            guard phase == .installing, let offer = state.offer else { throw illegal() }
            let id = offer.bundle.manifestId
            var next = state
            next.phase = .idle
            next.offer = nil
            if permanent { next.failed.append(id) }
            return Result(state: next, actions: [
                .discardDownload(manifestId: id), .deleteBundle(manifestId: id),
                .report(Report(manifestId: id, status: .failed, phase: .apply, reason: reason)),
            ])
        case .interrupted:
            guard phase != .idle else { throw illegal() }
            return Result(state: with(state) { $0.phase = .idle }, actions: [])
        }
    }

    private static func with(_ state: DeviceState, _ change: (inout DeviceState) -> Void) -> DeviceState {
        var copy = state
        change(&copy)
        return copy
    }

    private static func launched(_ start: DeviceState, _ nativeVersion: Version, _ config: DeviceConfig) -> Result {
        var state = start
        var actions: [Action] = []
        let native = nativeVersion.description
        // An unknown previous binary counts as a change: nothing survives that was not installed under this one.
        if state.nativeVersion != native && (!state.installed().isEmpty || state.offer != nil) {
            actions += state.installed().map { .deleteBundle(manifestId: $0.manifestId) }
            if let offer = state.offer { actions.append(.discardDownload(manifestId: offer.bundle.manifestId)) }
            state.confirmed = nil
            state.pending = nil
            state.trial = nil
            state.trialLaunches = 0
            state.offer = nil
        }
        state.phase = .idle
        state.nativeVersion = native
        state.launched = true
        if let pending = state.pending {
            // A newer bundle was staged while the trial one was unconfirmed.
            if let trial = state.trial { actions.append(.deleteBundle(manifestId: trial.manifestId)) }
            state.trial = pending
            state.pending = nil
            state.trialLaunches = 0
        }
        if let trial = state.trial {
            if state.trialLaunches >= config.crashThreshold {
                actions.append(.report(Report(manifestId: trial.manifestId, status: .rolledBack, phase: .firstLaunch,
                                              reason: "\(state.trialLaunches) launches without notify_ready")))
                actions.append(.deleteBundle(manifestId: trial.manifestId))
                state.trial = nil
                state.trialLaunches = 0
                state.failed.append(trial.manifestId)
            } else {
                state.trialLaunches += 1
                state.running = trial
                return Result(state: state, actions: actions + [.runBundle(trial)])
            }
        }
        state.running = state.confirmed
        return Result(state: state, actions: actions + [.runBundle(state.confirmed)])
    }

    private static func ready(_ state: DeviceState) throws -> Result {
        if !state.launched { throw HotPatchError(.illegalTransition, "notify_ready before on_launch") }
        guard let trial = state.trial, state.running == trial else {
            return Result(state: state, actions: []) // confirming twice is harmless
        }
        var actions: [Action] = [.report(Report(manifestId: trial.manifestId, status: .applied, patchedFrom: trial.patchedFrom))]
        if let confirmed = state.confirmed { actions.append(.deleteBundle(manifestId: confirmed.manifestId)) }
        return Result(state: with(state) {
            $0.confirmed = trial
            $0.trial = nil
            $0.trialLaunches = 0
        }, actions: actions)
    }

    private static func requestCheck(_ state: DeviceState) -> Action {
        .requestCheck(current: state.launched ? state.running : state.confirmed, nativeVersion: state.nativeVersion ?? "")
    }

    /// Drop what a new epoch invalidates and nothing has run yet: the offer and the staged bundle.
    private static func outdatedBy(_ start: DeviceState, _ root: TrustRoot) -> Result {
        var state = start
        var actions: [Action] = []
        if let offer = state.offer, offer.bundle.epoch < root.epoch {
            let dropped = dropOffer(state)
            state = dropped.state
            actions += dropped.actions
        }
        if let pending = state.pending, pending.epoch < root.epoch {
            actions.append(.deleteBundle(manifestId: pending.manifestId))
            state.pending = nil
        }
        return Result(state: state, actions: actions)
    }

    private static func rootAnswered(_ state: DeviceState, _ envelope: [UInt8]?, _ config: DeviceConfig) throws -> Result {
        guard let envelope else {
            return Result(state: with(state) { $0.phase = .checking }, actions: [requestCheck(state)])
        }
        let previous = try trustedRoot(state, config)
        let root: TrustRoot
        do {
            root = try TrustRoots.rotate(previous, envelope)
        } catch let error as HotPatchError {
            // Withheld is indistinguishable from "none newer"; forged or out of order is refused.
            return Result(state: with(state) { $0.phase = .idle }, actions: [.reject(error)])
        }
        let outdated = outdatedBy(with(state) {
            $0.trustRoot = envelope
            $0.rootSteps += 1
        }, root)
        var next = outdated.state
        if root.timestamp != previous.timestamp { next.headSeen = [:] }
        if next.rootSteps >= maxRootSteps {
            next.phase = .checking
            return Result(state: next, actions: outdated.actions + [requestCheck(next)])
        }
        return Result(state: next, actions: outdated.actions + [.fetchRoot(version: root.version + 1)])
    }

    private static func dropOffer(_ state: DeviceState) -> Result {
        guard let offer = state.offer else { return Result(state: state, actions: []) }
        return Result(state: with(state) { $0.offer = nil }, actions: [.discardDownload(manifestId: offer.bundle.manifestId)])
    }

    private static func known(_ state: DeviceState, _ manifestId: String) -> Bool {
        state.failed.contains(manifestId) || state.installed().contains { $0.manifestId == manifestId }
    }

    /// Verify the answer's channel head if the root asks for one; note when it was issued.
    private static func freshHead(
        _ start: DeviceState, _ answer: CheckAnswer, _ config: DeviceConfig, _ root: TrustRoot
    ) throws -> (DeviceState, ChannelHead?) {
        guard let role = root.timestamp else { return (start, nil) } // freshness rests on expiry alone
        guard let data = answer.head else {
            throw HotPatchError(.unsigned, "the answer carries no channel head, and the trust root requires one")
        }
        let scope = config.identity.scopeKey
        let seen = start.headSeen[scope]
        let head = try ChannelHeads.verify(
            data, role: role, identity: config.identity,
            at: answer.now, // the server's clock signs heads: not the publishers' trusted time
            newestSeen: seen, highWater: start.highWater[scope]?.position
        )
        guard let seen, head.issuedAt.seconds < seen.seconds + ChannelHeads.toleranceSeconds / 2 else {
            return (with(start) { $0.headSeen[scope] = head.issuedAt }, head)
        }
        return (start, head)
    }

    /// The error if the answer does not offer what `head` says is due to this device under `root`.
    private static func heldBack(
        _ state: DeviceState, _ answer: CheckAnswer, _ config: DeviceConfig, _ root: TrustRoot, _ head: ChannelHead,
        _ offered: String?
    ) -> HotPatchError? {
        let due = ChannelHeads.dueOffers(
            head, deviceId: answer.deviceId, native: config.identity.nativeVersion, epoch: root.epoch,
            above: state.highWater[config.identity.scopeKey]?.position, failed: state.failed
        )
        guard let due, !due.contains(where: { $0 == offered }) else { return nil }
        let what = offered.map { "offered \($0)" } ?? "offered nothing"
        return HotPatchError(.withheld, "the answer \(what), but the channel head lists \(due.sorted().first!) for this device")
    }

    private static func checkAnswered(_ state: DeviceState, _ answer: CheckAnswer, _ config: DeviceConfig) throws -> Result {
        var idle = with(state) { $0.phase = .idle }
        let root = try trustedRoot(state, config)
        let head: ChannelHead?
        do {
            (idle, head) = try freshHead(idle, answer, config, root)
        } catch let error as HotPatchError {
            return Result(state: idle, actions: [.reject(error)])
        }
        guard let envelope = answer.envelope else {
            // The server offers nothing (e.g. the rollout was paused): stop any resume.
            let dropped = dropOffer(idle)
            let held = head.flatMap { heldBack(dropped.state, answer, config, root, $0, nil) }
            return Result(state: dropped.state, actions: dropped.actions + (held.map { [.reject($0)] } ?? []))
        }
        let mark = state.highWater[config.identity.scopeKey]
        let at = state.judgedAt(answer.now)
        let release: VerifiedRelease
        do {
            release = try Releases.verify(envelope, root: root, device: config.identity, mark: mark, now: at)
        } catch let error as HotPatchError {
            return Result(state: idle, actions: [.reject(error)])
        }
        if let head {
            if !head.lists(release.manifestId) {
                return Result(state: idle, actions: [.reject(HotPatchError(.withdrawn,
                    "release \(release.manifestId) (\(release.manifest.version)) is not live: the channel head does not list it"))])
            }
            if let held = heldBack(idle, answer, config, root, head, release.manifestId) {
                return Result(state: idle, actions: [.reject(held)])
            }
        }
        let signedTime = release.manifest.createdAt
        if state.trustedTime.map({ signedTime > $0 }) ?? true { idle.trustedTime = signedTime }
        if known(state, release.manifestId) { return Result(state: idle, actions: []) } // installed, or failed for good (A19)
        return takeOffer(idle, config, release, Offer(bundle: .of(release), envelope: envelope, acceptedAt: at), answer.patch)
    }

    /// Raise the high-water mark, then fetch the release (by patch when one fits), or refuse it.
    private static func takeOffer(
        _ start: DeviceState, _ config: DeviceConfig, _ release: VerifiedRelease, _ offer: Offer, _ hint: PatchHint?
    ) -> Result {
        var idle = start
        var actions: [Action] = []
        if let current = idle.offer, current.bundle.manifestId != offer.bundle.manifestId {
            let dropped = dropOffer(idle)
            idle = dropped.state
            actions += dropped.actions
        }
        let scope = config.identity.scopeKey
        if idle.highWater[scope].map({ release.highWaterMark().position > $0.position }) ?? true {
            idle.highWater[scope] = release.highWaterMark()
        }
        let manifestId = offer.bundle.manifestId
        if !release.manifest.files.contains(where: { sameScalars($0.path, config.entryFile) }) {
            // Authentic but unusable: the JS engine could not load it. Never fetched, never again.
            let error = HotPatchError(.archiveMismatch, "the release has no \(config.entryFile) for the JS engine to load")
            idle.failed.append(manifestId)
            return Result(state: idle, actions: actions + [
                .report(Report(manifestId: manifestId, status: .failed, phase: .verify, reason: error.message)), .reject(error),
            ])
        }
        var state = idle
        state.phase = .downloading
        state.offer = offer
        if let hint, patchable(state, config, hint, release) {
            return Result(state: state, actions: actions + [.fetchPatch(release, hint)])
        }
        return Result(state: state, actions: actions + [.download(release)])
    }

    /// Take a patch only from a bundle this device has, and only if smaller than the archive.
    private static func patchable(_ state: DeviceState, _ config: DeviceConfig, _ hint: PatchHint, _ release: VerifiedRelease) -> Bool {
        if hint.size >= release.manifest.archive.length { return false }
        if hint.baseManifestId == config.embeddedBase { return true }
        return state.installed().contains { $0.manifestId == hint.baseManifestId }
    }

    /// Re-verify the stored envelope: only a VerifiedRelease may be fetched or installed, also after a restart.
    private static func offered(_ state: DeviceState, _ config: DeviceConfig) throws -> VerifiedRelease {
        guard let offer = state.offer else { throw HotPatchError(.illegalTransition, "no offer in phase '\(state.phase.rawValue)'") }
        return try Releases.verify(offer.envelope, root: try trustedRoot(state, config), device: config.identity,
                                   mark: state.highWater[config.identity.scopeKey], now: offer.acceptedAt)
    }

    private static func downloadFinished(_ state: DeviceState, _ sha256: String, _ length: Int64, _ config: DeviceConfig) throws -> Result {
        guard let offer = state.offer else { throw HotPatchError(.illegalTransition, "no offer in phase 'downloading'") }
        let release = try offered(state, config)
        let signed = release.manifest.archive
        if sha256 != signed.sha256 || length != signed.length {
            // Not marked failed: a man in the middle must not be able to blacklist a good release.
            let error = HotPatchError(.hashMismatch, "archive sha256/length \(sha256.prefix(12))…/\(length) differ from the "
                + "signed \(signed.sha256.prefix(12))…/\(signed.length)")
            let id = offer.bundle.manifestId
            return Result(state: with(state) {
                $0.phase = .idle
                $0.offer = nil
            }, actions: [.discardDownload(manifestId: id),
                         .report(Report(manifestId: id, status: .failed, phase: .verify, reason: error.message)), .reject(error)])
        }
        return Result(state: with(state) { $0.phase = .installing }, actions: [.install(release)])
    }

    private static func installFinished(_ state: DeviceState, _ offer: Offer, patchedFrom: String?) -> Result {
        var actions: [Action] = [.discardDownload(manifestId: offer.bundle.manifestId)]
        if let pending = state.pending { actions.append(.deleteBundle(manifestId: pending.manifestId)) }
        if offer.bundle.mandatory { actions.append(.restartApp) }
        var staged = offer.bundle
        if let patchedFrom { staged.patchedFrom = patchedFrom }
        return Result(state: with(state) {
            $0.phase = .idle
            $0.offer = nil
            $0.pending = staged
        }, actions: actions)
    }

    private static func applyRequested(_ state: DeviceState) throws -> Result {
        if state.pending == nil { throw HotPatchError(.illegalTransition, "apply() with no staged bundle") }
        return Result(state: state, actions: [.restartApp])
    }
}
