import Foundation
import XCTest
@testable import HotPatchCore

/// A scripted answer: a status, headers and a body that may break off after `limit` bytes
/// or deliver one byte at a time while `onRead` runs.
final class Scripted: HttpResponse {
    let status: Int
    let headers: [String: String]
    private let body: [UInt8]
    private let limit: Int?
    private let onRead: (() -> Void)?
    private let oneByte: Bool
    private var at = 0

    init(_ status: Int, _ headers: [String: String] = [:], _ body: [UInt8] = [], limit: Int? = nil, oneByte: Bool = false,
         onRead: (() -> Void)? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.limit = limit
        self.oneByte = oneByte
        self.onRead = onRead
    }

    func read(into: UnsafeMutableRawBufferPointer) throws -> Int {
        onRead?()
        if let limit, at >= limit { throw HotPatchError(.network, "connection reset") }
        let end = min(body.count, limit ?? body.count, at + (oneByte ? 1 : into.count))
        let count = end - at
        guard count > 0 else { return 0 }
        body.withUnsafeBytes { into.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[at..<end])) }
        at = end
        return count
    }

    func close() {}
}

/// Serves no newer root, an answer offering the golden release, its archive (with ranges), and takes reports.
final class Server: Http {
    var served: [UInt8]
    var cutAfter: Int?
    var offer = true
    /// A patch offer's base: the answer then offers a (missing) patch from it.
    var patchBase: String?
    var archiveAnswer: ((String, [String: String]) -> HttpResponse)?
    /// How many report posts are answered 503 before reports are taken.
    var refuseReports = 0
    private(set) var requests: [String] = []
    private(set) var reports: [JSON] = []
    private let envelope: [UInt8]
    private let manifestId: String

    init(envelope: [UInt8], archive: [UInt8], manifestId: String) {
        self.envelope = envelope
        served = archive
        self.manifestId = manifestId
    }

    func get(_ url: String, headers: [String: String]) throws -> HttpResponse {
        requests.append(url + (headers["Range"].map { " Range: \($0)" } ?? ""))
        let path = String(url.dropFirst("https://updates.example".count))
        if path.hasPrefix("/apps/com.example.app/roots/") { return Scripted(404) }
        if path.hasPrefix("/update/check?") {
            let patch = patchBase.map { ",\"patch\":{\"url\":\"/patches/p1\",\"size\":100,\"baseManifestId\":\"\($0)\"}" } ?? ""
            let answer = offer
                ? "{\"updateAvailable\":true,\"manifest\":\"\(Data(envelope).base64EncodedString())\",\"bundleUrl\":\"/bundles/\(manifestId).zip\"\(patch)}"
                : "{\"updateAvailable\":false}"
            return Scripted(200, [:], Array(answer.utf8))
        }
        if path == "/bundles/\(manifestId).zip" {
            if let archiveAnswer { return archiveAnswer(url, headers) }
            let from = headers["Range"].flatMap { Int($0.dropFirst("bytes=".count).dropLast()) } ?? 0
            let body = Array(served[from...])
            var answerHeaders = ["content-length": "\(body.count)"]
            if from > 0 { answerHeaders["content-range"] = "bytes \(from)-\(served.count - 1)/\(served.count)" }
            let cut = cutAfter
            cutAfter = nil
            return Scripted(from > 0 ? 206 : 200, answerHeaders, body, limit: cut)
        }
        return Scripted(404)
    }

    func postJson(_ url: String, _ body: [UInt8]) throws -> Int {
        requests.append("POST \(url)")
        if refuseReports > 0 {
            refuseReports -= 1
            return 503
        }
        reports.append(try StrictJSON.parse(body))
        return 201
    }
}

/// A clock that moves only when told to, or when the agent sleeps.
final class FakeTimer: HotPatchCore.Timer {
    var now: Int64 = 0
    private(set) var sleeps: [Int64] = []

    func monotonicMillis() -> Int64 { now }

    func sleep(_ millis: Int64) {
        sleeps.append(millis)
        now += millis
    }
}

/// The APK's assets, counting how often each file is read; `broken` ones cannot be read.
final class Assets: EmbeddedBundle {
    let files: [String: [UInt8]]
    let broken: Set<String>
    private(set) var opened: [String] = []

    init(_ files: [String: [UInt8]], broken: Set<String> = []) {
        self.files = files
        self.broken = broken
    }

    var paths: [String] { Array(files.keys) }

