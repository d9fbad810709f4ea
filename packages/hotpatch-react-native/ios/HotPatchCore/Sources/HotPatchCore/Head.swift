/// One release the server may offer: what the device needs to know who gets it.
public struct HeadRelease: Sendable {
    public let manifestId: String
    public let epoch: Int64
    public let sequence: Int64
    public let binaryRange: BinaryRange
    public let rolloutBasisPoints: Int
    public let paused: Bool

    public var position: Position { Position(epoch, sequence) }

    /// Whether the server offers this release to `deviceId` on `native` (the cohort rules).
    public func serves(deviceId: String, native: Version) -> Bool {
        !paused && binaryRange.contains(native) && Cohorts.bucket(deviceId: deviceId, salt: manifestId) < rolloutBasisPoints
    }
}

/// The releases a channel offers newer than `after`, signed at `issuedAt` (hotpatch_core.head).
public struct ChannelHead: Sendable {
    public let appId: String
    public let platform: String
    public let channel: String
    public let issuedAt: UTCSeconds
    public let expiresAt: UTCSeconds
    public let releases: [HeadRelease]
    public let after: Position?

    /// Whether `manifestId` is one of the releases the server may offer now.
    public func lists(_ manifestId: String) -> Bool { releases.contains { $0.manifestId == manifestId } }
}

/// Verifying signed channel heads and judging what they say is due (docs/spec/device-protocol.md).
public enum ChannelHeads {
    public static let payloadType = "application/vnd.hotpatch.head+json"
    public static let format: Int64 = 1
    public static let maxHeadBytes = 64 * 1024
    public static let maxHeadReleases = 64
    /// How much older than the newest head seen a head may be (each server process signs its own).
    public static let toleranceSeconds: Int64 = 120

    /// Verify a channel head for this device; return it. Throws the signature errors,
    /// `IdentityMismatchError`, `ExpiredError` (a stale answer) or `RollbackError` (older
    /// than a head seen, or leaving out releases above the device's high-water mark).
    public static func verify(
        _ data: [UInt8], role: TimestampRole, identity: DeviceIdentity, at: UTCSeconds, newestSeen: UTCSeconds?,
        highWater: Position?
    ) throws -> ChannelHead {
        let envelope = try Envelopes.decode(data, maxBytes: maxHeadBytes)
        guard envelope.payloadType == payloadType else {
            throw HotPatchError(.payloadType, "expected a channel head, got '\(envelope.payloadType.prefix(80))'")
        }
        let report = Envelopes.checkSignatures(envelope, keys: role.keyring())
        try TrustRoots.requireThreshold(envelope, report, counted: report.verified, threshold: role.threshold,
                                        what: "channel head")
        let head = try decode(envelope.payload)
        for (field, signed, own) in [("app_id", head.appId, identity.appId),
                                     ("platform", head.platform, identity.platform.rawValue),
                                     ("channel", head.channel, identity.channel)] where !sameScalars(signed, own) {
            throw HotPatchError(.identityMismatch, "channel head is for \(field) '\(signed.prefix(64))', this device has '\(own)'",
                                field: field)
        }
        if at >= head.expiresAt {
            throw HotPatchError(.expired, "channel head expired at \(head.expiresAt): the answer is stale "
                + "(replayed, or the server no longer refreshes it)")
        }
        if let newestSeen, head.issuedAt.seconds < newestSeen.seconds - toleranceSeconds {
            throw HotPatchError(.rollback, "channel head issued at \(head.issuedAt) is older than one already seen (\(newestSeen))")
        }
        if let after = head.after, highWater.map({ after > $0 }) ?? true {
            throw HotPatchError(.rollback, "channel head lists only releases after \(after), this device has "
                + "\(highWater.map { "\($0)" } ?? "none"): it could leave out a release meant for this device")
        }
        return head
    }

    /// The releases one of which the answer must offer, or nil if nothing is due: walking
    /// the head newest first above `above` in `epoch`, the first release that serves this
    /// device and that it has not marked failed (a failed one met before it may be offered instead).
    public static func dueOffers(
        _ head: ChannelHead, deviceId: String, native: Version, epoch: Int64, above: Position?, failed: [String]
    ) -> [String]? {
        var allowed: [String] = []
        for release in head.releases {
            if let above, release.position <= above { break }
            if release.epoch != epoch || !release.serves(deviceId: deviceId, native: native) { continue }
            allowed.append(release.manifestId)
            if !failed.contains(release.manifestId) { return allowed }
        }
        return nil
    }

    /// Parse a head body strictly (after its signatures verified).
    public static func decode(_ body: [UInt8]) throws -> ChannelHead {
        let fields = try Fields.ofDocument(body, format: format, what: "channel head")
        let head = ChannelHead(
            appId: try fields.string("appId"),
            platform: try fields.string("platform"),
            channel: try fields.string("channel"),
            issuedAt: try fields.time("issuedAt") ?? { throw HotPatchError.schema("required field is missing", "issuedAt") }(),
            expiresAt: try fields.time("expiresAt") ?? { throw HotPatchError.schema("required field is missing", "expiresAt") }(),
            releases: try fields.list("releases").enumerated().map { try release($1, "releases[\($0)]") },
            after: try fields.optional("after").map { try position($0, "after") }
        )
        try validate(head)
        return head
    }

    private static func position(_ value: JSON, _ at: String) throws -> Position {
        let fields = try Fields.of(value, at: at)
        return Position(try fields.between("epoch", 1, Int64.max), try fields.between("sequence", 1, Int64.max))
    }

    private static func release(_ value: JSON, _ at: String) throws -> HeadRelease {
        let fields = try Fields.of(value, at: at)
        let manifestId = try fields.matching("manifestId", Patterns.sha256, Manifests.hex64)
        let epoch = try fields.between("epoch", 1, Int64.max)
        let sequence = try fields.between("sequence", 1, Int64.max)
        let rangeText = try fields.string("binaryRange")
        let range: BinaryRange
        do {
            range = try BinaryRange.parse(rangeText)
        } catch let error as HotPatchError {
            throw HotPatchError.schema(error.message, fields.at("binaryRange"))
        }
        return HeadRelease(
            manifestId: manifestId, epoch: epoch, sequence: sequence, binaryRange: range,
            rolloutBasisPoints: Int(try fields.between("rolloutBasisPoints", 0, Int64(Cohorts.basisPoints))),
            paused: try fields.bool("paused", default: false)
        )
    }

    private static func validate(_ head: ChannelHead) throws {
        let releases = head.releases
        if releases.count > maxHeadReleases {
            throw HotPatchError.schema("lists more than \(maxHeadReleases) releases", "releases")
        }
        if zip(releases, releases.dropFirst()).contains(where: { newer, older in newer.position <= older.position }) {
            throw HotPatchError.schema("must be newest first, each position once", "releases")
        }
        if Set(releases.map(\.manifestId)).count != releases.count {
            throw HotPatchError.schema("lists a manifest twice", "releases")
        }
        if let after = head.after, let last = releases.last, last.position <= after {
            throw HotPatchError.schema("lists a release at or before 'after'", "releases")
        }
        if head.expiresAt <= head.issuedAt { throw HotPatchError.schema("must expire after it is issued", "expiresAt") }
    }
}
