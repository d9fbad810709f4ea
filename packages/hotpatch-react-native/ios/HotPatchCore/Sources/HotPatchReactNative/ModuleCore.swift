import Foundation
#if canImport(HotPatchCore)
import HotPatchCore // a separate module in the Swift package; one module with it in the pod
#endif

/// A rejection as the JavaScript layer reads it: `{code, message, userInfo: {reason}}`
/// with the codes of `src/errors.ts`.
public struct ModuleError: Error, Equatable {
    public let code: String
    public let message: String
    public let reason: String

    /// The JavaScript error code of a refusal or failure.
    public static func code(_ error: HotPatchError) -> String {
        switch error.reason {
        case .network: return "E_NETWORK"
        case .storage: return "E_STORAGE"
        case .illegalTransition: return "E_NO_UPDATE"
        default: return "E_VERIFICATION"
        }
    }

    init(_ error: HotPatchError) {
        code = Self.code(error)
        message = error.message
        reason = error.reason.rawValue
    }

    init(code: String, message: String, reason: String) {
        self.code = code
        self.message = message
        self.reason = reason
    }
}

/// What the native module does (`src/native.ts`), in Foundation types: the iOS bridge
/// only forwards React Native's calls here and hands back what it resolves or rejects.
/// Every decision is the core's; this class moves calls to a background queue and
/// answers in dictionaries React Native converts (numbers as `Double`, absent as `NSNull`).
public final class ModuleCore {
    public static let progressEvent = "HotPatchProgress"

    public typealias Resolve = (Any?) -> Void
    public typealias Reject = (ModuleError) -> Void

    private let queue: DispatchQueue
    private let emit: (String, [String: Any]) -> Void
    private let lock = NSLock()
    private var configuredFlag = false

    /// Whether `configure()` succeeded (read from any queue).
    private var configured: Bool {
        get {
            lock.lock()
            defer { lock.unlock() }
            return configuredFlag
        }
        set {
            lock.lock()
            configuredFlag = newValue
            lock.unlock()
        }
    }

    /// `emit` sends an event to JavaScript (the module's event emitter).
    public init(queue: DispatchQueue = DispatchQueue(label: "dev.hotpatch.module"),
                emit: @escaping (String, [String: Any]) -> Void) {
        self.queue = queue
        self.emit = emit
    }

    public func configure(_ config: [String: Any], resolve: Resolve, reject: Reject) {
        guard let settings = HotPatch.current?.settings else {
            return reject(ModuleError(code: "E_NOT_CONFIGURED",
                                      message: "HotPatch.onLaunch() was not called in the app delegate", reason: "NotLaunched"))
        }
        let expected = [("serverUrl", settings.serverUrl), ("appId", settings.appId), ("channel", settings.channel)]
        let differs = expected.filter { key, value in (config[key] as? String) != value }
        if !differs.isEmpty {
            let given = differs.map { "\($0.0)=\(config[$0.0].map { "\($0)" } ?? "nil")" }.joined(separator: ", ")
            let wanted = differs.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")
            return reject(ModuleError(code: "E_INVALID_CONFIG",
                                      message: "configure() says \(given), the app binary says \(wanted) (HotPatchSettings in the app delegate)",
                                      reason: "ConfigMismatch"))
        }
        configured = true
        resolve(nil)
    }

    public func checkForUpdate(resolve: @escaping Resolve, reject: @escaping Reject) {
        run(resolve, reject) { agent in
            Self.sendReports(agent) // what earlier launches left queued (a rollback, a confirmation) goes first
            guard let release = try agent.checkForUpdate() else { return NSNull() }
            let manifest = release.manifest
            let patchSize = agent.offeredPatchSize // the release comes as a patch of that many bytes
            return [
                "manifestId": release.manifestId, "version": manifest.version, "epoch": Double(manifest.epoch),
                "sequence": Double(manifest.sequence), "mandatory": manifest.mandatory,
                "downloadSize": Double(patchSize ?? manifest.archive.length), "isPatch": patchSize != nil,
            ] as [String: Any]
        }
    }

    public func downloadUpdate(_ manifestId: String, resolve: @escaping Resolve, reject: @escaping Reject) {
        run(resolve, reject) { [emit] agent in
            _ = try agent.downloadUpdate(manifestId) { stage, done, total in
                emit(Self.progressEvent, ["stage": stage, "done": Double(done), "total": Double(total)])
            }
            guard let pending = agent.currentState.pending else {
                throw HotPatchError(.illegalTransition, "the downloaded release is not staged")
            }
            return Self.bundle(pending)
        }
    }

    public func notifyAppReady(resolve: @escaping Resolve, reject: @escaping Reject) {
        run(resolve, reject, then: Self.sendReports) { agent in
            try agent.notifyReady()
            return NSNull()
        }
    }

    public func getStatus(resolve: Resolve) {
        guard let agent = HotPatch.current?.agent else {
            return resolve(["configured": false, "nativeVersion": "", "running": NSNull(), "pending": NSNull(),
                            "onTrial": false] as [String: Any])
        }
        let state = agent.currentState
        resolve([
            "configured": configured, "nativeVersion": state.nativeVersion ?? "",
            "running": state.running.map(Self.bundle) ?? NSNull(), "pending": state.pending.map(Self.bundle) ?? NSNull(),
            "onTrial": state.trial != nil && state.running == state.trial,
        ] as [String: Any])
    }

    /// Send the queued installation reports (installed, confirmed, rolled back); the server's release
    /// health counts them. One that cannot go now stays queued for the next check or confirmation.
    static func sendReports(_ agent: Agent) {
        _ = try? agent.flushReports()
    }

    /// Return once the work queued so far (reports sent after a promise settled included) is done.
    func waitUntilIdle() {
        queue.sync {}
    }

    /// Do `work` on the module's queue and settle the promise with it; then `then`, if it succeeded.
    private func run(_ resolve: @escaping Resolve, _ reject: @escaping Reject, then: @escaping (Agent) -> Void = { _ in },
                     _ work: @escaping (Agent) throws -> Any) {
        guard let agent = HotPatch.current?.agent, configured else {
            return reject(ModuleError(code: "E_NOT_CONFIGURED",
                                      message: "call configure() first (and HotPatch.onLaunch() in the app delegate)",
                                      reason: "NotConfigured"))
        }
        queue.async {
            do {
                resolve(try work(agent))
            } catch let error as HotPatchError {
                return reject(ModuleError(error))
            } catch {
                return reject(ModuleError(code: "E_UNKNOWN", message: "\(error)", reason: "\(type(of: error))"))
            }
            then(agent)
        }
    }

    static func bundle(_ bundle: BundleInfo) -> [String: Any] {
        ["manifestId": bundle.manifestId, "version": bundle.version, "epoch": Double(bundle.epoch),
         "sequence": Double(bundle.sequence)]
    }
}
