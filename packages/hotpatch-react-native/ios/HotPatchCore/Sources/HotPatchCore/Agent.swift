import Foundation

/// What the app build fixes for its updates (the integration guide shows where each comes from).
public struct AgentConfig {
    public var serverUrl: String
    public var appId: String
    public var platform: Platform
    public var nativeVersion: String
    /// The trust root envelope the binary embeds.
    public var trustRoot: [UInt8]
    public var channel = "production"
    public var crashThreshold = 2
    /// The archive path of the bundle the JS engine loads (nil: the platform's).
    public var bundleFile: String?
    /// A fixed device id (tests); nil: a random one, kept in `state.json`.
    public var deviceId: String?
    /// Limits on each download (deadline, minimum throughput, retries).
    public var download = DownloadPolicy()
    /// The bundle shipped in the binary, read back byte for byte, as registered with
    /// `hotpatch embedded register`: a device still on it may take its first update as a
    /// patch from it. Nil: the first update is always the whole archive.
    public var embedded: EmbeddedBundle?

    public init(serverUrl: String, appId: String, platform: Platform, nativeVersion: String, trustRoot: [UInt8]) {
        self.serverUrl = serverUrl
        self.appId = appId
        self.platform = platform
        self.nativeVersion = nativeVersion
        self.trustRoot = trustRoot
    }
}

/// Limits on one archive download (times in milliseconds), as the reference's
/// `DownloadPolicy`: `deadlineMillis` bounds every attempt together; a server sending less
/// than `minBytesPerSecond` over a `throughputWindowMillis` is abandoned; a retryable
/// failure is tried again up to `retries` times in a row, after a backoff that doubles
/// from `backoffMillis` up to `maxBackoffMillis`.
public struct DownloadPolicy {
    public var deadlineMillis: Int64 = 600_000
    public var minBytesPerSecond: Int64 = 1024
    public var throughputWindowMillis: Int64 = 30_000
    public var retries = 4
    public var backoffMillis: Int64 = 1_000
    public var maxBackoffMillis: Int64 = 60_000

    public init() {}
}

/// Monotonic time and sleeping, injectable for tests.
public protocol Timer: AnyObject {
    func monotonicMillis() -> Int64
    func sleep(_ millis: Int64)
}

public final class SystemTimer: Timer {
    public init() {}

    public func monotonicMillis() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }

    public func sleep(_ millis: Int64) { Thread.sleep(forTimeInterval: Double(millis) / 1000) }
}

public enum SyncStatus: String { case upToDate, staged, restartRequested, failed }

/// What a sync did: its outcome, the release it took (if any), the refusal or failure, and the reports sent.
public struct SyncResult {
    public var status: SyncStatus
    public var manifestId: String?
    public var version: String?
    public var error: HotPatchError?
    public var reportsSent = 0
}

/// Drives one device's updates, as the Python agent (hotpatch_client.Agent) and the Kotlin
/// `Agent` do: it feeds events to `Machine.step`, saves the state durably, and only then
/// performs the actions (fetch a root, ask for an update, download, install, report). The
/// native side calls `onLaunch` before React Native starts, gives React Native `bundlePath`,
/// and `notifyReady` after the first render; `sync` runs on a background thread. With patch
/// codecs (`SystemPatchCodecs` where the system has zstd, bzip2 and LZMA2: the Linux build, not
/// iOS yet), a server's patch from an installed bundle is offered to the machine; when it asks
/// for it (`.fetchPatch`), the agent downloads it (capped at its offered size) and builds the
/// release from it, every file checked against the signed manifest; any failure is reported
/// and the archive is downloaded instead. A device still on the bundle in its binary takes a
/// patch from it when `AgentConfig.embedded` reads that bundle and its id (hashed when an offer
/// first names a base, `EmbeddedBundles.id`) is the offer's base. Without codecs the archive is
/// always downloaded.
public final class Agent {
    private let config: AgentConfig
    private let fs: FileSystem
    private let http: Http
    private let clock: () -> UTCSeconds
    private let restart: () -> Void
    private let timer: Timer
    private var device: DeviceConfig
    /// The bundle in the binary as a patch base, once hashed.
    private var embeddedBase: PatchBase?
    private let storage: DeviceStorage
    private let lock = NSRecursiveLock()
    private let updating = NSRecursiveLock()
    private var state = DeviceState()
    private var deviceId = ""
    private var reports: ReportQueue?
    private var loaded = false
    private var offered: Offered?
    private let codecs: PatchCodecs?

