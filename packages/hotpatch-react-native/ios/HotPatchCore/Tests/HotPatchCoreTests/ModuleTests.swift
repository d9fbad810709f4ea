import Foundation
import XCTest
@testable import HotPatchCore
@testable import HotPatchReactNative

/// The React Native module's behaviour (what JavaScript sees) over the real core and agent,
/// with a scripted server serving the golden release and a real directory on disk.
final class ModuleTests: XCTestCase {
    private var directory: URL!
    private var server: Server!
    private var events: [(String, [String: Any])] = []
    private let eventsLock = NSLock()
    private var settings = HotPatchSettings(serverUrl: "https://updates.example/", appId: "com.example.app")

    override func setUpWithError() throws {
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("hotpatch-module-\(UUID().uuidString)")
        let spec = try Vectors.json("release.verify.json")
        server = Server(envelope: Array(try Vectors.bytes("release.envelope.json").dropLast()),
                        archive: try Vectors.bytes("release.archive.zip"), manifestId: spec.at("expect").at("manifestId").text)
        HotPatch.reset()
    }

    override func tearDownWithError() throws {
        HotPatch.reset()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The app delegate's call; the golden release is for Android, so the device here is too.
    private func launch(_ platform: Platform = .android) throws -> URL? {
        let now = UTCSeconds.parse(try Vectors.json("release.verify.json").at("now").text)!
        return HotPatch.onLaunch(settings, trustRoot: Array(try Vectors.bytes("trust-root.envelope.json").dropLast()),
                                 nativeVersion: "1.2.3", directory: directory, http: server, clock: { now }, platform: platform)
    }

    private func makeModule() -> ModuleCore {
        ModuleCore { [weak self] name, body in
            self?.eventsLock.lock()
            self?.events.append((name, body))
            self?.eventsLock.unlock()
        }
    }

    /// Call `method` and wait for its promise; the resolved value or the rejection.
    private func call(_ method: (@escaping ModuleCore.Resolve, @escaping ModuleCore.Reject) -> Void) -> Result<Any?, ModuleError> {
        let done = expectation(description: "promise settled")
        var outcome: Result<Any?, ModuleError>?
        method({ outcome = .success($0); done.fulfill() }, { outcome = .failure($0); done.fulfill() })
        wait(for: [done], timeout: 30)
        return outcome!
    }

    private func configured(_ module: ModuleCore) {
        let config: [String: Any] = ["serverUrl": settings.serverUrl, "appId": settings.appId, "channel": "production"]
        XCTAssertNoThrow(try call { module.configure(config, resolve: $0, reject: $1) }.get())
    }

    func testAnAppReceivesStagesRunsAndConfirmsAReleaseThroughTheModule() throws {
        XCTAssertNil(try launch()) // the embedded bundle
        let module = makeModule()
        configured(module)
        let update = try XCTUnwrap(try call(module.checkForUpdate).get() as? [String: Any])
        XCTAssertEqual(update["version"] as? String, "1.2.0")
        XCTAssertEqual(update["isPatch"] as? Bool, false)
        let id = try XCTUnwrap(update["manifestId"] as? String)
        let staged = try XCTUnwrap(try call { module.downloadUpdate(id, resolve: $0, reject: $1) }.get() as? [String: Any])
        XCTAssertEqual(staged["manifestId"] as? String, id)
        XCTAssertEqual(Set(events.map { $0.1["stage"] as? String ?? "" }), ["download", "install"])
        XCTAssertTrue(events.allSatisfy { $0.0 == ModuleCore.progressEvent })
        XCTAssertNil(HotPatch.bundleURL()) // this process still runs the embedded bundle
        // restartApp() on iOS reloads in the same process: a launch, on the staged bundle.
        let reloaded = try XCTUnwrap(HotPatch.relaunch())
        XCTAssertEqual(HotPatch.bundleURL(), reloaded)
        XCTAssertEqual(reloaded.path, directory.appendingPathComponent("releases/\(id)/files/index.android.bundle").path)
        HotPatch.reset()
        // The next launch (a new process) runs the staged bundle on trial; notifyAppReady confirms it.
        let bundle = try XCTUnwrap(try launch())
        XCTAssertEqual(bundle.path, directory.appendingPathComponent("releases/\(id)/files/index.android.bundle").path)
        let next = makeModule()
        configured(next)
        var status = try XCTUnwrap(try call { resolve, _ in next.getStatus(resolve: resolve) }.get() as? [String: Any])
        XCTAssertEqual(status["onTrial"] as? Bool, true)
        XCTAssertEqual((status["running"] as? [String: Any])?["manifestId"] as? String, id)
        XCTAssertNil(try call(next.notifyAppReady).get() as? [String: Any])
        status = try XCTUnwrap(try call { resolve, _ in next.getStatus(resolve: resolve) }.get() as? [String: Any])
        XCTAssertEqual(status["onTrial"] as? Bool, false)
        XCTAssertEqual(status["nativeVersion"] as? String, "1.2.3")
        // The confirmation went to the server (after the promise settled): its release health counts it.
        next.waitUntilIdle()
        XCTAssertEqual(server.reports.map { $0.at("status").text }, ["applied"])
    }

    func testAReportTheServerCouldNotTakeGoesWithTheNextCheck() throws {
        _ = try launch()
        let module = makeModule()
        configured(module)
        let id = try XCTUnwrap((try call(module.checkForUpdate).get() as? [String: Any])?["manifestId"] as? String)
        _ = try call { module.downloadUpdate(id, resolve: $0, reject: $1) }.get()
        HotPatch.reset()
        _ = try launch()
        let next = makeModule()
        configured(next)
        server.refuseReports = 1
        XCTAssertNil(try call(next.notifyAppReady).get() as? [String: Any]) // confirmed, though the report waits
        next.waitUntilIdle()
        XCTAssertEqual(server.reports.count, 0)
        _ = try call(next.checkForUpdate).get()
        XCTAssertEqual(server.reports.map { $0.at("status").text }, ["applied"])
    }

    func testCallsRejectWithTheCodesTheJavaScriptLayerMaps() throws {
        let module = makeModule()
        // Before the app delegate's onLaunch, and before configure().
        XCTAssertEqual(call { module.configure([:], resolve: $0, reject: $1) }.failure?.code, "E_NOT_CONFIGURED")
        _ = try launch()
        XCTAssertEqual(call(module.checkForUpdate).failure?.code, "E_NOT_CONFIGURED")
        let wrong: [String: Any] = ["serverUrl": settings.serverUrl, "appId": "com.other.app", "channel": "production"]
        let mismatch = call { module.configure(wrong, resolve: $0, reject: $1) }.failure
        XCTAssertEqual(mismatch?.code, "E_INVALID_CONFIG")
        XCTAssertEqual(mismatch?.reason, "ConfigMismatch")
        configured(module)
        XCTAssertEqual(call { module.downloadUpdate(String(repeating: "0", count: 64), resolve: $0, reject: $1) }.failure?.code,
                       "E_NO_UPDATE")
        server.served[200] &+= 1 // a corrupted archive
        let id = try XCTUnwrap((try call(module.checkForUpdate).get() as? [String: Any])?["manifestId"] as? String)
        let refused = call { module.downloadUpdate(id, resolve: $0, reject: $1) }.failure
        XCTAssertEqual(refused?.code, "E_VERIFICATION")
        XCTAssertEqual(refused?.reason, "HashMismatchError")
        // An iOS device (what an app always is) refuses the golden Android release.
        HotPatch.reset()
        try? FileManager.default.removeItem(at: directory)
        _ = try launch(.ios)
        let ios = makeModule()
        configured(ios)
        let foreign = call(ios.checkForUpdate).failure
        XCTAssertEqual(foreign?.code, "E_VERIFICATION")
        XCTAssertEqual(foreign?.reason, "IdentityMismatchError")
        XCTAssertEqual(ModuleError.code(HotPatchError(.network, "down")), "E_NETWORK")
        XCTAssertEqual(ModuleError.code(HotPatchError(.storage, "full")), "E_STORAGE")
    }
}

private extension Result {
    var failure: Failure? {
        if case let .failure(error) = self { return error }
        return nil
    }
}
