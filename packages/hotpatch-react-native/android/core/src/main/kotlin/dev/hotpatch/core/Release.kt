package dev.hotpatch.core

import java.time.Instant

/** What a device is: the app, platform and channel it follows, and its native version. */
data class DeviceIdentity(val appId: String, val platform: Platform, val channel: String, val nativeVersion: Version) {
    /** The key of this identity's high-water mark: `app/platform/channel`. */
    val scopeKey: String get() = "$appId/${platform.wire}/$channel"
}

/** An `(epoch, sequence)` pair, ordered as releases are. */
data class Position(val epoch: Long, val sequence: Long) : Comparable<Position> {
    override fun compareTo(other: Position): Int = compareValuesBy(this, other, { it.epoch }, { it.sequence })

    override fun toString(): String = "($epoch, $sequence)"
}

/** The newest release a device ever accepted for its (app, platform, channel). */
data class HighWaterMark(val epoch: Long, val sequence: Long, val manifestId: String) {
    val position: Position get() = Position(epoch, sequence)
}

/**
 * A release whose envelope passed every check of [Releases.verify]. Only that
 * function creates one, and installing requires one (docs/security.md A1, A12).
 */
class VerifiedRelease internal constructor(
    val manifest: ReleaseManifest,
    val manifestId: String,
    envelope: ByteArray,
    val signedBy: Set<String>,
) {
    private val bytes = envelope.copyOf()

    /** The exact envelope bytes that verified. */
    val envelope: ByteArray get() = bytes.copyOf()

    /** The high-water mark a device records after accepting this release. */
    fun highWaterMark(): HighWaterMark = HighWaterMark(manifest.epoch, manifest.sequence, manifestId)
}

/** The one verification path for releases, in the reference's order (hotpatch_core.release). */
object Releases {
    /** Base64 grows the manifest by 4/3; the envelope adds signatures and keys. */
    const val MAX_RELEASE_ENVELOPE_BYTES = Manifests.MAX_MANIFEST_BYTES * 4 / 3 + 16 * 1024

    /** Verify release envelope bytes for this device, or throw the error naming the attack. */
    fun verify(data: ByteArray, root: TrustRoot, device: DeviceIdentity, mark: HighWaterMark?, now: Instant): VerifiedRelease {
        val envelope = Envelopes.decode(data, MAX_RELEASE_ENVELOPE_BYTES)
        if (envelope.payloadType != Manifests.PAYLOAD_TYPE) {
            throw PayloadTypeException("expected a release manifest, got '${envelope.payloadType.take(80)}'")
        }
        if (root.expired(now)) throw ExpiredException("trust root v${root.version} expired at ${root.expiresAt}")
        val report = Envelopes.checkSignatures(envelope, root.publisherKeyring())
        // Nothing is parsed unless at least one known key signed these exact bytes.
        TrustRoots.requireThreshold(envelope, report, report.verified, 1, "release manifest")
        val payload = envelope.payload
        val manifest = Manifests.decode(payload)
        checkIdentity(manifest, device)
        val signedBy = authorise(envelope, report, manifest, root, now)
        val manifestId = Manifests.manifestId(payload)
        checkSequence(manifest, manifestId, mark)
        return VerifiedRelease(manifest, manifestId, data, signedBy)
    }

    private fun authorise(envelope: Envelope, report: SignatureReport, manifest: ReleaseManifest, root: TrustRoot, now: Instant): Set<String> {
        val byId = root.publishers.associateBy { it.keyId }
        val inScope = report.verified.filter { byId.getValue(it).scope.covers(manifest.appId, manifest.platform.wire, manifest.channel) }
        val eligible = inScope.filter { !byId.getValue(it).expired(now) }.toSet()
        if (eligible.isEmpty()) {
            if (inScope.isNotEmpty()) {
                val names = inScope.map { byId.getValue(it).name }.sorted().joinToString(", ")
                throw ExpiredException("release signed only by expired publisher keys ($names)")
            }
            val names = report.verified.map { byId.getValue(it).name }.sorted().joinToString(", ")
            throw KeyScopeException(
                "publisher keys ($names) may not sign ${manifest.appId}/${manifest.platform.wire}/${manifest.channel}",
            )
        }
        TrustRoots.requireThreshold(envelope, report, eligible, root.releaseThreshold(manifest.channel), "release for '${manifest.channel}'")
        if (manifest.epoch != root.epoch) {
            throw EpochException("manifest is from epoch ${manifest.epoch}, the trust root is at epoch ${root.epoch}")
        }
        val expires = manifest.expiresAt
        if (expires != null && !now.isBefore(expires)) throw ExpiredException("release manifest expired at $expires")
        return eligible
    }

    private fun checkIdentity(manifest: ReleaseManifest, device: DeviceIdentity) {
        if (manifest.appId != device.appId) {
            throw IdentityMismatchException("release is for app '${manifest.appId}', this device runs '${device.appId}'", "app_id")
        }
        if (manifest.platform != device.platform) {
            throw IdentityMismatchException("release is for ${manifest.platform.wire}, this device is ${device.platform.wire}", "platform")
        }
        if (manifest.channel != device.channel) {
            throw IdentityMismatchException(
                "release is for channel '${manifest.channel}', this device follows '${device.channel}'", "channel",
            )
        }
        if (!manifest.binaryRange.contains(device.nativeVersion)) {
            throw IdentityMismatchException(
                "release needs native '${manifest.binaryRange}', this device runs ${device.nativeVersion}", "binary_range",
            )
        }
    }

    private fun checkSequence(manifest: ReleaseManifest, manifestId: String, mark: HighWaterMark?) {
        if (mark == null) return
        val position = Position(manifest.epoch, manifest.sequence)
        if (position < mark.position) throw RollbackException("release $position is older than the newest accepted ${mark.position}")
        if (position == mark.position && manifestId != mark.manifestId) {
            throw EquivocationException("a different manifest was already accepted at (epoch, sequence) $position")
        }
    }
}