    /// An answer's patch offer (§4b) and the URL it names, resolved.
    private struct PatchOffer {
        let hint: PatchHint
        let url: String
    }

    /// What the last check offered: the archive's URL, and the patch when the machine chose one.
    private struct Offered {
        let release: VerifiedRelease
        let archiveUrl: String
        let patch: PatchOffer?
    }

    /// The codecs this build has: the system's on Linux; none on Apple platforms yet (no zstd there).
    public static var systemCodecs: PatchCodecs? {
        #if canImport(CZstd) && canImport(CBzip2) && canImport(CLzma)
        return SystemPatchCodecs()
        #else
        return nil
        #endif
    }

    static let chunk = 64 * 1024
    /// The envelope base64-encoded in JSON, plus 64 KiB for the other fields (the reference's cap).
    static let maxAnswerBytes = Int64((Releases.maxReleaseEnvelopeBytes + 2) / 3 * 4 + 64 * 1024)

    public init(
        _ config: AgentConfig, fs: FileSystem, http: Http = URLSessionHttp(),
        clock: @escaping () -> UTCSeconds = { UTCSeconds(Int64(Date().timeIntervalSince1970.rounded(.down))) },
        restart: @escaping () -> Void = {}, timer: Timer = SystemTimer(), codecs: PatchCodecs? = Agent.systemCodecs
    ) throws {
        self.config = config
        self.codecs = codecs
        self.fs = fs
        self.http = http
        self.clock = clock
        self.restart = restart
        self.timer = timer
        device = DeviceConfig(
            identity: DeviceIdentity(appId: config.appId, platform: config.platform, channel: config.channel,
                                     nativeVersion: try Version.parseNative(config.nativeVersion)),
            trustRoot: try TrustRoots.load(config.trustRoot), crashThreshold: config.crashThreshold,
            bundleFile: config.bundleFile
        )
        storage = DeviceStorage(fs)
    }

