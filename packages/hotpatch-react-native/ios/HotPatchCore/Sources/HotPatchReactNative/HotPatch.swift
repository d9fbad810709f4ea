import Foundation
#if canImport(HotPatchCore)
import HotPatchCore // a separate module in the Swift package; one module with it in the pod
#endif

/// Where the app checks for updates: fixed in the binary, next to the trust root it embeds.
public struct HotPatchSettings {
    public var serverUrl: String
    public var appId: String
    public var channel = "production"
    /// The trust root file in the app bundle (added to the Xcode target's resources).
    public var trustRootResource = "hotpatch-trust-root.json"
    /// Launches a new bundle gets to reach `notifyAppReady()` before it is rolled back.
    public var crashThreshold = 2
    /// The files of the bundle in the app bundle that `hotpatch embedded register` registered,
    /// so the first update can be a patch from them. Empty: the first update is always the
    /// whole archive. (iOS takes no patches yet: the pod has no zstd; see the guide.)
    public var embeddedFiles = ["main.jsbundle"]

    public init(serverUrl: String, appId: String) {
        self.serverUrl = serverUrl
        self.appId = appId
    }
}

/// Files below a folder, read as they lie: the app bundle's JS bundle as `hotpatch embedded
/// register` registered it.
public struct BundledFiles: EmbeddedBundle {
    public let folder: URL
    public let paths: [String]

    public init(folder: URL, paths: [String]) {
        self.folder = folder
        self.paths = paths
    }

    public func read(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: folder.appendingPathComponent(path), options: .mappedIfSafe))
    }
}

/// The app's entry point: call `onLaunch` in `application(_:didFinishLaunchingWithOptions:)`,
/// before React Native starts, and give React Native the file it returns (the app
/// delegate's `bundleURL()`); nil means the bundle embedded in the app. It counts the
/// launch durably (the crash counter) and rolls back a bundle that reached the threshold
/// without `notifyAppReady()`.
public enum HotPatch {
    private static let lock = NSLock()
    private static var running: (settings: HotPatchSettings, agent: Agent, directory: URL)?

    /// The settings, the agent and its directory `onLaunch` created, for the native module.
    static var current: (settings: HotPatchSettings, agent: Agent, directory: URL)? {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    /// Count this launch and pick its bundle, reading what the app bundle holds: the trust
    /// root resource and the version (`CFBundleShortVersionString`); the state lives in
    /// Application Support. The file URL to load, or nil for the embedded bundle.
    public static func onLaunch(_ settings: HotPatchSettings) -> URL? {
        let name = settings.trustRootResource as NSString
        guard let rootURL = Bundle.main.url(forResource: name.deletingPathExtension, withExtension: name.pathExtension),
              let root = try? Data(contentsOf: rootURL),
              let native = Bundle.main.infoDictionary?["CFBundleShortVersionString"] as? String,
              let support = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask).first
        else { return nil } // no trust root or version: HotPatch stays off, the embedded bundle runs
        return onLaunch(settings, trustRoot: [UInt8](root), nativeVersion: native,
                        directory: support.appendingPathComponent("hotpatch"),
                        embeddedFolder: Bundle.main.bundleURL)
    }

    /// `onLaunch` with everything given: the trust root envelope, the native version, the
    /// directory the device's update state lives in, and the folder the bundle in the binary is
    /// read from (`settings.embeddedFiles` below it; nil: none). (`platform` is for tests that use
    /// the golden vectors' Android release; an app is always `.ios`.)
    public static func onLaunch(
        _ settings: HotPatchSettings, trustRoot: [UInt8], nativeVersion: String, directory: URL,
        embeddedFolder: URL? = nil,
        http: Http = URLSessionHttp(),
        clock: @escaping () -> UTCSeconds = { UTCSeconds(Int64(Date().timeIntervalSince1970.rounded(.down))) },
        platform: Platform = .ios
    ) -> URL? {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            var config = AgentConfig(serverUrl: settings.serverUrl, appId: settings.appId, platform: platform,
                                     nativeVersion: nativeVersion, trustRoot: trustRoot)
            config.channel = settings.channel
            config.crashThreshold = settings.crashThreshold
            if let embeddedFolder, !settings.embeddedFiles.isEmpty {
                config.embedded = BundledFiles(folder: embeddedFolder, paths: settings.embeddedFiles)
            }
            let agent = try Agent(config, fs: PosixFileSystem(root: directory.path), http: http, clock: clock)
            lock.lock()
            running = (settings, agent, directory)
            lock.unlock()
            return try agent.onLaunch().map { directory.appendingPathComponent($0) }
        } catch {
            return nil // an app that cannot read its update state must still start, on its embedded bundle
        }
    }

    /// The bundle file `onLaunch` (or `relaunch`) chose, or nil for the embedded one: what
    /// the React Native delegate's `bundleURL()` returns in a release build.
    public static func bundleURL() -> URL? {
        guard let (_, agent, directory) = current, let path = (try? agent.bundlePath()) ?? nil
        else { return nil }
        return directory.appendingPathComponent(path)
    }

    /// Start the JavaScript again in this process (`restartApp()`): a launch as the crash
    /// counter sees it, on the staged bundle if there is one. The bridge then reloads React
    /// Native, whose delegate asks `bundleURL()` again.
    @discardableResult
    public static func relaunch() -> URL? {
        guard let (_, agent, directory) = current, let path = (try? agent.onLaunch()) ?? nil
        else { return nil }
        return directory.appendingPathComponent(path)
    }

    /// Forget the running agent (tests).
    static func reset() {
        lock.lock()
        running = nil
        lock.unlock()
    }
}
