/// An Ed25519 public key (32 raw bytes) and its key id: the SHA-256 of the raw key, in hex.
public struct PublicKey: Hashable, Sendable {
    public static let size = 32
    public static let signatureSize = 64

    public let raw: [UInt8]
    public let keyId: String
    private let crypto: CryptoBackend

    public init(raw: [UInt8], crypto: CryptoBackend = CryptoBackends.system) throws {
        guard raw.count == PublicKey.size else {
            throw HotPatchError(.format, "an Ed25519 public key is \(PublicKey.size) bytes, not \(raw.count)")
        }
        self.raw = raw
        self.crypto = crypto
        keyId = Hex.encode(crypto.sha256(raw))
    }

    public static func fromBase64(_ text: String, crypto: CryptoBackend = CryptoBackends.system) throws -> PublicKey {
        try PublicKey(raw: Base64Strict.decode(text, field: "publicKey"), crypto: crypto)
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`; never throws.
    public func verify(_ message: [UInt8], signature: [UInt8]) -> Bool {
        signature.count == PublicKey.signatureSize
            && crypto.verifyEd25519(publicKey: raw, message: message, signature: signature)
    }

    public static func == (lhs: PublicKey, rhs: PublicKey) -> Bool { lhs.keyId == rhs.keyId }

    public func hash(into hasher: inout Hasher) { hasher.combine(keyId) }
}

/// Lower-case hexadecimal.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Standard base64 with padding, refused (not repaired) when malformed, as the
/// reference's `base64.b64decode(text, validate=True)`: the alphabet A-Z a-z 0-9 + /,
/// at most two `=` and only at the end, a length that is a multiple of four.
public enum Base64Strict {
    public static func decode(_ text: String, field: String) throws -> [UInt8] {
        let refused = HotPatchError(.format, "\(field) is not standard base64")
        let chars = Array(text.utf8)
        guard text.unicodeScalars.allSatisfy(\.isASCII), chars.count % 4 == 0 else { throw refused }
        let padding = chars.reversed().prefix { $0 == UInt8(ascii: "=") }.count
        guard padding <= 2 else { throw refused }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 4 * 3)
        var buffer: UInt32 = 0
        var bits = 0
        for char in chars.dropLast(padding) {
            guard let value = sextet(char) else { throw refused }
            buffer = buffer << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        // Python accepts leftover bits that are not zero; so do we. A lone
        // data character in the last quantum ("A===") cannot occur: padding <= 2.
        return out
    }

    private static func sextet(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return char - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return char - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return char - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
