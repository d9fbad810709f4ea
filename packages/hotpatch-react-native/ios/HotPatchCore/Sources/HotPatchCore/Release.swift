/// What a device is: the app, platform and channel it follows, and its native version.
public struct DeviceIdentity: Sendable {
    public let appId: String
    public let platform: Platform
    public let channel: String
    public let nativeVersion: Version

    public init(appId: String, platform: Platform, channel: String, nativeVersion: Version) {
        self.appId = appId
        self.platform = platform
        self.channel = channel
        self.nativeVersion = nativeVersion
    }

    /// The key of this identity's high-water mark: `app/platform/channel`.
    public var scopeKey: String { "\(appId)/\(platform.rawValue)/\(channel)" }
}

/// An `(epoch, sequence)` pair, ordered as releases are.
public struct Position: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let epoch: Int64
    public let sequence: Int64

    public init(_ epoch: Int64, _ sequence: Int64) {
        self.epoch = epoch
        self.sequence = sequence
    }

    public static func < (lhs: Position, rhs: Position) -> Bool {
        (lhs.epoch, lhs.sequence) < (rhs.epoch, rhs.sequence)
    }

    public var description: String { "(\(epoch), \(sequence))" }
}

/// The newest release a device ever accepted for its (app, platform, channel).
public struct HighWaterMark: Equatable, Sendable {
    public let epoch: Int64
    public let sequence: Int64
    public let manifestId: String

    public init(epoch: Int64, sequence: Int64, manifestId: String) {
        self.epoch = epoch
        self.sequence = sequence
        self.manifestId = manifestId
    }

    public var position: Position { Position(epoch, sequence) }
}

/// A release whose envelope passed every check of `Releases.verify`. Only that
/// function creates one, and installing requires one (docs/security.md A1, A12).
public struct VerifiedRelease: Sendable {
    public let manifest: ReleaseManifest
    public let manifestId: String
    /// The exact envelope bytes that verified.
    public let envelope: [UInt8]
    public let signedBy: Set<String>

    fileprivate init(manifest: ReleaseManifest, manifestId: String, envelope: [UInt8], signedBy: Set<String>) {
        self.manifest = manifest
        self.manifestId = manifestId
        self.envelope = envelope
        self.signedBy = signedBy
    }

    /// The high-water mark a device records after accepting this release.
    public func highWaterMark() -> HighWaterMark {
        HighWaterMark(epoch: manifest.epoch, sequence: manifest.sequence, manifestId: manifestId)
    }
}

/// The one verification path for releases, in the reference's order (hotpatch_core.release).
public enum Releases {
    /// Base64 grows the manifest by 4/3; the envelope adds signatures and keys.
    public static let maxReleaseEnvelopeBytes = Manifests.maxManifestBytes * 4 / 3 + 16 * 1024

    /// Verify release envelope bytes for this device, or throw the error naming the attack.
    public static func verify(
        _ data: [UInt8], root: TrustRoot, device: DeviceIdentity, mark: HighWaterMark?, now: UTCSeconds,
        crypto: CryptoBackend = CryptoBackends.system
    ) throws -> VerifiedRelease {
        let envelope = try Envelopes.decode(data, maxBytes: maxReleaseEnvelopeBytes)
        guard envelope.payloadType == Manifests.payloadType else {
            throw HotPatchError(.payloadType, "expected a release manifest, got '\(envelope.payloadType.prefix(80))'")
        }
        if root.expired(now: now) {
            throw HotPatchError(.expired, "trust root v\(root.version) expired at \(root.expiresAt.map { "\($0)" } ?? "")")
        }
        let report = Envelopes.checkSignatures(envelope, keys: root.publisherKeyring())
        // Nothing is parsed unless at least one known key signed these exact bytes.
        try TrustRoots.requireThreshold(envelope, report, counted: report.verified, threshold: 1, what: "release manifest")
        let manifest = try Manifests.decode(envelope.payload)
        try checkIdentity(manifest, device)
        let signedBy = try authorise(envelope, report, manifest, root, now)
        let manifestId = Manifests.manifestId(envelope.payload, crypto: crypto)
        try checkSequence(manifest, manifestId, mark)
        return VerifiedRelease(manifest: manifest, manifestId: manifestId, envelope: data, signedBy: signedBy)
    }

    private static func authorise(
        _ envelope: Envelope, _ report: SignatureReport, _ manifest: ReleaseManifest, _ root: TrustRoot, _ now: UTCSeconds
    ) throws -> Set<String> {
        let byId = Dictionary(root.publishers.map { ($0.keyId, $0) }) { first, _ in first }
        let inScope = report.verified.filter {
            byId[$0]!.scope.covers(appId: manifest.appId, platform: manifest.platform.rawValue, channel: manifest.channel)
        }
        let eligible = inScope.filter { !byId[$0]!.expired(now: now) }
        if eligible.isEmpty {
            if !inScope.isEmpty {
                let names = inScope.map { byId[$0]!.name }.sorted(by: scalarOrder).joined(separator: ", ")
                throw HotPatchError(.expired, "release signed only by expired publisher keys (\(names))")
            }
            let names = report.verified.map { byId[$0]!.name }.sorted(by: scalarOrder).joined(separator: ", ")
            throw HotPatchError(.keyScope, "publisher keys (\(names)) may not sign "
                + "\(manifest.appId)/\(manifest.platform.rawValue)/\(manifest.channel)")
        }
        try TrustRoots.requireThreshold(envelope, report, counted: eligible,
                                        threshold: root.releaseThreshold(channel: manifest.channel),
                                        what: "release for '\(manifest.channel)'")
        if manifest.epoch != root.epoch {
            throw HotPatchError(.epoch, "manifest is from epoch \(manifest.epoch), the trust root is at epoch \(root.epoch)")
        }
        if let expires = manifest.expiresAt, now >= expires {
            throw HotPatchError(.expired, "release manifest expired at \(expires)")
        }
        return eligible
    }

    private static func checkIdentity(_ manifest: ReleaseManifest, _ device: DeviceIdentity) throws {
        if !sameScalars(manifest.appId, device.appId) {
            throw HotPatchError(.identityMismatch, "release is for app '\(manifest.appId)', this device runs '\(device.appId)'",
                                field: "app_id")
        }
        if manifest.platform != device.platform {
            throw HotPatchError(.identityMismatch,
                                "release is for \(manifest.platform.rawValue), this device is \(device.platform.rawValue)",
                                field: "platform")
        }
        if !sameScalars(manifest.channel, device.channel) {
            throw HotPatchError(.identityMismatch,
                                "release is for channel '\(manifest.channel)', this device follows '\(device.channel)'",
                                field: "channel")
        }
        if !manifest.binaryRange.contains(device.nativeVersion) {
            throw HotPatchError(.identityMismatch,
                                "release needs native '\(manifest.binaryRange)', this device runs \(device.nativeVersion)",
                                field: "binary_range")
        }
    }

    private static func checkSequence(_ manifest: ReleaseManifest, _ manifestId: String, _ mark: HighWaterMark?) throws {
        guard let mark else { return }
        let position = Position(manifest.epoch, manifest.sequence)
        if position < mark.position {
            throw HotPatchError(.rollback, "release \(position) is older than the newest accepted \(mark.position)")
        }
        if position == mark.position && manifestId != mark.manifestId {
            throw HotPatchError(.equivocation, "a different manifest was already accepted at (epoch, sequence) \(position)")
        }
    }
}
