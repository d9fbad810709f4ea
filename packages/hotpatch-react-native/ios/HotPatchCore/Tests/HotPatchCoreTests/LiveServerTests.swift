import Foundation
import XCTest
@testable import HotPatchCore

/// The Swift agent against a real hotpatch-server process, on a real disk:
/// tests/e2e/test_sdk_swift.py starts the server, publishes a signed release with the CLI,
/// and passes where (`run_tests.py --live url=... app=... root=... native=...`). Skipped,
/// saying so, when run without a server.
final class LiveServerTests: XCTestCase {
    private func setting(_ name: String) -> String? { ProcessInfo.processInfo.environment["HOTPATCH_LIVE_\(name)"] }

    func testADeviceReceivesASignedReleaseFromARunningServer() throws {
        guard let url = setting("URL") else { throw XCTSkip("no server given (run_tests.py --live url=...)") }
        let dir = NSTemporaryDirectory() + "hotpatch-live-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard let app = setting("APP"), let native = setting("NATIVE"),
              let root = setting("ROOT").flatMap({ Data(base64Encoded: $0) }), let now = setting("NOW").flatMap(Int64.init)
        else { return XCTFail("run_tests.py --live needs url=, app=, root= and native=") }
        let config = AgentConfig(serverUrl: url, appId: app, platform: .android, nativeVersion: native, trustRoot: [UInt8](root))
        // The harness's clock, as the server has it (the runner passes it: a moved clock does not reach in here).
        let offset = now - Int64(Date().timeIntervalSince1970)
        let clock = { UTCSeconds(Int64(Date().timeIntervalSince1970) + offset) }
        let first = try Agent(config, fs: PosixFileSystem(root: dir), clock: clock)
        XCTAssertNil(try first.onLaunch())
        var stages = Set<String>()
        let result = first.sync { stage, _, _ in stages.insert(stage) }
        XCTAssertEqual(result.status, .staged, "\(String(describing: result.error))")
        XCTAssertEqual(stages, ["download", "install"])
        print("live: staged \(result.version ?? "?") (\(result.manifestId ?? "?")) for device \(try first.id())")
        let next = try Agent(config, fs: PosixFileSystem(root: dir), clock: clock)
        let bundle = try next.onLaunch()
        XCTAssertEqual(bundle, "releases/\(result.manifestId ?? "")/files/index.android.bundle")
        XCTAssertGreaterThan((try FileManager.default.attributesOfItem(atPath: "\(dir)/\(bundle ?? "")")[.size] as? Int) ?? 0, 0)
        try next.notifyReady()
        XCTAssertEqual(try next.flushReports(), 1, "the applied report")
        XCTAssertEqual(next.sync().status, .upToDate)
        print("live: confirmed \(result.version ?? "?"); the server took the applied report")
    }
}
