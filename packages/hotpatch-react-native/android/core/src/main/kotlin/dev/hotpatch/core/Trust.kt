package dev.hotpatch.core

import java.time.Instant

/** What a publisher key may sign: apps, platforms and channels (`*` = any). */
data class Scope(val apps: List<String>, val platforms: List<String>, val channels: List<String>) {
    fun covers(appId: String, platform: String, channel: String): Boolean =
        allows(apps, appId) && allows(platforms, platform) && allows(channels, channel)

    private fun allows(names: List<String>, name: String) = "*" in names || name in names
}

/** A key that may sign release manifests within its scope until it expires. */
data class PublisherKey(val publicKey: PublicKey, val name: String, val scope: Scope, val expiresAt: Instant?) {
    val keyId: String get() = publicKey.keyId

    fun expired(now: Instant): Boolean = expiresAt != null && !now.isBefore(expiresAt)
}

/** Keys that sign channel heads (freshness only) and how many must sign each. */
data class TimestampRole(val keys: List<PublicKey>, val threshold: Int) {
    fun keyring(): Map<String, PublicKey> = keys.associateBy { it.keyId }
}

/** Version [version] of an app's trust root (docs/spec/trust-root.md), as hotpatch_core.trust. */
data class TrustRoot(
    val version: Long,
    val epoch: Long,
    val rootKeys: List<PublicKey>,
    val rootThreshold: Int,
    val publishers: List<PublisherKey>,
    val releaseThresholds: Map<String, Int>,
    val expiresAt: Instant?,
    val timestamp: TimestampRole?,
) {
    fun rootKeyring(): Map<String, PublicKey> = rootKeys.associateBy { it.keyId }

    /** Publisher public keys by id, expired or not (expiry is judged per use). */
    fun publisherKeyring(): Map<String, PublicKey> = publishers.associate { it.keyId to it.publicKey }

    fun releaseThreshold(channel: String): Int = releaseThresholds[channel] ?: 1

    fun expired(now: Instant): Boolean = expiresAt != null && !now.isBefore(expiresAt)
}