    private func locked<T>(_ lock: NSRecursiveLock, _ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// The last saved state (diagnostics and tests).
    public var currentState: DeviceState { locked(lock) { state } }

    /// This installation's id, as reported to the server.
    public func id() throws -> String {
        try locked(lock) {
            try ensureLoaded()
            return deviceId
        }
    }

    /// Count this launch and pick its bundle; return the path (below the storage root) of the
    /// file the JS engine loads, or nil for the bundle embedded in the binary. Call it before
    /// React Native starts. If it throws, start the embedded bundle.
    public func onLaunch() throws -> String? {
        try locked(lock) {
            try ensureLoaded()
            _ = try feed(.launched(nativeVersion: try Version.parseNative(config.nativeVersion)))
            return try bundlePath()
        }
    }

    /// The file of the bundle `onLaunch` chose, or nil for the embedded one (also when its file has gone).
    public func bundlePath() throws -> String? {
        try locked(lock) {
            if !state.launched { throw HotPatchError(.illegalTransition, "bundlePath() before onLaunch()") }
            guard let running = state.running else { return nil }
            let path = "\(storage.filesOf(running.manifestId))/\(device.entryFile)"
            return fs.size(path) == nil ? nil : path
        }
    }

    /// Confirm the running bundle: call it once the app has rendered its first screen.
    public func notifyReady() throws {
        try locked(lock) {
            try ensureLoaded()
            _ = try feed(.ready)
        }
    }

    /// Check, download and stage an update, then send queued reports. Never throws for a failed update.
    public func sync(progress: @escaping (String, Int64, Int64) -> Void = { _, _, _ in }) -> SyncResult {
        locked(updating) {
            var result: SyncResult
            do {
                if let release = try checkForUpdate() {
                    let restarted = try downloadUpdate(release.manifestId, progress: progress)
                    result = SyncResult(status: restarted ? .restartRequested : .staged, manifestId: release.manifestId,
                                        version: release.manifest.version)
                } else {
                    result = SyncResult(status: .upToDate)
                }
            } catch let error as HotPatchError {
                result = SyncResult(status: .failed, error: error)
            } catch {
                result = SyncResult(status: .failed, error: HotPatchError(.storage, "\(error)"))
            }
            result.reportsSent = (try? flushReports()) ?? 0
            return result
        }
    }

    /// Send queued installation reports; return how many the server took.
    @discardableResult
    public func flushReports() throws -> Int {
        let queue: ReportQueue = try locked(lock) {
            try ensureLoaded()
            return reports!
        }
        var sent = 0
        for (path, body) in queue.pending() {
            guard let status = try? http.postJson(url("/installations"), body) else { break } // unreachable: later
            if status >= 500 || status == 408 || status == 429 { break }
            if (200...299).contains(status) { sent += 1 }
            queue.remove(path) // taken, or refused for good (a 4xx)
        }
        return sent
    }

    // MARK: - The update

    /// Walk the trust root forward and ask for an update; return the verified release
    /// offered (not fetched yet), or nil when the device is up to date. Throws the refusal
    /// (its reason names the defence), a `NetworkError` or a `StorageError`.
    public func checkForUpdate() throws -> VerifiedRelease? {
        try locked(updating) {
            offered = nil
            var work = try locked(lock) {
                try ensureLoaded()
                return try feed(.checkStarted)
            }
            while let version = work.lazy.compactMap({ if case let .fetchRoot(version) = $0 { return version } else { return nil } }).first {
                let envelope: [UInt8]?
                do {
                    envelope = try get("/apps/\(config.appId)/roots/\(version)", cap: Int64(TrustRoots.maxRootBytes),
                                       what: "trust root v\(version)")
                } catch let error as HotPatchError where error.reason == .network {
                    _ = try locked(lock) { try feed(.checkFailed(reason: error.message)) }
                    throw error
                }
                work = try locked(lock) { try feed(.rootAnswered(envelope: envelope)) }
                if let refusal = rejection(work) { throw refusal }
            }
            guard let request = work.first(where: { if case .requestCheck = $0 { return true } else { return false } }),
                  case let .requestCheck(current, native) = request
            else { return nil }
            let answer: Answer
            do {
                answer = try ask(current: current, native: native)
            } catch let error as HotPatchError where error.reason == .network {
                _ = try locked(lock) { try feed(.checkFailed(reason: error.message)) }
                throw error
            }
            if answer.patch != nil, codecs != nil { knowEmbedded() }
            let actions = try locked(lock) {
                try feed(.checkAnswered(CheckAnswer(envelope: answer.envelope, now: clock(), head: answer.head,
                                                    deviceId: deviceId, patch: answer.patch?.hint)))
            }
            if let refusal = rejection(actions) { throw refusal }
            guard let bundleUrl = answer.bundleUrl else { return nil }
            for action in actions {
                switch action {
                case let .fetchPatch(release, _):
                    offered = Offered(release: release, archiveUrl: bundleUrl, patch: answer.patch)
                    return release
                case let .download(release):
                    offered = Offered(release: release, archiveUrl: bundleUrl, patch: nil)
                    return release
                default:
                    continue
                }
            }
            return nil
        }
    }

    private func rejection(_ actions: [Action]) -> HotPatchError? {
        for action in actions { if case let .reject(error) = action { return error } }
        return nil
    }

    /// Download, verify and install the release `checkForUpdate` offered (named by
    /// `manifestId`); it runs at the next launch. Returns whether the app was asked to
    /// restart (a mandatory release). Throws the refusal, a `NetworkError`, a `StorageError`,
    /// or `IllegalTransitionError` when that release was not just offered.
    public func downloadUpdate(_ manifestId: String, progress: @escaping (String, Int64, Int64) -> Void = { _, _, _ in }) throws -> Bool {
        try locked(updating) {
            guard let offer = offered, offer.release.manifestId == manifestId else {
                throw HotPatchError(.illegalTransition, "downloadUpdate(\(manifestId)) needs the release checkForUpdate() offered")
            }
            offered = nil
            if let patchOffer = offer.patch, let codecs {
                let work = try patch(offer.release, patchOffer, codecs, progress)
                if !work.contains(where: { if case .download = $0 { return true } else { return false } }) {
                    return restartIfAsked(work)
                }
            }
            return try downloadArchive(offer.release, offer.archiveUrl, progress)
        }
    }

    /// The size of the patch the last check chose to fetch instead of the archive, or nil.
    public var offeredPatchSize: Int64? { locked(updating) { offered?.patch?.hint.size } }

    /// Build `release` from `offer`'s patch: download it (capped at its offered size), apply it
    /// to the installed base, every file checked, staged as an archive would be. Returns what
    /// the machine asks next: after `.patchInstalled`, perhaps a restart; after `.patchFailed`
    /// (any failure, reported), the archive's download.
    private func patch(
        _ release: VerifiedRelease, _ offer: PatchOffer, _ codecs: PatchCodecs,
        _ progress: @escaping (String, Int64, Int64) -> Void
    ) throws -> [Action] {
        let hint = offer.hint
        let path = "\(DeviceStorage.downloads)/\(release.manifestId).patch"
        defer { try? fs.remove(path) }
        var phase = ReportPhase.download
        let event: Event
        do {
            try? fs.remove(path) // a patch is small: never resumed
            _ = try fetchArchive(offer.url, path, length: hint.size) { progress("download", $0, $1) }
            let file = try fs.openRead(path)
            let patch = try { defer { file.close() }; return try file.readBytes(upTo: hint.size) }()
            phase = .apply
            let base = try embeddedBase.flatMap { $0.manifestId == hint.baseManifestId ? $0 : nil }
                ?? storage.patchBase(hint.baseManifestId)
            try storage.install(release, patch: patch, base: base, codecs: codecs) {
                progress("install", $0, $1)
            }
            event = .patchInstalled(baseManifestId: hint.baseManifestId)
        } catch {
            let detail = (error as? HotPatchError).map { "\($0.reason.rawValue): \($0.message)" } ?? "StorageError: \(error)"
            event = .patchFailed(reason: "patch from \(hint.baseManifestId.prefix(12)) failed (\(detail))", phase: phase)
        }
        return try locked(lock) { try feed(event) }
    }

    /// Tell the machine the embedded bundle's id, hashing its files once. A file that cannot
    /// be read leaves it unknown (a patch from it is then never chosen) and is tried again at
    /// the next offer.
    private func knowEmbedded() {
        guard embeddedBase == nil, let bundle = config.embedded,
              let base = try? EmbeddedBundles.base(bundle, appId: config.appId, platform: config.platform,
                                                   nativeVersion: config.nativeVersion)
        else { return }
        embeddedBase = base
        locked(lock) { device.embeddedBase = base.manifestId }
    }

    private func restartIfAsked(_ work: [Action]) -> Bool {
        if work.contains(where: { if case .restartApp = $0 { return true } else { return false } }) {
            restart()
            return true
        }
        return false
    }

    /// Download, verify and install `release`'s archive from `url`; whether the app was asked to restart.
    private func downloadArchive(_ release: VerifiedRelease, _ url: String, _ progress: @escaping (String, Int64, Int64) -> Void) throws -> Bool {
        do {
            let part = DeviceStorage.downloadPath(release.manifestId)
            let fetched: (sha256: String, length: Int64)
            do {
                fetched = try fetchArchive(url, part, length: release.manifest.archive.length) { progress("download", $0, $1) }
            } catch let error as HotPatchError {
                feedQuietly(.downloadFailed(reason: "\(error.reason.rawValue): \(error.message)"))
                throw error
            } catch {
                feedQuietly(.downloadFailed(reason: "StorageError: \(error)"))
                throw HotPatchError(.storage, "the download could not be written: \(error)")
            }
            var work = try locked(lock) { try feed(.downloadFinished(sha256: fetched.sha256, length: fetched.length)) }
            if let refusal = rejection(work) { throw refusal }
            guard let install = work.first(where: { if case .install = $0 { return true } else { return false } }),
                  case let .install(verified) = install
            else { return false }
            do {
                let source = try fs.openRead(part)
                defer { source.close() }
                try storage.install(verified, from: source) { progress("install", $0, $1) }
            } catch let error as HotPatchError where error.reason == .localTampering {
                feedQuietly(.installFailed(reason: error.message, permanent: false))
                throw error
            } catch let error as HotPatchError {
                // Still the signed bytes: the signed content itself is unusable, for good. Otherwise the
                // archive changed on this device after it was hashed (A15): not the release's fault.
                let intact = (try? fs.openRead(part)).map { file -> Bool in
                    defer { file.close() }
                    return (try? file.sha256Hex()) == verified.manifest.archive.sha256
                } ?? false
                feedQuietly(.installFailed(reason: "\(error.reason.rawValue): \(error.message)", permanent: intact))
                throw error
            } catch {
                feedQuietly(.installFailed(reason: "StorageError: \(error)", permanent: false))
                throw HotPatchError(.storage, "the bundle could not be installed: \(error)")
            }
            work = try locked(lock) { try feed(.installFinished) }
            return restartIfAsked(work)
        }
    }

    private static let queryAllowed: CharacterSet = {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        allowed.insert(charactersIn: "-._~")
        return allowed
    }()

    /// The answer to a check: the release envelope, where its archive is, the channel head, and a patch offer.
    private struct Answer {
        var envelope: [UInt8]?
        var bundleUrl: String?
        var head: [UInt8]?
        var patch: PatchOffer?
    }

    private func ask(current: BundleInfo?, native: String) throws -> Answer {
        var query: [(String, String)] = [
            ("appId", config.appId), ("platform", config.platform.rawValue), ("deviceId", deviceId),
            ("nativeVersion", native.isEmpty ? config.nativeVersion : native), ("channel", config.channel),
        ]
        if let current { query.append(("currentManifestId", current.manifestId)) }
        let text = query.map { "\($0)=\($1.addingPercentEncoding(withAllowedCharacters: Self.queryAllowed) ?? "")" }
            .joined(separator: "&")
        guard let body = try get("/update/check?\(text)", cap: Self.maxAnswerBytes, what: "update check") else {
            throw HotPatchError(.network, "update check got HTTP 404", retryable: false)
        }
        let document: JSON
        do {
            document = try StrictJSON.parse(body)
        } catch let error as HotPatchError {
            throw HotPatchError(.network, "update check answer is not JSON: \(error.message)", retryable: false)
        }
        guard case .object = document, case let .bool(available)? = document["updateAvailable"] else {
            throw HotPatchError(.network, "update check answer breaks the protocol: updateAvailable", retryable: false)
        }
        let head = signedBytes(document["head"])
        let manifest = signedBytes(document["manifest"])
        guard available, let manifest, case let .string(bundleUrl)? = document["bundleUrl"] else {
            return Answer(envelope: nil, bundleUrl: nil, head: head)
        }
        guard let resolved = resolve(bundleUrl) else {
            throw HotPatchError(.network, "the answer's bundleUrl is not a URL", retryable: false)
        }
        return Answer(envelope: manifest, bundleUrl: resolved, head: head, patch: codecs == nil ? nil : patchOffer(document["patch"]))
    }

    private func resolve(_ reference: String) -> String? { URL(string: reference, relativeTo: URL(string: url("/")))?.absoluteString }

    /// The answer's unsigned patch offer (§4b) and its URL, or nil: a malformed offer is dropped
    /// (the archive is fetched instead), as the reference's read_check_answer does.
    private func patchOffer(_ value: JSON?) -> PatchOffer? {
        guard let value, case let .object(members) = value, members.count == 3,
              Set(members.map(\.key)) == ["url", "size", "baseManifestId"],
              case let .string(reference)? = value["url"], let resolved = resolve(reference),
              case let .integer(size)? = value["size"], size >= 1,
              case let .string(base)? = value["baseManifestId"], base.utf8.count == 64,
              base.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { return nil }
        return PatchOffer(hint: PatchHint(baseManifestId: base, size: size), url: resolved)
    }

    /// A base64 signed document of the answer; garbage is passed on to be refused by verification.
    private func signedBytes(_ value: JSON?) -> [UInt8]? {
        guard case let .string(text)? = value else { return nil }
        return (try? Base64Strict.decode(text, field: "signed document")) ?? Array(text.utf8)
    }

    /// GET `path`; its body (at most `cap` bytes), or nil for a 404.
    private func get(_ path: String, cap: Int64, what: String) throws -> [UInt8]? {
        let response = try http.get(url(path), headers: [:])
        defer { response.close() }
        if response.status == 404 { return nil }
        if response.status != 200 {
            throw HotPatchError(.network, "\(what) got HTTP \(response.status)",
                                retryable: response.status >= 500 || response.status == 429)
        }
        var out: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunk, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            let got = try response.read(into: buffer)
            if got == 0 { break }
            out += UnsafeRawBufferPointer(rebasing: buffer[0..<got])
            if Int64(out.count) > cap { throw HotPatchError(.network, "\(what) answer exceeds \(cap) bytes", retryable: false) }
        }
        return out
    }

