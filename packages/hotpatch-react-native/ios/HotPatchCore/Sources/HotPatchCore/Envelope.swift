/// One signature of an envelope: a key id hint and the signature bytes.
public struct Signature: Equatable, Sendable {
    public let keyid: String
    public let sig: [UInt8]

    public init(keyid: String, sig: [UInt8]) {
        self.keyid = keyid
        self.sig = sig
    }
}

/// A payload type, the exact payload bytes, and the signatures over both (DSSE).
public struct Envelope: Equatable, Sendable {
    public let payloadType: String
    public let payload: [UInt8]
    public let signatures: [Signature]

    public init(payloadType: String, payload: [UInt8], signatures: [Signature]) {
        self.payloadType = payloadType
        self.payload = payload
        self.signatures = signatures
    }
}

/// What the signatures on an envelope proved, for the caller to judge (as the reference).
public struct SignatureReport: Equatable, Sendable {
    /// The distinct key ids that produced a valid signature.
    public let verified: Set<String>
    /// A signature named a known key but did not verify.
    public let badKnown: Bool
    /// A signature matched no known key.
    public let unknown: Bool
}

/// DSSE envelopes as hotpatch_core.envelope: parsed strictly, verified over the PAE.
public enum Envelopes {
    public static let maxEnvelopeBytes = 1 << 20
    public static let maxSignatures = 16

    /// The DSSE v1 pre-authentication encoding of `payloadType` and `body`.
    public static func pae(payloadType: String, body: [UInt8]) -> [UInt8] {
        let kind = Array(payloadType.utf8)
        return Array("DSSEv1 \(kind.count) ".utf8) + kind + Array(" \(body.count) ".utf8) + body
    }

    /// Parse envelope bytes strictly. Verifies nothing: see `checkSignatures`.
    public static func decode(_ data: [UInt8], maxBytes: Int = maxEnvelopeBytes) throws -> Envelope {
        if data.count > maxBytes { throw HotPatchError.tooLarge("envelope bytes", limit: maxBytes) }
        let document: JSON
        do {
            document = try StrictJSON.parse(data)
        } catch let error as HotPatchError {
            throw HotPatchError(.malformedEnvelope, "envelope is not strict JSON: \(error.message)")
        }
        guard case .object = document else {
            throw HotPatchError(.malformedEnvelope, "envelope must be a JSON object")
        }
        let missing = ["payload", "payloadType", "signatures"].filter { document[$0] == nil }
        if !missing.isEmpty {
            throw HotPatchError(.malformedEnvelope, "envelope lacks \(missing.joined(separator: ", "))")
        }
        guard case let .string(payloadType)? = document["payloadType"] else {
            throw HotPatchError(.malformedEnvelope, "payloadType must be a string")
        }
        guard case let .array(rawSignatures)? = document["signatures"] else {
            throw HotPatchError(.malformedEnvelope, "signatures must be a list")
        }
        if rawSignatures.count > maxSignatures {
            throw HotPatchError.tooLarge("number of signatures", limit: maxSignatures)
        }
        var signatures: [Signature] = []
        for (index, item) in rawSignatures.enumerated() {
            guard case .object = item else {
                throw HotPatchError(.malformedEnvelope, "signatures[\(index)] must be an object with a keyid")
            }
            let keyid: String
            switch item["keyid"] {
            case nil: keyid = ""
            case let .string(text)?: keyid = text
            default:
                throw HotPatchError(.malformedEnvelope, "signatures[\(index)] must be an object with a keyid")
            }
            signatures.append(Signature(keyid: keyid, sig: try base64(item["sig"], field: "sig")))
        }
        return Envelope(
            payloadType: payloadType,
            payload: try base64(document["payload"], field: "payload"),
            signatures: signatures
        )
    }

    private static func base64(_ value: JSON?, field: String) throws -> [UInt8] {
        guard case let .string(text)? = value, let bytes = try? Base64Strict.decode(text, field: field) else {
            throw HotPatchError(.malformedEnvelope, "\(field) must be base64 text")
        }
        return bytes
    }

    /// Verify every signature on `envelope` against `keys` (key id to public key).
    public static func checkSignatures(_ envelope: Envelope, keys: [String: PublicKey]) -> SignatureReport {
        let message = pae(payloadType: envelope.payloadType, body: envelope.payload)
        // Tried in key id order for a signature without a usable hint (a dictionary has none).
        let ordered = keys.values.sorted { $0.keyId < $1.keyId }
        var verified = Set<String>()
        var badKnown = false
        var unknown = false
        for signature in envelope.signatures {
            if let hinted = keys[signature.keyid] {
                if hinted.verify(message, signature: signature.sig) {
                    verified.insert(hinted.keyId)
                } else {
                    badKnown = true
                }
                continue
            }
            // DSSE makes the key id optional: without a usable hint, try each key.
            if let match = ordered.first(where: { $0.verify(message, signature: signature.sig) }) {
                verified.insert(match.keyId)
            } else {
                unknown = true
            }
        }
        return SignatureReport(verified: verified, badKnown: badKnown, unknown: unknown)
    }
}
