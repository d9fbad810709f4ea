import Foundation
import XCTest
@testable import HotPatchCore

final class TrustTests: XCTestCase {
    private func scenario(_ name: String) throws -> JSON {
        let url = Vectors.spec.appendingPathComponent("conformance").appendingPathComponent("\(name).json")
        return try StrictJSON.parse([UInt8](try Data(contentsOf: url)))
    }

    private func base64(_ value: JSON) -> [UInt8] { [UInt8](Data(base64Encoded: value.text)!) }

    /// The same envelope with its payload replaced (the signatures kept).
    private func withPayload(_ envelope: [UInt8], _ payload: String) throws -> [UInt8] {
        guard case let .object(members) = try StrictJSON.parse(envelope) else { fatalError("not an envelope") }
        let encoded = JSON.string(Data(payload.utf8).base64EncodedString())
        return StrictJSON.canonical(.object(members.map { ($0.key, $0.key == "payload" ? encoded : $0.value) }))
    }

    private func rootBody() throws -> String {
        String(decoding: try Envelopes.decode(Vectors.bytes("trust-root.envelope.json")).payload, as: UTF8.self)
    }

    func testTheGoldenTrustRootsLoadTheTimestampRoleWithThem() throws {
        let root = try TrustRoots.load(Vectors.bytes("trust-root.envelope.json"))
        XCTAssertEqual(root.version, 1)
        XCTAssertEqual(root.epoch, 1)
        XCTAssertEqual(root.rootThreshold, 1)
        XCTAssertEqual(root.publishers.count, 1)
        XCTAssertEqual(root.publishers[0].scope.apps, ["*"])
        XCTAssertTrue(root.publishers[0].scope.covers(appId: "com.example.app", platform: "android", channel: "production"))
        XCTAssertNil(root.timestamp)
        let stamped = try TrustRoots.load(Vectors.bytes("trust-root.timestamp.envelope.json"))
        XCTAssertEqual(stamped.timestamp?.threshold, 1)
        XCTAssertEqual(stamped.timestamp?.keys.count, 1)
    }

    func testADeviceWalksTheRotationOfTheConformanceScenarioAndOnlyForward() throws {
        let story = try scenario("trust-root-rotation")
        let embedded = try TrustRoots.load(base64(story.at("config").at("trustRoot")))
        let next = story.at("steps").items.map { $0.at("event") }.first {
            $0.at("type").text == "RootAnswered" && $0["envelope"] != .null
        }!
        let rotated = try TrustRoots.rotate(embedded, base64(next.at("envelope")))
        XCTAssertEqual(rotated.version, embedded.version + 1)
        // The old publisher is gone from v2: its key no longer signs releases.
        XCTAssertNil(rotated.publisherKeyring()[embedded.publishers[0].keyId])
        assertRefused(.rootRotation) { try TrustRoots.rotate(rotated, base64(next.at("envelope"))) }
    }

    func testAChangedBodyNoLongerVerifiesAndOtherPayloadTypesAreRefused() throws {
        let envelope = try Vectors.bytes("trust-root.envelope.json")
        let changed = try withPayload(envelope, try rootBody().replacingOccurrences(of: "\"epoch\":1", with: "\"epoch\":2"))
        assertRefused(.badSignature) { try TrustRoots.load(changed) }
        assertRefused(.payloadType) { try TrustRoots.load(Vectors.bytes("release.envelope.json")) }
        let root = try TrustRoots.load(envelope)
        assertRefused(.rootRotation) { try TrustRoots.rotate(root, envelope) } // v1 does not follow v1
        let unsigned = try StrictJSON.canonical(.object([
            ("payloadType", .string(TrustRoots.payloadType)),
            ("payload", .string(Data(rootBody().utf8).base64EncodedString())),
            ("signatures", .array([])),
        ]))
        assertRefused(.unsigned) { try TrustRoots.load(unsigned) }
    }

    func testBodiesThatBreakTheTrustRootsRulesAreRefusedNamingTheField() throws {
        let body = try rootBody()
        let cases: [(String, String)] = [
            (body.replacingOccurrences(of: "\"format\":1,", with: ""), "UnsupportedFormatError"),
            (body.replacingOccurrences(of: "\"format\":1", with: "\"format\":2"), "UnsupportedFormatError"),
            (body.replacingOccurrences(of: "\"rootThreshold\":1", with: "\"rootThreshold\":2"), "rootThreshold"),
            (body.replacingOccurrences(of: "\"rootThreshold\":1", with: "\"rootThreshold\":true"), "rootThreshold"),
            (body.replacingOccurrences(of: "\"version\":1", with: "\"version\":0"), "version"),
            (body.replacingOccurrences(of: "\"apps\":[\"*\"]", with: "\"apps\":[]"), "publishers[0].scope.apps"),
            (body.replacingOccurrences(of: "\"apps\":[\"*\"]", with: "\"apps\":[\"*\\n\"]"), "publishers[0].scope.apps"),
            (body.replacingOccurrences(of: "\"apps\":[\"*\"]", with: "\"apps\":[\"\\u0661pp\"]"), "publishers[0].scope.apps"),
            (body.replacingOccurrences(of: "\"name\":\"ci\"", with: "\"name\":\"ci\",\"expiresAt\":\"2027-01-01T00:00:00+00:00\""),
             "publishers[0].expiresAt"),
            (body.replacingOccurrences(of: "\"name\":\"ci\"", with: "\"name\":\"ci\",\"expiresAt\":\"2027-02-29T00:00:00Z\""),
             "publishers[0].expiresAt"),
        ]
        for (text, expected) in cases {
            XCTAssertNotEqual(text, body, "the case changed nothing: \(expected)")
            do {
                _ = try TrustRoots.decodeBody(Array(text.utf8))
                XCTFail("accepted: \(text)")
            } catch let error as HotPatchError {
                XCTAssertEqual(error.reason == .schema ? error.field : error.reason.rawValue, expected, text)
            }
        }
        let expiring = body.replacingOccurrences(of: "\"name\":\"ci\"", with: "\"name\":\"ci\",\"expiresAt\":\"2027-01-01T00:00:00Z\"")
        let publisher = try TrustRoots.decodeBody(Array(expiring.utf8)).publishers[0]
        XCTAssertEqual(publisher.expiresAt, UTCSeconds.parse("2027-01-01T00:00:00Z"))
        XCTAssertTrue(publisher.expired(now: UTCSeconds.parse("2027-01-01T00:00:00Z")!))
        XCTAssertFalse(publisher.expired(now: UTCSeconds.parse("2026-12-31T23:59:59Z")!))
    }

    func testTimesParseAsTheReferenceParsesThem() throws {
        let cases = try Vectors.json("times.json").items
        XCTAssertGreaterThanOrEqual(cases.count, 20)
        for item in cases {
            let text = item.at("text").text
            let expected: Int64? = item.at("epochSeconds") == .null ? nil : item.at("epochSeconds").number
            XCTAssertEqual(UTCSeconds.parse(text)?.seconds, expected, text)
            if let expected { XCTAssertEqual(UTCSeconds(expected).rfc3339, text) } // and written back the same
        }
    }
}