    /// The file being downloaded: the hash of its bytes so far, and their count.
    private final class Partial {
        let path: String
        private let crypto = CryptoBackends.system
        private(set) var digest: SHA256Stream
        var have: Int64

        init(_ fs: FileSystem, _ path: String, _ length: Int64) throws {
            self.path = path
            digest = crypto.sha256Stream()
            have = fs.size(path).flatMap { $0 <= length ? $0 : nil } ?? 0
            if have > 0 {
                let file = try fs.openRead(path)
                defer { file.close() }
                have = try file.forEachChunk(upTo: have) { [digest] in digest.update($0) }
            }
        }

        func restart() {
            have = 0
            digest = crypto.sha256Stream()
        }
    }

    /// The download's deadline and minimum throughput (A9).
    private final class Meter {
        private let policy: DownloadPolicy
        private let timer: Timer
        private let started: Int64
        private var windowStart: Int64
        private var windowBytes: Int64 = 0

        init(_ policy: DownloadPolicy, _ timer: Timer) {
            self.policy = policy
            self.timer = timer
            started = timer.monotonicMillis()
            windowStart = started
        }

        func tick(_ received: Int) throws {
            let now = timer.monotonicMillis()
            if now - started > policy.deadlineMillis {
                throw HotPatchError(.network, "download ran past its \(policy.deadlineMillis / 1000) s deadline", retryable: false)
            }
            windowBytes += Int64(received)
            let window = now - windowStart
            if window >= policy.throughputWindowMillis {
                let rate = windowBytes * 1000 / window
                if rate < policy.minBytesPerSecond {
                    throw HotPatchError(.network, "download slowed to \(rate) B/s, below the minimum \(policy.minBytesPerSecond) B/s",
                                        retryable: false)
                }
                windowStart = now
                windowBytes = 0
            }
        }
    }