    func read(_ path: String) throws -> [UInt8] {
        opened.append(path)
        if broken.contains(path) { throw HotPatchError(.storage, "\(path): no such asset") }
        return files[path]!
    }
}

/// The agent against a scripted server that serves the golden release (the live test uses a real one).
final class AgentTests: XCTestCase {
    private var now: UTCSeconds!
    private var envelope: [UInt8]!
    private var archive: [UInt8]!
    private var manifestId: String!

    override func setUpWithError() throws {
        let spec = try Vectors.json("release.verify.json")
        now = UTCSeconds.parse(spec.at("now").text)
        envelope = Array(try Vectors.bytes("release.envelope.json").dropLast())
        archive = try Vectors.bytes("release.archive.zip")
        manifestId = spec.at("expect").at("manifestId").text
    }

    private func server() -> Server { Server(envelope: envelope, archive: archive, manifestId: manifestId) }

    private func agent(_ fs: FileSystem, _ server: Http, timer: HotPatchCore.Timer = FakeTimer(),
                       embedded: EmbeddedBundle? = nil) throws -> Agent {
        var config = AgentConfig(serverUrl: "https://updates.example/", appId: "com.example.app", platform: .android,
                                 nativeVersion: "1.2.3", trustRoot: Array(try Vectors.bytes("trust-root.envelope.json").dropLast()))
        config.deviceId = "device-1"
        config.embedded = embedded
        let at = now!
        return try Agent(config, fs: fs, http: server, clock: { at }, timer: timer)
    }

    func testADeviceTakesTheReleaseRunsItOnTrialConfirmsItAndReportsIt() throws {
        let fs = MemoryFileSystem()
        let server = server()
        let device = try agent(fs, server)
        XCTAssertNil(try device.onLaunch()) // the embedded bundle
        var stages = Set<String>()
        let result = device.sync { stage, done, total in
            stages.insert(stage)
            XCTAssertLessThanOrEqual(done, total)
        }
        XCTAssertEqual(result.status, .staged, "\(String(describing: result.error))")
        XCTAssertEqual(result.manifestId, manifestId)
        XCTAssertEqual(stages, ["download", "install"])
        XCTAssertTrue(server.requests.contains { $0.contains("/update/check?appId=com.example.app&platform=android&deviceId=device-1") },
                      "\(server.requests)")
        // The next process (after a power cut, even): the staged bundle runs on trial, and notifyReady confirms it.
        let next = try agent(fs.afterCut(), server)
        XCTAssertEqual(try next.onLaunch(), "releases/\(manifestId!)/files/index.android.bundle")
        try next.notifyReady()
        XCTAssertEqual(next.currentState.confirmed?.manifestId, manifestId)
        XCTAssertEqual(try next.flushReports(), 1)
        XCTAssertEqual(server.reports.map { $0.at("status").text }, ["applied"])
        XCTAssertEqual(next.sync().status, .upToDate) // installed already
    }

    func testADeviceOnTheBundleInItsBinaryTakesAPatchFromItOnlyWhenTheOfferNamesThatBundle() throws {
        let bundle = Array(String(repeating: "var app = 1;\n", count: 10_000).utf8)
        let files = ["index.android.bundle": bundle]
        let entry = FileEntry(path: "index.android.bundle", sha256: Hex.encode(CryptoBackends.system.sha256(bundle)),
                              size: Int64(bundle.count))
        let id = EmbeddedBundles.id(appId: "com.example.app", platform: .android, nativeVersion: "1.2.3", files: [entry])
        let cases: [(base: String, assets: Assets?, patched: Bool)] = [
            (id, Assets(files), true),
            (String(repeating: "ab", count: 32), Assets(files), false), // another bundle (another native version's)
            (id, Assets(files, broken: ["index.android.bundle"]), false), // unreadable: no base
            (id, nil, false), // the app named no embedded bundle
        ]
        for (base, assets, patched) in cases {
            let server = server()
            server.patchBase = base
            let device = try agent(MemoryFileSystem(), server, embedded: assets)
            _ = try device.onLaunch()
            let result = device.sync()
            // The patch this server offers is missing (404): a device that chose it reports the
            // failure and downloads the archive. Every case ends with the release staged.
            XCTAssertEqual(result.status, .staged, "\(String(describing: result.error))")
            XCTAssertEqual(server.requests.contains { $0.hasPrefix("https://updates.example/patches/p1") }, patched, "\(base)")
            XCTAssertEqual(server.reports.filter { $0.at("status").text == "failed" }.count, patched ? 1 : 0, "\(server.reports)")
            // Hashed once, when the offer came; not read again, as the patch never arrived.
            if let assets { XCTAssertEqual(assets.opened, ["index.android.bundle"]) }
        }
    }

