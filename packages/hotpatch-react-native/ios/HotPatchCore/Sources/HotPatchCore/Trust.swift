/// What a publisher key may sign: apps, platforms and channels (`*` = any).
public struct Scope: Equatable, Sendable {
    public let apps: [String]
    public let platforms: [String]
    public let channels: [String]

    public func covers(appId: String, platform: String, channel: String) -> Bool {
        Scope.allows(apps, appId) && Scope.allows(platforms, platform) && Scope.allows(channels, channel)
    }

    private static func allows(_ names: [String], _ name: String) -> Bool {
        names.contains { sameScalars($0, "*") || sameScalars($0, name) }
    }
}

/// A key that may sign release manifests within its scope until it expires.
public struct PublisherKey: Equatable, Sendable {
    public let publicKey: PublicKey
    public let name: String
    public let scope: Scope
    public let expiresAt: UTCSeconds?

    public var keyId: String { publicKey.keyId }

    public func expired(now: UTCSeconds) -> Bool { expiresAt.map { now >= $0 } ?? false }
}

/// Keys that sign channel heads (freshness only) and how many must sign each.
public struct TimestampRole: Equatable, Sendable {
    public let keys: [PublicKey]
    public let threshold: Int

    public func keyring() -> [String: PublicKey] { Dictionary(keys.map { ($0.keyId, $0) }) { first, _ in first } }
}

/// Version `version` of an app's trust root (docs/spec/trust-root.md), as hotpatch_core.trust.
public struct TrustRoot: Equatable, Sendable {
    public let version: Int64
    public let epoch: Int64
    public let rootKeys: [PublicKey]
    public let rootThreshold: Int
    public let publishers: [PublisherKey]
    public let releaseThresholds: [(channel: String, threshold: Int)]
    public let expiresAt: UTCSeconds?
    public let timestamp: TimestampRole?

    public static func == (lhs: TrustRoot, rhs: TrustRoot) -> Bool {
        lhs.version == rhs.version && lhs.epoch == rhs.epoch && lhs.rootKeys == rhs.rootKeys
            && lhs.rootThreshold == rhs.rootThreshold && lhs.publishers == rhs.publishers
            && lhs.releaseThresholds.map(\.threshold) == rhs.releaseThresholds.map(\.threshold)
            && zip(lhs.releaseThresholds, rhs.releaseThresholds).allSatisfy { sameScalars($0.channel, $1.channel) }
            && lhs.expiresAt == rhs.expiresAt && lhs.timestamp == rhs.timestamp
    }

    public func rootKeyring() -> [String: PublicKey] { Dictionary(rootKeys.map { ($0.keyId, $0) }) { first, _ in first } }

    /// Publisher public keys by id, expired or not (expiry is judged per use).
    public func publisherKeyring() -> [String: PublicKey] {
        Dictionary(publishers.map { ($0.keyId, $0.publicKey) }) { first, _ in first }
    }

    public func releaseThreshold(channel: String) -> Int {
        releaseThresholds.first { sameScalars($0.channel, channel) }?.threshold ?? 1
    }

    public func expired(now: UTCSeconds) -> Bool { expiresAt.map { now >= $0 } ?? false }
}

/// Loading and rotating trust roots, with the reference's checks and errors.
public enum TrustRoots {
    public static let payloadType = "application/vnd.hotpatch.root+json"
    public static let format: Int64 = 1
    public static let maxRootBytes = 512 * 1024

    /// Load the root an app embeds: a threshold of its own root keys must sign it.
    public static func load(_ data: [UInt8], crypto: CryptoBackend = CryptoBackends.system) throws -> TrustRoot {
        let envelope = try rootEnvelope(data)
        let root = try decodeBody(envelope.payload, crypto: crypto)
        try selfSigned(envelope, root, "trust root v\(root.version)")
        return root
    }