    /// Download `url` into `path` (resuming a partial file with a Range request), never past
    /// `length` bytes; return the sha256 and length of the whole file. Retryable failures are
    /// tried again with exponential backoff and jitter, resuming each time; the whole download
    /// must end within the policy's deadline, and a server slower than its minimum throughput
    /// is abandoned (A9). More bytes than signed is `TooLargeError` (the partial file is
    /// removed); otherwise the partial file is kept for the next sync.
    private func fetchArchive(_ url: String, _ path: String, length: Int64,
                              progress: (Int64, Int64) -> Void) throws -> (String, Int64) {
        try fs.mkdir(DeviceStorage.downloads)
        let policy = config.download
        let partial = try Partial(fs, path, length)
        let meter = Meter(policy, timer)
        var failures = 0
        do {
            while partial.have < length {
                let before = partial.have
                var failure: HotPatchError
                do {
                    try attempt(url, partial, length, meter, progress)
                    if partial.have >= length { break }
                    failure = HotPatchError(.network, "the body ended after \(partial.have) of \(length) bytes")
                } catch let error as HotPatchError where error.reason == .network {
                    failure = error
                }
                if partial.have > before { failures = 0 } // progress was made: only consecutive failures count
                failures += 1
                if !failure.retryable || failures > policy.retries { throw failure }
                let delay = min(policy.maxBackoffMillis, policy.backoffMillis << Int64(min(failures - 1, 20)))
                timer.sleep(Int64(Double(delay) * Double.random(in: 0.5...1)))
                try meter.tick(0)
            }
        } catch let error as HotPatchError where error.reason == .tooLarge {
            try? fs.remove(path)
            throw error
        }
        return (Hex.encode(partial.digest.finish()), partial.have)
    }