/** Loading and rotating trust roots, with the reference's checks and errors. */
object TrustRoots {
    const val PAYLOAD_TYPE = "application/vnd.hotpatch.root+json"
    const val FORMAT = 1L
    const val MAX_ROOT_BYTES = 512 * 1024
    private val NAME = Regex("\\*|[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

    /** Load the root an app embeds: a threshold of its own root keys must sign it. */
    fun load(data: ByteArray): TrustRoot {
        val envelope = Envelopes.decode(data, MAX_ROOT_BYTES)
        if (envelope.payloadType != PAYLOAD_TYPE) {
            throw PayloadTypeException("expected a trust root, got '${envelope.payloadType.take(80)}'")
        }
        val root = decodeBody(envelope.payload)
        selfSigned(envelope, root, "trust root v${root.version}")
        return root
    }

    /** Accept root version N+1 if a threshold of both N's and N+1's root keys signed it. */
    fun rotate(current: TrustRoot, data: ByteArray): TrustRoot {
        val envelope = Envelopes.decode(data, MAX_ROOT_BYTES)
        if (envelope.payloadType != PAYLOAD_TYPE) {
            throw PayloadTypeException("expected a trust root, got '${envelope.payloadType.take(80)}'")
        }
        // Verify with the current root's keys before reading the new body.
        val old = Envelopes.checkSignatures(envelope, current.rootKeyring())
        try {
            requireThreshold(envelope, old, old.verified, current.rootThreshold, "trust root rotation from v${current.version}")
        } catch (e: VerificationException) {
            throw RootRotationException("not signed by the current root's keys: ${e.message}")
        }
        val next = decodeBody(envelope.payload)
        try {
            selfSigned(envelope, next, "trust root v${next.version}")
        } catch (e: VerificationException) {
            throw RootRotationException("not signed by the new root's own keys: ${e.message}")
        }
        if (next.version != current.version + 1) {
            throw RootRotationException(
                "trust root v${next.version} does not follow v${current.version} (expected v${current.version + 1})",
            )
        }
        if (next.epoch < current.epoch) {
            throw RootRotationException("epoch may not go back from ${current.epoch} to ${next.epoch}")
        }
        return next
    }

    /** Throw the telling error unless [counted] (verified eligible keys) meets [threshold]. */
    fun requireThreshold(envelope: Envelope, report: SignatureReport, counted: Set<String>, threshold: Int, what: String) {
        if (counted.size >= threshold) return
        if (envelope.signatures.isEmpty()) throw UnsignedException("$what carries no signature")
        if (report.verified.isEmpty()) {
            if (report.badKnown) throw BadSignatureException("$what: signature does not verify over these exact bytes")
            throw UnknownKeyException("$what: signed by no key the trust root knows")
        }
        throw ThresholdException("$what needs $threshold distinct trusted signatures, has ${counted.size}")
    }

    private fun selfSigned(envelope: Envelope, root: TrustRoot, what: String) {
        val report = Envelopes.checkSignatures(envelope, root.rootKeyring())
        requireThreshold(envelope, report, report.verified, root.rootThreshold, what)
    }

    /** Parse a trust root body strictly (after its signatures were checked, or to check them). */
    fun decodeBody(body: ByteArray): TrustRoot {
        val fields = Fields.ofDocument(body, FORMAT, "trust root")
        val rootKeys = fields.list("rootKeys").mapIndexed { i, key -> publicKey(key, "rootKeys[$i]") }
        val publishers = fields.list("publishers").mapIndexed { i, entry -> publisher(entry, "publishers[$i]") }
        val thresholds = fields.obj("releaseThresholds", emptyMap()).mapValues { (channel, value) ->
            val number = (value as? Json.Int)?.value ?: throw SchemaException("expected an int", "releaseThresholds.$channel")
            if (number !in 1..Int.MAX_VALUE.toLong()) throw SchemaException("must be a positive integer", "releaseThresholds.$channel")
            number.toInt()
        }
        val root = TrustRoot(
            version = fields.positive("version"),
            epoch = fields.positive("epoch"),
            rootKeys = rootKeys,
            rootThreshold = fields.int("rootThreshold"),
            publishers = publishers,
            releaseThresholds = thresholds,
            expiresAt = fields.time("expiresAt"),
            timestamp = fields.optional("timestamp")?.let { timestampRole(it) },
        )
        validate(root)
        return root
    }

    private fun validate(root: TrustRoot) {
        val rootIds = root.rootKeys.map { it.keyId }
        if (rootIds.toSet().size != rootIds.size) throw SchemaException("a root key is listed twice", "rootKeys")
        val publisherIds = root.publishers.map { it.keyId }
        if (publisherIds.toSet().size != publisherIds.size) throw SchemaException("a publisher key is listed twice", "publishers")
        val stamp = root.timestamp
        if (stamp != null && stamp.keys.any { it.keyId in rootIds || it.keyId in publisherIds }) {
            throw SchemaException("a timestamp key may not also be a root or publisher key", "timestamp")
        }
        if (root.rootThreshold !in 1..rootIds.size) {
            throw SchemaException("must be between 1 and the number of root keys", "rootThreshold")
        }
        for ((channel, threshold) in root.releaseThresholds) {
            if (threshold !in 1..maxOf(publisherIds.size, 1)) {
                throw SchemaException("threshold for '$channel' must be between 1 and the number of publisher keys", "releaseThresholds")
            }
        }
    }

    private fun publicKey(value: Json, field: String): PublicKey {
        val text = (value as? Json.Str)?.value ?: throw SchemaException("expected a base64 public key", field)
        return try {
            PublicKey.fromBase64(text)
        } catch (e: FormatException) {
            throw SchemaException(e.message ?: "not a public key", field)
        }
    }

    private fun names(fields: Fields, name: String): List<String> {
        val items = fields.list(name).mapIndexed { i, item ->
            (item as? Json.Str)?.value ?: throw SchemaException("expected a str", "${fields.at(name)}[$i]")
        }
        if (items.isEmpty()) throw SchemaException("must list at least one name, or '*'", fields.at(name))
        for (item in items) {
            if (!NAME.matches(item)) throw SchemaException("'${item.take(40)}' is not a valid name", fields.at(name))
        }
        return items
    }

    private fun publisher(value: Json, at: String): PublisherKey {
        val fields = Fields((value as? Json.Obj)?.members ?: throw SchemaException("expected an object", at), at)
        val scope = Fields(fields.obj("scope"), fields.at("scope"))
        return PublisherKey(
            publicKey = publicKey(fields.require("publicKey"), fields.at("publicKey")),
            name = fields.string("name"),
            scope = Scope(names(scope, "apps"), names(scope, "platforms"), names(scope, "channels")),
            expiresAt = fields.time("expiresAt"),
        )
    }

    private fun timestampRole(value: Json): TimestampRole {
        val fields = Fields((value as? Json.Obj)?.members ?: throw SchemaException("expected an object", "timestamp"), "timestamp")
        val keys = fields.list("keys").mapIndexed { i, key -> publicKey(key, "timestamp.keys[$i]") }
        val threshold = fields.int("threshold", 1)
        if (keys.isEmpty()) throw SchemaException("must list at least one key", "keys")
        if (keys.map { it.keyId }.toSet().size != keys.size) throw SchemaException("a timestamp key is listed twice", "keys")
        if (threshold !in 1..keys.size) throw SchemaException("must be between 1 and the number of timestamp keys", "threshold")
        return TimestampRole(keys, threshold)
    }
}

/** Typed reads of a document's members, naming the field at fault (the wire converter's rules). */
internal class Fields(private val members: Map<String, Json>, private val prefix: String) {
    fun at(name: String) = if (prefix.isEmpty()) name else "$prefix.$name"

