#if canImport(CryptoKit)
import CryptoKit
#elseif canImport(CSodium)
import CSodium
#endif

/// The two primitives the core needs: SHA-256 and Ed25519 verification.
///
/// The core never signs. `CryptoBackends.system` is CryptoKit on Apple
/// platforms and libsodium elsewhere (the Linux test build).
public protocol CryptoBackend: Sendable {
    func sha256(_ data: [UInt8]) -> [UInt8]
    /// A SHA-256 over bytes given a part at a time (files larger than memory).
    func sha256Stream() -> SHA256Stream
    /// Whether `signature` is the Ed25519 signature of `message` by the 32-byte `publicKey`.
    /// Never throws: a malformed key or signature is simply not valid.
    func verifyEd25519(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool
}

/// An incremental SHA-256: `update` with each part, then `finish` once.
public protocol SHA256Stream: AnyObject {
    func update(_ data: UnsafeRawBufferPointer)
    func finish() -> [UInt8]
}

public enum CryptoBackends {
    #if canImport(CryptoKit)
    public static let system: CryptoBackend = CryptoKitBackend()
    #elseif canImport(CSodium)
    public static let system: CryptoBackend = SodiumBackend()
    #endif
}

#if canImport(CryptoKit)
/// Apple's CryptoKit (iOS 13+).
public struct CryptoKitBackend: CryptoBackend {
    public init() {}

    public func sha256(_ data: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: data))
    }

    public func sha256Stream() -> SHA256Stream { Stream() }

    private final class Stream: SHA256Stream {
        private var hasher = SHA256()

        func update(_ data: UnsafeRawBufferPointer) { hasher.update(bufferPointer: data) }

        func finish() -> [UInt8] { Array(hasher.finalize()) }
    }

    public func verifyEd25519(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool {
        guard publicKey.count == 32, signature.count == 64,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey)
        else { return false }
        return key.isValidSignature(signature, for: message)
    }
}
#elseif canImport(CSodium)
/// libsodium, the library behind the Python reference's PyNaCl.
public struct SodiumBackend: CryptoBackend {
    private static let ready: Bool = sodium_init() >= 0

    public init() {
        precondition(SodiumBackend.ready, "libsodium failed to initialise")
    }

    public func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        _ = crypto_hash_sha256(&out, data, UInt64(data.count))
        return out
    }

    public func sha256Stream() -> SHA256Stream { Stream() }

    private final class Stream: SHA256Stream {
        private var state = crypto_hash_sha256_state()

        init() { _ = crypto_hash_sha256_init(&state) }

        func update(_ data: UnsafeRawBufferPointer) {
            guard let base = data.baseAddress else { return }
            _ = crypto_hash_sha256_update(&state, base.assumingMemoryBound(to: UInt8.self), UInt64(data.count))
        }

        func finish() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
            _ = crypto_hash_sha256_final(&state, &out)
            return out
        }
    }

    public func verifyEd25519(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool {
        guard publicKey.count == Int(crypto_sign_PUBLICKEYBYTES),
              signature.count == Int(crypto_sign_BYTES)
        else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), publicKey) == 0
    }
}
#endif