    /// One request of a download: resume from the partial file, append what arrives, synced.
    private func attempt(_ url: String, _ partial: Partial, _ length: Int64, _ meter: Meter,
                         _ progress: (Int64, Int64) -> Void) throws {
        let headers = partial.have > 0 ? ["Range": "bytes=\(partial.have)-"] : [:]
        let response = try http.get(url, headers: headers)
        defer { response.close() }
        if response.status == 416 && partial.have > 0 {
            partial.restart() // our partial file is not a prefix the server knows
            throw HotPatchError(.network, "the server refused to resume; starting over")
        }
        let resumed = response.status == 206 && Self.rangeStart(response.headers["content-range"]) == partial.have
        if response.status == 206 && !resumed {
            throw HotPatchError(.network, "the server answered a range request with another range")
        }
        if response.status != 200 && response.status != 206 {
            let retryable = response.status >= 500 || response.status == 429 || response.status == 408
            throw HotPatchError(.network, "archive download got HTTP \(response.status)", retryable: retryable)
        }
        if !resumed { partial.restart() } // the server ignored the range and sends it all
        if let text = response.headers["content-length"], let declared = Self.decimal(text), partial.have + declared > length {
            throw HotPatchError(.tooLarge, "archive download (Content-Length) exceeds the limit of \(length)")
        }
        let out = partial.have > 0 ? try fs.append(partial.path) : try fs.create(partial.path)
        defer { out.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunk, alignment: 1)
        defer { buffer.deallocate() }
        do {
            while true {
                let got = try response.read(into: buffer)
                if got == 0 { break }
                if partial.have + Int64(got) > length {
                    throw HotPatchError(.tooLarge, "archive download exceeds the limit of \(length)")
                }
                let part = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
                try out.write(part)
                partial.digest.update(part)
                partial.have += Int64(got)
                try meter.tick(got)
                progress(partial.have, length)
            }
        } catch {
            try? out.sync() // keep what arrived: the next attempt resumes from it
            throw error
        }
        try out.sync()
    }