    fun require(name: String): Json = members[name] ?: throw SchemaException("required field is missing", at(name))

    fun optional(name: String): Json? = members[name]?.takeUnless { it is Json.Null }

    fun long(name: String, default: Long? = null): Long {
        val value = members[name] ?: return default ?: throw SchemaException("required field is missing", at(name))
        return (value as? Json.Int)?.value ?: throw SchemaException("expected an int", at(name))
    }

    fun positive(name: String): Long {
        val value = long(name)
        if (value < 1) throw SchemaException("must be a positive integer", at(name))
        return value
    }

    fun int(name: String, default: Int? = null): Int {
        val value = long(name, default?.toLong())
        if (value !in Int.MIN_VALUE.toLong()..Int.MAX_VALUE.toLong()) throw SchemaException("out of range", at(name))
        return value.toInt()
    }

    fun string(name: String): String = (require(name) as? Json.Str)?.value ?: throw SchemaException("expected a str", at(name))

    /** A string that fully matches [pattern]; [what] says what it should look like. */
    fun matching(name: String, pattern: Regex, what: String): String {
        val text = string(name)
        if (!pattern.matches(text)) throw SchemaException("'${text.take(40)}' is not $what", at(name))
        return text
    }

    /** An integer in [low]..[high]. */
    fun between(name: String, low: Long, high: Long, default: Long? = null): Long {
        val value = long(name, default)
        if (value !in low..high) throw SchemaException("must be between $low and $high", at(name))
        return value
    }

    /** A JSON true or false (never a number), or [default] when absent. */
    fun bool(name: String, default: Boolean? = null): Boolean {
        val value = members[name] ?: return default ?: throw SchemaException("required field is missing", at(name))
        return (value as? Json.Bool)?.value ?: throw SchemaException("expected a bool", at(name))
    }

    fun list(name: String, default: List<Json>? = null): List<Json> {
        val value = members[name] ?: return default ?: throw SchemaException("required field is missing", at(name))
        return (value as? Json.Arr)?.items ?: throw SchemaException("expected a list", at(name))
    }

    fun obj(name: String, default: Map<String, Json>? = null): Map<String, Json> {
        val value = members[name] ?: return default ?: throw SchemaException("required field is missing", at(name))
        return (value as? Json.Obj)?.members ?: throw SchemaException("expected an object", at(name))
    }

    /** An RFC 3339 UTC time with second precision (`2026-11-29T10:00:00Z`), or null when absent. */
    fun time(name: String): Instant? {
        val value = optional(name) ?: return null
        val text = (value as? Json.Str)?.value ?: throw SchemaException("expected a time string", at(name))
        return UtcTimes.parse(text)
            ?: throw SchemaException("'${text.take(40)}' is not an RFC 3339 UTC time like 2026-11-29T10:00:00Z", at(name))
    }

    companion object {

        /**
         * Parse a signed document's body strictly: a JSON object whose `format` is
         * [format] ([UnsupportedFormatException] otherwise, as the reference checks it
         * before the fields), read through the returned [Fields].
         */
        fun ofDocument(body: ByteArray, format: Long, what: String): Fields {
            val document = StrictJson.parse(body)
            if (document is Json.Obj) {
                val given = document.members["format"]
                if (given !is Json.Int || given.value != format) {
                    val shown = when (given) {
                        null, Json.Null -> "None"
                        is Json.Int -> given.value.toString()
                        is Json.Str -> "'${given.value.take(20)}'"
                        else -> "(not a number)"
                    }
                    throw UnsupportedFormatException("$what format $shown is not supported (expected $format)")
                }
            }
            return Fields((document as? Json.Obj)?.members ?: throw SchemaException("expected a JSON object", ""), "")
        }
    }
}
