/// Stable, monotone rollout cohorts (hotpatch_core.cohort, docs/spec/device-protocol.md).
public enum Cohorts {
    public static let basisPoints = 10_000

    /// The device's bucket (0..9999) for `salt`: SHA-256 of the domain, salt and id
    /// (each separated by a zero byte), first 8 bytes as an unsigned number, mod 10000.
    public static func bucket(deviceId: String, salt: String, crypto: CryptoBackend = CryptoBackends.system) -> Int {
        let message = Array("hotpatch-cohort-v1".utf8) + [0] + Array(salt.utf8) + [0] + Array(deviceId.utf8)
        let head = crypto.sha256(message).prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Int(head % UInt64(basisPoints))
    }
}