    /// 1 to 18 ASCII digits, else nil.
    static func decimal(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard (1...18).contains(bytes.count), bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(text)
    }

    /// The first byte of `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`), else nil.
    static func rangeStart(_ header: String?) -> Int64? {
        guard let header, header.hasPrefix("bytes ") else { return nil }
        let rest = header.dropFirst(6)
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1] == "*" || decimal(String(parts[1])) != nil else { return nil }
        let span = parts[0].split(separator: "-", omittingEmptySubsequences: false)
        guard span.count == 2, let first = decimal(String(span[0])), decimal(String(span[1])) != nil else { return nil }
        return first
    }

    private func url(_ path: String) -> String {
        var base = config.serverUrl
        while base.hasSuffix("/") { base.removeLast() }
        return base + path
    }

    // MARK: - The state

    private func ensureLoaded() throws {
        if loaded { return }
        do {
            var stored = try storage.loadState()
            if stored == nil || (config.deviceId != nil && stored!.deviceId != config.deviceId) {
                let id = config.deviceId ?? stored?.deviceId ?? Self.randomId()
                stored = StoredState(deviceId: id, state: stored?.state ?? DeviceState())
                try storage.saveState(stored!)
            }
            // launched and running describe this process, never a previous one.
            var loadedState = stored!.state
            loadedState.launched = state.launched
            loadedState.running = state.running
            storage.recover(loadedState)
            if (try? Machine.trustedRoot(loadedState, device)) == nil {
                loadedState.trustRoot = nil // damaged storage: walk again from the embedded root
            }
            deviceId = stored!.deviceId
            reports = ReportQueue(fs, appId: config.appId, deviceId: deviceId)
            state = loadedState
            loaded = true
            if state.phase != .idle { _ = try feed(.interrupted) }
        } catch let error as StorageError {
            loaded = false
            throw HotPatchError(.storage, "the update state could not be read: \(error.message)")
        }
    }

    /// Step the machine, queue its reports, save its state; tidy storage; return the remaining work.
    private func feed(_ event: Event) throws -> [Action] {
        let result = try Machine.step(state, event, device)
        do {
            for action in result.actions { if case let .report(report) = action { try reports!.put(report) } }
            if Self.durable(result.state) != Self.durable(state) {
                try storage.saveState(StoredState(deviceId: deviceId, state: result.state))
            }
        } catch let error as StorageError {
            loaded = false
            throw HotPatchError(.storage, "could not save the update state: \(error.message)")
        }
        state = result.state
        var work: [Action] = []
        for action in result.actions {
            switch action {
            case let .discardDownload(id): try? fs.remove(DeviceStorage.downloadPath(id)) // or startup recovery does
            case let .deleteBundle(id):
                if state.running?.manifestId != id { try? fs.removeTree(DeviceStorage.releaseDir(id)) }
            case .report, .runBundle: break
            default: work.append(action)
            }
        }
        return work
    }

    /// Record a failure; if even that cannot be saved, the next load redoes it.
    private func feedQuietly(_ event: Event) {
        locked(lock) { _ = try? feed(event) }
    }

    /// The part of a state worth a disk write: launched and running describe this process only.
    private static func durable(_ state: DeviceState) -> [UInt8] {
        var copy = state
        copy.phase = .idle
        copy.launched = false
        copy.running = nil
        return StrictJSON.canonical(StateCodec.encode(copy))
    }

    private static func randomId() -> String {
        var generator = SystemRandomNumberGenerator()
        return Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
}