    func testADroppedDownloadResumesWhereItStoppedAfterABackoff() throws {
        let server = server()
        server.cutAfter = 100
        let timer = FakeTimer()
        let device = try agent(MemoryFileSystem(), server, timer: timer)
        _ = try device.onLaunch()
        XCTAssertEqual(device.sync().status, .staged)
        XCTAssertTrue(server.requests.contains { $0.hasSuffix("Range: bytes=100-") }, "\(server.requests)")
        XCTAssertEqual(timer.sleeps.count, 1)
        XCTAssertTrue((500...1_000).contains(timer.sleeps[0]), "\(timer.sleeps)")
    }

    func testAServerThatKeepsFailingIsGivenUpAfterTheRetriesThePartialFileKept() throws {
        let server = server()
        server.archiveAnswer = { _, _ in Scripted(503) }
        let timer = FakeTimer()
        let device = try agent(MemoryFileSystem(), server, timer: timer)
        _ = try device.onLaunch()
        let result = device.sync()
        XCTAssertEqual(result.status, .failed)
        XCTAssertEqual(result.error?.reason, .network)
        XCTAssertEqual(timer.sleeps.count, 4) // the default four retries, backing off
        for (index, slept) in timer.sleeps.enumerated() {
            XCTAssertTrue(((500 << Int64(index))...(1_000 << Int64(index))).contains(slept), "\(timer.sleeps)")
        }
        XCTAssertEqual(server.reports.map { $0.at("phase").text }, ["download"])
        XCTAssertEqual(device.currentState.offer?.bundle.manifestId, manifestId) // the next sync resumes
    }

    func testATricklingServerIsAbandonedBelowTheMinimumThroughput() throws {
        let server = server()
        let timer = FakeTimer()
        let body = archive!
        server.archiveAnswer = { _, _ in Scripted(200, [:], body, oneByte: true) { timer.now += 10_000 } } // ten seconds a byte
        let device = try agent(MemoryFileSystem(), server, timer: timer)
        _ = try device.onLaunch()
        let result = device.sync()
        XCTAssertEqual(result.status, .failed)
        XCTAssertTrue(result.error?.message.contains("below the minimum 1024 B/s") == true, "\(String(describing: result.error))")
        XCTAssertEqual(timer.sleeps, []) // not retried: the server is too slow, not failing
    }

    func testMoreBytesThanSignedAreRefusedAndThePartialFileRemoved() throws {
        let server = server()
        server.served = archive + [UInt8](repeating: 0, count: 10)
        let fs = MemoryFileSystem()
        let device = try agent(fs, server)
        _ = try device.onLaunch()
        let result = device.sync()
        XCTAssertEqual(result.error?.reason, .tooLarge)
        XCTAssertEqual(fs.list(DeviceStorage.downloads), [])
    }

    func testACorruptedArchiveIsRefusedReportedAndNotInstalled() throws {
        let server = server()
        server.served[200] &+= 1
        let fs = MemoryFileSystem()
        let device = try agent(fs, server)
        _ = try device.onLaunch()
        let result = device.sync()
        XCTAssertEqual(result.status, .failed)
        XCTAssertEqual(result.error?.reason, .hashMismatch)
        XCTAssertEqual(fs.list(DeviceStorage.releases), [])
        XCTAssertEqual(server.reports.map { $0.at("phase").text }, ["verify"])
        XCTAssertNil(device.currentState.pending)
    }

    func testABundleThatCrashesBeforeNotifyReadyIsRolledBackAtTheThreshold() throws {
        let fs = MemoryFileSystem()
        let server = server()
        let first = try agent(fs, server)
        _ = try first.onLaunch()
        XCTAssertEqual(first.sync().status, .staged)
        server.offer = false
        XCTAssertNotNil(try agent(fs, server).onLaunch()) // trial launch 1: crashes
        XCTAssertNotNil(try agent(fs, server).onLaunch()) // trial launch 2: crashes
        let third = try agent(fs, server)
        XCTAssertNil(try third.onLaunch()) // back to the embedded bundle
        XCTAssertEqual(third.currentState.failed, [manifestId])
        try third.flushReports()
        XCTAssertEqual(server.reports.last?.at("status").text, "rolled_back")
        XCTAssertEqual(fs.list(DeviceStorage.releases), [])
    }
}