    /// Accept root version N+1 if a threshold of both N's and N+1's root keys signed it.
    public static func rotate(
        _ current: TrustRoot, _ data: [UInt8], crypto: CryptoBackend = CryptoBackends.system
    ) throws -> TrustRoot {
        let envelope = try rootEnvelope(data)
        // Verify with the current root's keys before reading the new body.
        let old = Envelopes.checkSignatures(envelope, keys: current.rootKeyring())
        do {
            try requireThreshold(envelope, old, counted: old.verified, threshold: current.rootThreshold,
                                 what: "trust root rotation from v\(current.version)")
        } catch let error as HotPatchError where error.reason.isA(.verification) {
            throw HotPatchError(.rootRotation, "not signed by the current root's keys: \(error.message)")
        }
        let next = try decodeBody(envelope.payload, crypto: crypto)
        do {
            try selfSigned(envelope, next, "trust root v\(next.version)")
        } catch let error as HotPatchError where error.reason.isA(.verification) {
            throw HotPatchError(.rootRotation, "not signed by the new root's own keys: \(error.message)")
        }
        if next.version != current.version + 1 {
            throw HotPatchError(.rootRotation, "trust root v\(next.version) does not follow v\(current.version) "
                + "(expected v\(current.version + 1))")
        }
        if next.epoch < current.epoch {
            throw HotPatchError(.rootRotation, "epoch may not go back from \(current.epoch) to \(next.epoch)")
        }
        return next
    }

    private static func rootEnvelope(_ data: [UInt8]) throws -> Envelope {
        let envelope = try Envelopes.decode(data, maxBytes: maxRootBytes)
        guard envelope.payloadType == payloadType else {
            throw HotPatchError(.payloadType, "expected a trust root, got '\(envelope.payloadType.prefix(80))'")
        }
        return envelope
    }

    /// Throw the telling error unless `counted` (verified eligible keys) meets `threshold`.
    public static func requireThreshold(
        _ envelope: Envelope, _ report: SignatureReport, counted: Set<String>, threshold: Int, what: String
    ) throws {
        if counted.count >= threshold { return }
        if envelope.signatures.isEmpty { throw HotPatchError(.unsigned, "\(what) carries no signature") }
        if report.verified.isEmpty {
            if report.badKnown {
                throw HotPatchError(.badSignature, "\(what): signature does not verify over these exact bytes")
            }
            throw HotPatchError(.unknownKey, "\(what): signed by no key the trust root knows")
        }
        throw HotPatchError(.threshold, "\(what) needs \(threshold) distinct trusted signatures, has \(counted.count)")
    }

    private static func selfSigned(_ envelope: Envelope, _ root: TrustRoot, _ what: String) throws {
        let report = Envelopes.checkSignatures(envelope, keys: root.rootKeyring())
        try requireThreshold(envelope, report, counted: report.verified, threshold: root.rootThreshold, what: what)
    }

    /// Parse a trust root body strictly (after its signatures were checked, or to check them).
    public static func decodeBody(_ body: [UInt8], crypto: CryptoBackend = CryptoBackends.system) throws -> TrustRoot {
        let fields = try Fields.ofDocument(body, format: format, what: "trust root")
        let rootKeys = try fields.list("rootKeys").enumerated().map { try publicKey($1, "rootKeys[\($0)]", crypto) }
        let publishers = try fields.list("publishers").enumerated().map { try publisher($1, "publishers[\($0)]", crypto) }
        let thresholds = try fields.object("releaseThresholds", default: []).map { member -> (channel: String, threshold: Int) in
            guard case let .integer(number) = member.value else {
                throw HotPatchError.schema("expected an int", "releaseThresholds.\(member.key)")
            }
            guard number >= 1, number <= Int64(Int32.max) else {
                throw HotPatchError.schema("must be a positive integer", "releaseThresholds.\(member.key)")
            }
            return (member.key, Int(number))
        }
        let root = TrustRoot(
            version: try fields.positive("version"),
            epoch: try fields.positive("epoch"),
            rootKeys: rootKeys,
            rootThreshold: try fields.int("rootThreshold"),
            publishers: publishers,
            releaseThresholds: thresholds,
            expiresAt: try fields.time("expiresAt"),
            timestamp: try fields.optional("timestamp").map { try timestampRole($0, crypto) }
        )
        try validate(root)
        return root
    }

