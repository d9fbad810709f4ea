package dev.hotpatch.core

import java.time.Duration
import java.time.Instant

/** One release the server may offer: what the device needs to know who gets it. */
data class HeadRelease(
    val manifestId: String,
    val epoch: Long,
    val sequence: Long,
    val binaryRange: BinaryRange,
    val rolloutBasisPoints: Int,
    val paused: Boolean,
) {
    val position: Position get() = Position(epoch, sequence)

    /** Whether the server offers this release to [deviceId] on [native] (the cohort rules). */
    fun serves(deviceId: String, native: Version): Boolean =
        !paused && binaryRange.contains(native) && Cohorts.bucket(deviceId, manifestId) < rolloutBasisPoints
}

/** The releases a channel offers newer than [after], signed at [issuedAt] (hotpatch_core.head). */
data class ChannelHead(
    val appId: String,
    val platform: String,
    val channel: String,
    val issuedAt: Instant,
    val expiresAt: Instant,
    val releases: List<HeadRelease>,
    val after: Position?,
) {
    /** Whether [manifestId] is one of the releases the server may offer now. */
    fun lists(manifestId: String): Boolean = releases.any { it.manifestId == manifestId }
}

/** Verifying signed channel heads and judging what they say is due (docs/spec/device-protocol.md). */
object ChannelHeads {
    const val PAYLOAD_TYPE = "application/vnd.hotpatch.head+json"
    const val FORMAT = 1L
    const val MAX_HEAD_BYTES = 64 * 1024
    const val MAX_HEAD_RELEASES = 64

    /** How much older than the newest head seen a head may be (each server process signs its own). */
    val TOLERANCE: Duration = Duration.ofMinutes(2)

    /**
     * Verify a channel head for this device; return it. Throws the signature
     * errors, [IdentityMismatchException], [ExpiredException] (a stale answer)
     * or [RollbackException] (older than a head seen, or leaving out releases
     * above the device's high-water mark).
     */
    fun verify(data: ByteArray, role: TimestampRole, identity: DeviceIdentity, at: Instant, newestSeen: Instant?, highWater: Position?): ChannelHead {
        val envelope = Envelopes.decode(data, MAX_HEAD_BYTES)
        if (envelope.payloadType != PAYLOAD_TYPE) {
            throw PayloadTypeException("expected a channel head, got '${envelope.payloadType.take(80)}'")
        }
        val report = Envelopes.checkSignatures(envelope, role.keyring())
        TrustRoots.requireThreshold(envelope, report, report.verified, role.threshold, "channel head")
        val head = decode(envelope.payload)
        for ((field, signed, own) in listOf(
            Triple("app_id", head.appId, identity.appId),
            Triple("platform", head.platform, identity.platform.wire),
            Triple("channel", head.channel, identity.channel),
        )) {
            if (signed != own) throw IdentityMismatchException("channel head is for $field '${signed.take(64)}', this device has '$own'", field)
        }
        if (!at.isBefore(head.expiresAt)) {
            throw ExpiredException(
                "channel head expired at ${head.expiresAt}: the answer is stale (replayed, or the server no longer refreshes it)",
            )
        }
        if (newestSeen != null && head.issuedAt.isBefore(newestSeen.minus(TOLERANCE))) {
            throw RollbackException("channel head issued at ${head.issuedAt} is older than one already seen ($newestSeen)")
        }
        val after = head.after
        if (after != null && (highWater == null || after > highWater)) {
            throw RollbackException(
                "channel head lists only releases after $after, this device has $highWater: it could leave out a release meant for this device",
            )
        }
        return head
    }

    /**
     * The releases one of which the answer must offer, or null if nothing is
     * due: walking the head newest first above [above] in [epoch], the first
     * release that serves this device and that it has not marked failed (a
     * failed one met before it may be offered instead).
     */
    fun dueOffers(head: ChannelHead, deviceId: String, native: Version, epoch: Long, above: Position?, failed: Collection<String>): Set<String>? {
        val allowed = LinkedHashSet<String>()
        for (release in head.releases) {
            if (above != null && release.position <= above) break
            if (release.epoch != epoch || !release.serves(deviceId, native)) continue
            allowed.add(release.manifestId)
            if (release.manifestId !in failed) return allowed
        }
        return null
    }

    /** Parse a head body strictly (after its signatures verified). */
    fun decode(body: ByteArray): ChannelHead {
        val fields = Fields.ofDocument(body, FORMAT, "channel head")
        val head = ChannelHead(
            appId = fields.string("appId"),
            platform = fields.string("platform"),
            channel = fields.string("channel"),
            issuedAt = fields.time("issuedAt") ?: throw SchemaException("required field is missing", "issuedAt"),
            expiresAt = fields.time("expiresAt") ?: throw SchemaException("required field is missing", "expiresAt"),
            releases = fields.list("releases").mapIndexed { i, item -> release(item, "releases[$i]") },
            after = fields.optional("after")?.let { position(it, "after") },
        )
        validate(head)
        return head
    }

    private fun position(value: Json, at: String): Position {
        val fields = Fields((value as? Json.Obj)?.members ?: throw SchemaException("expected an object", at), at)
        return Position(fields.between("epoch", 1, Long.MAX_VALUE), fields.between("sequence", 1, Long.MAX_VALUE))
    }

    private fun release(value: Json, at: String): HeadRelease {
        val fields = Fields((value as? Json.Obj)?.members ?: throw SchemaException("expected an object", at), at)
        return HeadRelease(
            manifestId = fields.matching("manifestId", Manifests.SHA256, "64 lowercase hex digits"),
            epoch = fields.between("epoch", 1, Long.MAX_VALUE),
            sequence = fields.between("sequence", 1, Long.MAX_VALUE),
            binaryRange = fields.string("binaryRange").let { text ->
                try {
                    BinaryRange.parse(text)
                } catch (e: VersionSyntaxException) {
                    throw SchemaException(e.message ?: "not a binary range", fields.at("binaryRange"))
                }
            },
            rolloutBasisPoints = fields.between("rolloutBasisPoints", 0, Cohorts.BASIS_POINTS.toLong()).toInt(),
            paused = fields.bool("paused", false),
        )
    }

    private fun validate(head: ChannelHead) {
        val releases = head.releases
        if (releases.size > MAX_HEAD_RELEASES) throw SchemaException("lists more than $MAX_HEAD_RELEASES releases", "releases")
        if (releases.zipWithNext().any { (newer, older) -> newer.position <= older.position }) {
            throw SchemaException("must be newest first, each position once", "releases")
        }
        if (releases.map { it.manifestId }.toSet().size != releases.size) throw SchemaException("lists a manifest twice", "releases")
        val after = head.after
        if (after != null && releases.isNotEmpty() && releases.last().position <= after) {
            throw SchemaException("lists a release at or before 'after'", "releases")
        }
        if (!head.expiresAt.isAfter(head.issuedAt)) throw SchemaException("must expire after it is issued", "expiresAt")
    }
}
