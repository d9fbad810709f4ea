import Foundation
import XCTest
@testable import HotPatchCore
#if canImport(CSodium)
import CSodium
#elseif canImport(CryptoKit)
import CryptoKit
#endif

final class ReleaseTests: XCTestCase {
    private var spec: JSON!
    private var root: TrustRoot!
    private var envelope: [UInt8]!
    private var now: UTCSeconds!

    override func setUpWithError() throws {
        spec = try Vectors.json("release.verify.json")
        root = try TrustRoots.load(Array(try Vectors.bytes("trust-root.envelope.json").dropLast()))
        envelope = Array(try Vectors.bytes("release.envelope.json").dropLast())
        now = UTCSeconds.parse(spec.at("now").text)
    }

    private func device(native: String? = nil, channel: String = "production") throws -> DeviceIdentity {
        let given = spec.at("device")
        return DeviceIdentity(appId: given.at("appId").text, platform: try Platform.of(given.at("platform").text),
                              channel: channel, nativeVersion: try Version.parse(native ?? given.at("nativeVersion").text))
    }

    private func mark(_ sequence: Int64, _ id: String = String(repeating: "0", count: 64)) -> HighWaterMark {
        HighWaterMark(epoch: 1, sequence: sequence, manifestId: id)
    }

    func testTheGoldenManifestDecodesFieldByField() throws {
        let manifest = try Manifests.decode(Array(try Vectors.bytes("release.manifest.json").dropLast()))
        XCTAssertEqual(manifest.appId, "com.example.app")
        XCTAssertEqual(manifest.platform, .android)
        XCTAssertEqual(manifest.sequence, 42)
        XCTAssertEqual(manifest.files.map(\.path), ["assets/drawable-mdpi/logo.png", "index.android.bundle"])
        XCTAssertEqual(manifest.files.reduce(Int64(0)) { $0 + $1.size }, manifest.archive.uncompressedSize)
        XCTAssertTrue(manifest.binaryRange.contains(try Version.parse("1.2.3")))
    }

    func testEveryBrokenManifestGetsTheReferencesError() throws {
        let cases = try Vectors.json("manifest.decode.json").items
        XCTAssertGreaterThanOrEqual(cases.count, 40)
        for item in cases {
            let expected: String? = item.at("error") == .null ? nil : item.at("error").text
            var actual: String?
            do {
                _ = try Manifests.decode(Array(item.at("body").text.utf8))
            } catch let error as HotPatchError {
                actual = error.reason.rawValue
            }
            XCTAssertEqual(actual, expected, item.at("change").text)
        }
    }

    func testTheGoldenReleaseVerifiesForItsDevice() throws {
        let release = try Releases.verify(envelope, root: root, device: device(), mark: mark(41), now: now)
        let expect = spec.at("expect")
        XCTAssertEqual(release.manifestId, expect.at("manifestId").text)
        XCTAssertEqual(release.manifestId, spec.at("manifestSha256").text)
        XCTAssertEqual(release.signedBy, Set(expect.at("signedBy").items.map(\.text)))
        XCTAssertEqual(release.highWaterMark(), HighWaterMark(epoch: 1, sequence: 42, manifestId: release.manifestId))
        // Accepting the same release again is not a rollback.
        _ = try Releases.verify(envelope, root: root, device: device(), mark: release.highWaterMark(), now: now)
    }

    func testEachDefenceThrowsTheErrorThatNamesItsAttack() throws {
        let rootBytes = Array(try Vectors.bytes("trust-root.envelope.json").dropLast())
        let cases: [(HotPatchError.Reason, () throws -> Void)] = [
            (.rollback, { _ = try Releases.verify(self.envelope, root: self.root, device: self.device(), mark: self.mark(43), now: self.now) }),
            (.equivocation, { _ = try Releases.verify(self.envelope, root: self.root, device: self.device(), mark: self.mark(42), now: self.now) }),
            (.identityMismatch, { _ = try Releases.verify(self.envelope, root: self.root, device: self.device(native: "1.3.0"), mark: nil, now: self.now) }),
            (.identityMismatch, { _ = try Releases.verify(self.envelope, root: self.root, device: self.device(channel: "beta"), mark: nil, now: self.now) }),
            (.badSignature, { _ = try Releases.verify(self.tampered(), root: self.root, device: self.device(), mark: nil, now: self.now) }),
            (.unknownKey, { _ = try Releases.verify(self.resigned(), root: self.root, device: self.device(), mark: nil, now: self.now) }),
            (.payloadType, { _ = try Releases.verify(rootBytes, root: self.root, device: self.device(), mark: nil, now: self.now) }),
            (.malformedEnvelope, { _ = try Releases.verify(Array("{}".utf8), root: self.root, device: self.device(), mark: nil, now: self.now) }),
        ]
        for (expected, attempt) in cases {
            do {
                try attempt()
                XCTFail("expected \(expected.rawValue), nothing was thrown")
            } catch let error as HotPatchError {
                XCTAssertEqual(error.reason, expected, error.message)
            }
        }
    }

    /// The golden envelope with one byte of its manifest changed, the signature kept.
    private func tampered() throws -> [UInt8] {
        let decoded = try Envelopes.decode(envelope)
        let changed = String(decoding: decoded.payload, as: UTF8.self)
            .replacingOccurrences(of: "\"sequence\":42", with: "\"sequence\":43")
        return rewrite(payload: Array(changed.utf8), signatures: nil)
    }

    /// The golden manifest signed by the golden test key, which the trust root does not list.
    private func resigned() throws -> [UInt8] {
        let decoded = try Envelopes.decode(envelope)
        let seed = Vectors.hex(try Vectors.json("keys.json").at("seedHex").text)
        let signature = sign(Envelopes.pae(payloadType: decoded.payloadType, body: decoded.payload), seed: seed)
        return rewrite(payload: nil, signatures: .array([.object([
            ("keyid", .string("")), ("sig", .string(Data(signature).base64EncodedString())),
        ])]))
    }

    private func rewrite(payload: [UInt8]?, signatures: JSON?) -> [UInt8] {
        guard case let .object(members) = try! StrictJSON.parse(envelope) else { fatalError("not an envelope") }
        return StrictJSON.canonical(.object(members.map { member in
            switch member.key {
            case "payload": return (member.key, payload.map { .string(Data($0).base64EncodedString()) } ?? member.value)
            case "signatures": return (member.key, signatures ?? member.value)
            default: return member
            }
        }))
    }

    private func sign(_ message: [UInt8], seed: [UInt8]) -> [UInt8] {
        #if canImport(CSodium)
        var publicKey = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        var secretKey = [UInt8](repeating: 0, count: Int(crypto_sign_SECRETKEYBYTES))
        _ = crypto_sign_seed_keypair(&publicKey, &secretKey, seed)
        var signature = [UInt8](repeating: 0, count: Int(crypto_sign_BYTES))
        _ = crypto_sign_detached(&signature, nil, message, UInt64(message.count), secretKey)
        return signature
        #else
        let key = try! Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        return Array(try! key.signature(for: message))
        #endif
    }
}