    private static func validate(_ root: TrustRoot) throws {
        let rootIds = root.rootKeys.map(\.keyId)
        if Set(rootIds).count != rootIds.count { throw HotPatchError.schema("a root key is listed twice", "rootKeys") }
        let publisherIds = root.publishers.map(\.keyId)
        if Set(publisherIds).count != publisherIds.count {
            throw HotPatchError.schema("a publisher key is listed twice", "publishers")
        }
        if let stamp = root.timestamp, stamp.keys.contains(where: { rootIds.contains($0.keyId) || publisherIds.contains($0.keyId) }) {
            throw HotPatchError.schema("a timestamp key may not also be a root or publisher key", "timestamp")
        }
        if !(1...max(rootIds.count, 1)).contains(root.rootThreshold) || rootIds.isEmpty {
            throw HotPatchError.schema("must be between 1 and the number of root keys", "rootThreshold")
        }
        for (channel, threshold) in root.releaseThresholds where !(1...max(publisherIds.count, 1)).contains(threshold) {
            throw HotPatchError.schema(
                "threshold for '\(channel)' must be between 1 and the number of publisher keys", "releaseThresholds")
        }
    }

    private static func publicKey(_ value: JSON, _ field: String, _ crypto: CryptoBackend) throws -> PublicKey {
        guard case let .string(text) = value else { throw HotPatchError.schema("expected a base64 public key", field) }
        do {
            return try PublicKey.fromBase64(text, crypto: crypto)
        } catch let error as HotPatchError {
            throw HotPatchError.schema(error.message, field)
        }
    }

    /// `*`, or a name of 1 to 128 characters from A-Z a-z 0-9 . _ - that starts with a letter or digit.
    static func isName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        if bytes == [UInt8(ascii: "*")] { return true }
        func allowed(_ byte: UInt8, first: Bool) -> Bool {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"): return !first
            default: return false
            }
        }
        return (1...128).contains(bytes.count) && bytes.enumerated().allSatisfy { allowed($1, first: $0 == 0) }
    }

    private static func names(_ fields: Fields, _ name: String) throws -> [String] {
        let items = try fields.list(name).enumerated().map { index, item -> String in
            guard case let .string(text) = item else { throw HotPatchError.schema("expected a str", "\(fields.at(name))[\(index)]") }
            return text
        }
        if items.isEmpty { throw HotPatchError.schema("must list at least one name, or '*'", fields.at(name)) }
        for item in items where !isName(item) {
            throw HotPatchError.schema("'\(item.prefix(40))' is not a valid name", fields.at(name))
        }
        return items
    }

    private static func publisher(_ value: JSON, _ at: String, _ crypto: CryptoBackend) throws -> PublisherKey {
        let fields = try Fields.of(value, at: at)
        let scope = try Fields.of(.object(try fields.object("scope")), at: fields.at("scope"))
        return PublisherKey(
            publicKey: try publicKey(try fields.require("publicKey"), fields.at("publicKey"), crypto),
            name: try fields.string("name"),
            scope: Scope(apps: try names(scope, "apps"), platforms: try names(scope, "platforms"),
                         channels: try names(scope, "channels")),
            expiresAt: try fields.time("expiresAt")
        )
    }

    private static func timestampRole(_ value: JSON, _ crypto: CryptoBackend) throws -> TimestampRole {
        let fields = try Fields.of(value, at: "timestamp")
        let keys = try fields.list("keys").enumerated().map { try publicKey($1, "timestamp.keys[\($0)]", crypto) }
        let threshold = try fields.int("threshold", default: 1)
        if keys.isEmpty { throw HotPatchError.schema("must list at least one key", "keys") }
        if Set(keys.map(\.keyId)).count != keys.count { throw HotPatchError.schema("a timestamp key is listed twice", "keys") }
        if !(1...keys.count).contains(threshold) {
            throw HotPatchError.schema("must be between 1 and the number of timestamp keys", "threshold")
        }
        return TimestampRole(keys: keys, threshold: threshold)
    }
}
