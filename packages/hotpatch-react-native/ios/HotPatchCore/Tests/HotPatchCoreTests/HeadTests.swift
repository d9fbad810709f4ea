import XCTest
@testable import HotPatchCore

final class HeadTests: XCTestCase {
    private var spec: JSON!
    private var role: TimestampRole!
    private var data: [UInt8]!
    private var now: UTCSeconds!
    private let mark = Position(1, 41)

    override func setUpWithError() throws {
        spec = try Vectors.json("head.verify.json")
        role = try TrustRoots.load(Array(try Vectors.bytes("trust-root.timestamp.envelope.json").dropLast())).timestamp
        data = Array(try Vectors.bytes("head.envelope.json").dropLast())
        now = UTCSeconds.parse(spec.at("now").text)
    }

    private func device(channel: String = "production") throws -> DeviceIdentity {
        DeviceIdentity(appId: "com.example.app", platform: .android, channel: channel, nativeVersion: try Version.parse("1.2.3"))
    }

    func testTheGoldenHeadVerifiesAndSaysWhatIsDueToEachDevice() throws {
        let head = try ChannelHeads.verify(data, role: role, identity: device(), at: now, newestSeen: nil, highWater: mark)
        XCTAssertEqual(head.expiresAt, UTCSeconds.parse(spec.at("expiresAt").text))
        let cases = spec.at("cases").items
        XCTAssertFalse(cases.isEmpty)
        for item in cases {
            let id = item.at("deviceId").text
            let failed = item.at("failed").items.map(\.text)
            XCTAssertEqual(Int64(Cohorts.bucket(deviceId: id, salt: head.releases[0].manifestId)), item.at("bucket").number, id)
            let due = ChannelHeads.dueOffers(head, deviceId: id, native: try device().nativeVersion, epoch: 1, above: mark,
                                             failed: failed)
            let expected: [String]? = item.at("due") == .null ? nil : item.at("due").items.map(\.text)
            XCTAssertEqual(due.map(Set.init), expected.map(Set.init), "\(id) failed=\(failed)")
        }
    }

    func testStaleReplayedForeignAndGappedHeadsAreRefused() throws {
        let expires = UTCSeconds.parse(spec.at("expiresAt").text)!
        let other = try TrustRoots.load(Array(try Vectors.bytes("trust-root.envelope.json").dropLast()))
        let cases: [(HotPatchError.Reason, () throws -> Void)] = [
            (.expired, { _ = try ChannelHeads.verify(self.data, role: self.role, identity: self.device(), at: expires, newestSeen: nil, highWater: self.mark) }),
            (.rollback, { _ = try ChannelHeads.verify(self.data, role: self.role, identity: self.device(), at: self.now,
                                                      newestSeen: UTCSeconds(expires.seconds + 3600), highWater: self.mark) }),
            (.rollback, { _ = try ChannelHeads.verify(self.data, role: self.role, identity: self.device(), at: self.now, newestSeen: nil, highWater: nil) }),
            (.identityMismatch, { _ = try ChannelHeads.verify(self.data, role: self.role, identity: self.device(channel: "beta"), at: self.now,
                                                              newestSeen: nil, highWater: self.mark) }),
            (.unknownKey, { _ = try ChannelHeads.verify(self.data, role: TimestampRole(keys: other.rootKeys, threshold: 1),
                                                        identity: self.device(), at: self.now, newestSeen: nil, highWater: self.mark) }),
        ]
        for (expected, attempt) in cases {
            do {
                try attempt()
                XCTFail("expected \(expected.rawValue), nothing was thrown")
            } catch let error as HotPatchError {
                XCTAssertEqual(error.reason, expected, error.message)
            }
        }
        // Within the tolerance, an older head from another server process is accepted.
        _ = try ChannelHeads.verify(data, role: role, identity: device(), at: now,
                                    newestSeen: UTCSeconds(now.seconds + ChannelHeads.toleranceSeconds), highWater: mark)
    }
}
