import Foundation
import XCTest
@testable import HotPatchCore

final class StorageTests: XCTestCase {
    private var release: VerifiedRelease!
    private var archive: [UInt8]!

    override func setUpWithError() throws {
        let spec = try Vectors.json("release.verify.json")
        let root = try TrustRoots.load(Array(try Vectors.bytes("trust-root.envelope.json").dropLast()))
        let device = DeviceIdentity(appId: "com.example.app", platform: .android, channel: "production",
                                    nativeVersion: try Version.parse("1.2.3"))
        release = try Releases.verify(Array(try Vectors.bytes("release.envelope.json").dropLast()), root: root, device: device,
                                      mark: nil, now: UTCSeconds.parse(spec.at("now").text)!)
        archive = try Vectors.bytes("release.archive.zip")
    }

    private func withDirectory(_ body: (String) throws -> Void) throws {
        let dir = NSTemporaryDirectory() + "hotpatch-storage-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }

    func testAReleaseInstallsDurablyOnARealDiskAndTamperingIsCaught() throws {
        try withDirectory { dir in
            let storage = DeviceStorage(PosixFileSystem(root: dir))
            var reported: Int64 = 0
            let size = release.manifest.archive.uncompressedSize
            let installed = try storage.install(release, from: BytesSource(archive)) { done, total in
                XCTAssertEqual(total, size)
                reported = done
            }
            XCTAssertEqual(installed, "releases/\(release.manifestId)")
            XCTAssertEqual(reported, size)
            let bundle = "\(dir)/\(installed)/files/index.android.bundle"
            XCTAssertTrue(FileManager.default.fileExists(atPath: bundle))
            XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(installed)/envelope"))), release.envelope)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/releases"), [release.manifestId])
            try storage.verifyInstalled(release.manifestId, release.manifest.files)
            let handle = FileHandle(forWritingAtPath: bundle)!
            handle.seekToEndOfFile()
            handle.write(Data("evil()".utf8))
            handle.closeFile()
            assertRefused(.localTampering) { try storage.verifyInstalled(self.release.manifestId, self.release.manifest.files) }
        }
    }

    func testAnArchiveThatDoesNotMatchLeavesNothingBehind() throws {
        try withDirectory { dir in
            let storage = DeviceStorage(PosixFileSystem(root: dir))
            // One byte of the bundle's own text changed (stored, so it is in the archive as is).
            let marker = Array("hotpatch golden vector".utf8)
            let at = (0...(archive.count - marker.count)).first { archive[$0..<$0 + marker.count].elementsEqual(marker) }!
            var broken = archive!
            broken[at] = UInt8(ascii: "H")
            XCTAssertThrowsError(try storage.install(release, from: BytesSource(broken)))
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/releases"), [])
        }
    }

    func testTheStateRoundTripsThroughStateJSONAndADamagedOneIsSetAside() throws {
        try withDirectory { dir in
            let storage = DeviceStorage(PosixFileSystem(root: dir))
            XCTAssertNil(try storage.loadState())
            var state = DeviceState()
            state.launched = true
            state.nativeVersion = "1.2.3"
            state.pending = .of(release)
            state.failed = [String(repeating: "ab", count: 32)]
            try storage.saveState(StoredState(deviceId: "device-1", state: state))
            XCTAssertEqual(try storage.loadState(), StoredState(deviceId: "device-1", state: state))
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/state.json.tmp"))
            try Data("{\"format\":1,".utf8).write(to: URL(fileURLWithPath: "\(dir)/state.json"))
            XCTAssertNil(try storage.loadState())
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/state.json.corrupt"))
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/state.json"))
        }
    }

    func testAPowerCutAtAnyOperationOfAnInstallLeavesAStateThatRuns() throws {
        var launched = DeviceState()
        launched.launched = true
        launched.nativeVersion = "1.2.3"
        let before = StoredState(deviceId: "device-1", state: launched)
        var staged = launched
        staged.pending = .of(release)
        let after = StoredState(deviceId: "device-1", state: staged)
        func run(_ fs: MemoryFileSystem) throws {
            let storage = DeviceStorage(fs)
            try storage.install(release, from: BytesSource(archive))
            try storage.saveState(after)
        }
        func fresh() throws -> MemoryFileSystem {
            let fs = MemoryFileSystem()
            try DeviceStorage(fs).saveState(before)
            return fs
        }
        let counting = try fresh()
        let start = counting.operations
        try run(counting)
        let total = counting.operations - start
        XCTAssertGreaterThan(total, 15, "\(counting.trace)")
        var outcomes = Set<Bool>()
        // Cut before each operation, and once after the last (the power fails once all is done).
        for cut in 1...(total + 1) {
            let fs = try fresh()
            fs.cutAt = fs.operations + cut
            if cut <= total {
                XCTAssertThrowsError(try run(fs)) { XCTAssertTrue($0 is PowerCut, "cut \(cut): \($0)") }
            } else {
                try run(fs)
            }
            let rebooted = fs.afterCut()
            let storage = DeviceStorage(rebooted)
            guard let loaded = try storage.loadState() else { return XCTFail("cut \(cut): no state") }
            XCTAssertTrue(loaded == before || loaded == after, "cut \(cut): \(loaded)")
            storage.recover(loaded.state)
            for bundle in loaded.state.installed() { try storage.verifyInstalled(bundle.manifestId, release.manifest.files) }
            let left = rebooted.files().filter { $0.hasPrefix("releases/") && $0 != "releases/" }
            if loaded == before {
                XCTAssertEqual(left, [], "cut \(cut)")
            } else {
                XCTAssertTrue(left.allSatisfy { $0.hasPrefix("releases/\(release.manifestId)/") }, "cut \(cut): \(left)")
            }
            XCTAssertTrue(rebooted.files().allSatisfy { !$0.hasSuffix(".tmp") && !$0.contains(".staging-") }, "cut \(cut)")
            outcomes.insert(loaded == after)
            // The device carries on: installing again after the cut succeeds.
            if loaded == before { try run(rebooted) }
            try storage.verifyInstalled(release.manifestId, release.manifest.files)
        }
        XCTAssertEqual(outcomes, [false, true])
    }

    func testReportsAreQueuedOncePerOutcomeWithTheReferencesIds() throws {
        let fs = MemoryFileSystem()
        let queue = ReportQueue(fs, appId: "com.example.app", deviceId: "device-1")
        let id = String(repeating: "ab", count: 32)
        let failed = Report(manifestId: id, status: .failed, phase: .verify, reason: String(repeating: "x", count: 600))
        // Ids computed by the reference, hotpatch_client.reports.report_id.
        XCTAssertEqual(try queue.put(failed), "7a6ce382400756769eb0d8a972268258")
        XCTAssertEqual(try queue.put(Report(manifestId: id, status: .failed, phase: .verify, reason: "again")),
                       "7a6ce382400756769eb0d8a972268258")
        XCTAssertEqual(try queue.put(Report(manifestId: id, status: .applied)), "9bfd6094df5e19faa71da477c5a5c925")
        let pending = queue.pending()
        XCTAssertEqual(pending.count, 2)
        let body = try StrictJSON.parse(pending.first { $0.path.contains("7a6c") }!.body)
        XCTAssertEqual(body.at("reason").text, "again")
        XCTAssertEqual(body.at("phase").text, "verify")
        guard case let .object(members) = body else { return XCTFail("not an object") }
        XCTAssertEqual(Set(members.map(\.key)), ["id", "appId", "deviceId", "manifestId", "status", "phase", "reason"])
        try queue.put(failed)
        let long = try StrictJSON.parse(queue.pending().first { $0.path.contains("7a6c") }!.body)
        XCTAssertEqual(long.at("reason").text.unicodeScalars.count, ReportQueue.maxReasonCharacters)
        queue.remove(pending[0].path)
        XCTAssertEqual(queue.pending().count, 1)
    }
}
