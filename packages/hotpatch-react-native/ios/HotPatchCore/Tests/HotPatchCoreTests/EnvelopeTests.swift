import XCTest
@testable import HotPatchCore

final class EnvelopeTests: XCTestCase {
    func testPAEMatchesEveryVector() throws {
        let cases = try Vectors.json("pae.json").items
        XCTAssertFalse(cases.isEmpty)
        for item in cases {
            let pae = Envelopes.pae(payloadType: item.at("payloadType").text, body: Vectors.hex(item.at("bodyHex").text))
            XCTAssertEqual(pae, Vectors.hex(item.at("paeHex").text), item.at("payloadType").text)
        }
    }

    func testTheKeyVectorsIdAndSignatureVerifyAndAChangedByteDoesNot() throws {
        let keys = try Vectors.json("keys.json")
        let key = try PublicKey.fromBase64(keys.at("publicKeyBase64").text)
        XCTAssertEqual(key.keyId, keys.at("keyId").text)
        var signature = Vectors.hex(keys.at("signatureOverHelloHex").text)
        XCTAssertTrue(key.verify(Array("hello".utf8), signature: signature))
        XCTAssertFalse(key.verify(Array("hellO".utf8), signature: signature))
        XCTAssertFalse(key.verify(Array("hello".utf8), signature: Array(signature.dropLast())))
        signature[5] ^= 1
        XCTAssertFalse(key.verify(Array("hello".utf8), signature: signature))
    }

    private func keys(_ texts: [JSON]) throws -> [String: PublicKey] {
        let list = try texts.map { try PublicKey.fromBase64($0.text) }
        return Dictionary(uniqueKeysWithValues: list.map { ($0.keyId, $0) })
    }

    func testTheTrustRootVectorIsSignedByItsRootKeysAndTheReleaseByItsPublisher() throws {
        let rootEnvelope = try Envelopes.decode(Vectors.bytes("trust-root.envelope.json"))
        XCTAssertEqual(rootEnvelope.payloadType, "application/vnd.hotpatch.root+json")
        let root = try StrictJSON.parse(rootEnvelope.payload)
        let rootKeys = try keys(root.at("rootKeys").items)
        let report = Envelopes.checkSignatures(rootEnvelope, keys: rootKeys)
        XCTAssertEqual(report.verified, Set(rootKeys.keys))
        XCTAssertFalse(report.badKnown || report.unknown)

        let publishers = try keys(root.at("publishers").items.map { $0.at("publicKey") })
        let release = try Envelopes.decode(Vectors.bytes("release.envelope.json"))
        XCTAssertEqual(Envelopes.checkSignatures(release, keys: publishers).verified, Set(publishers.keys))
        // The root keys did not sign the release: nothing verifies, each signature is unknown.
        let wrong = Envelopes.checkSignatures(release, keys: rootKeys)
        XCTAssertEqual(wrong.verified, [])
        XCTAssertTrue(wrong.unknown)
    }

    func testAChangedPayloadFailsItsKnownKey() throws {
        let envelope = try Envelopes.decode(Vectors.bytes("release.envelope.json"))
        var payload = envelope.payload
        payload[payload.count - 2] ^= 1
        let changed = Envelope(payloadType: envelope.payloadType, payload: payload, signatures: envelope.signatures)
        let root = try StrictJSON.parse(Envelopes.decode(Vectors.bytes("trust-root.envelope.json")).payload)
        let report = Envelopes.checkSignatures(changed, keys: try keys(root.at("publishers").items.map { $0.at("publicKey") }))
        XCTAssertEqual(report.verified, [])
        XCTAssertTrue(report.badKnown)
    }

    func testMalformedEnvelopesAreRefusedAsTheReferenceRefusesThem() {
        let cases = [
            "[]",
            #"{"payloadType":"t","payload":"e30="}"#,
            #"{"payloadType":1,"payload":"e30=","signatures":[]}"#,
            #"{"payloadType":"t","payload":"not base64!","signatures":[]}"#,
            #"{"payloadType":"t","payload":"e30","signatures":[]}"#,
            #"{"payloadType":"t","payload":"e===","signatures":[]}"#,
            #"{"payloadType":"t","payload":"e3=0","signatures":[]}"#,
            #"{"payloadType":"t","payload":"e30=","signatures":{}}"#,
            #"{"payloadType":"t","payload":"e30=","signatures":[{"keyid":1,"sig":"AA=="}]}"#,
            #"{"payloadType":"t","payload":"e30=","signatures":["AA=="]}"#,
            #"{"payloadType":"t","payload":"e30=","signatures":[],"payloadType":"u"}"#,
        ]
        for text in cases {
            assertRefused(.malformedEnvelope, text) { try Envelopes.decode(Array(text.utf8)) }
        }
        let many = Array(repeating: #"{"keyid":"k","sig":"AA=="}"#, count: Envelopes.maxSignatures + 1).joined(separator: ",")
        assertRefused(.tooLarge) {
            try Envelopes.decode(Array(#"{"payloadType":"t","payload":"e30=","signatures":[\#(many)]}"#.utf8))
        }
        assertRefused(.tooLarge) { try Envelopes.decode([UInt8](repeating: 0x20, count: Envelopes.maxEnvelopeBytes + 1)) }
    }

    func testBase64ReadsAsPythonsValidatingDecoder() throws {
        XCTAssertEqual(try Base64Strict.decode("", field: "f"), [])
        XCTAssertEqual(try Base64Strict.decode("e30=", field: "f"), Array("{}".utf8))
        XCTAssertEqual(try Base64Strict.decode("AAECAw==", field: "f"), [0, 1, 2, 3])
        XCTAssertEqual(try Base64Strict.decode("//79", field: "f"), [0xFF, 0xFE, 0xFD])
        XCTAssertEqual(try Base64Strict.decode("AB==", field: "f"), [0]) // leftover bits are ignored, as by Python
        for bad in ["A", "AA", "AAA", "A===", "====", "AA=A", "AA-_", "AA\n=", "ÀAAA"] {
            assertRefused(.format, bad) { try Base64Strict.decode(bad, field: "f") }
        }
    }
}
