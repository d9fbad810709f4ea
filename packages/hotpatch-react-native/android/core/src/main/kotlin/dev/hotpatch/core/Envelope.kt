package dev.hotpatch.core

import java.nio.charset.StandardCharsets

/** One signature of an envelope: a key id hint and 64 signature bytes. */
class Signature(val keyid: String, sig: ByteArray) {
    private val bytes = sig.copyOf()
    val sig: ByteArray get() = bytes.copyOf()
}

/** A payload type, the exact payload bytes, and the signatures over both (DSSE). */
class Envelope(val payloadType: String, payload: ByteArray, val signatures: List<Signature>) {
    private val bytes = payload.copyOf()
    val payload: ByteArray get() = bytes.copyOf()
}

/** What the signatures on an envelope proved, for the caller to judge (as the reference). */
data class SignatureReport(
    /** The distinct key ids that produced a valid signature. */
    val verified: Set<String>,
    /** A signature named a known key but did not verify. */
    val badKnown: Boolean,
    /** A signature matched no known key. */
    val unknown: Boolean,
)

/** DSSE envelopes as hotpatch_core.envelope: parsed strictly, verified over the PAE. */
object Envelopes {
    const val MAX_ENVELOPE_BYTES = 1 shl 20
    const val MAX_SIGNATURES = 16

    /** The DSSE v1 pre-authentication encoding of [payloadType] and [body]. */
    fun pae(payloadType: String, body: ByteArray): ByteArray {
        val kind = payloadType.toByteArray(StandardCharsets.UTF_8)
        val head = "DSSEv1 ${kind.size} ".toByteArray(StandardCharsets.US_ASCII)
        val middle = " ${body.size} ".toByteArray(StandardCharsets.US_ASCII)
        return head + kind + middle + body
    }

    /** Parse envelope bytes strictly. Verifies nothing: see [checkSignatures]. */
    fun decode(data: ByteArray, maxBytes: Int = MAX_ENVELOPE_BYTES): Envelope {
        if (data.size > maxBytes) throw TooLargeException("envelope bytes", maxBytes.toLong())
        val document = try {
            StrictJson.parse(data)
        } catch (e: StrictJsonException) {
            throw MalformedEnvelopeException("envelope is not strict JSON: ${e.message}")
        }
        if (document !is Json.Obj) throw MalformedEnvelopeException("envelope must be a JSON object")
        val missing = listOf("payloadType", "payload", "signatures").filter { it !in document.members }
        if (missing.isNotEmpty()) throw MalformedEnvelopeException("envelope lacks ${missing.sorted().joinToString(", ")}")
        val payloadType = document.members["payloadType"] as? Json.Str
            ?: throw MalformedEnvelopeException("payloadType must be a string")
        val rawSignatures = document.members["signatures"] as? Json.Arr
            ?: throw MalformedEnvelopeException("signatures must be a list")
        if (rawSignatures.items.size > MAX_SIGNATURES) {
            throw TooLargeException("number of signatures", MAX_SIGNATURES.toLong())
        }
        val signatures = rawSignatures.items.mapIndexed { index, item ->
            val members = (item as? Json.Obj)?.members
            val keyid = members?.get("keyid") ?: Json.Str("")
            if (members == null || keyid !is Json.Str) {
                throw MalformedEnvelopeException("signatures[$index] must be an object with a keyid")
            }
            Signature(keyid.value, base64(members["sig"], "sig"))
        }
        return Envelope(payloadType.value, base64(document.members["payload"], "payload"), signatures)
    }

    private fun base64(value: Json?, field: String): ByteArray {
        if (value !is Json.Str) throw MalformedEnvelopeException("$field must be base64 text")
        return try {
            Base64Strict.decode(value.value, field)
        } catch (e: FormatException) {
            throw MalformedEnvelopeException("$field must be base64 text")
        }
    }

    /** Verify every signature on [envelope] against [keys] (key id to public key). */
    fun checkSignatures(envelope: Envelope, keys: Map<String, PublicKey>): SignatureReport {
        val message = pae(envelope.payloadType, envelope.payload)
        val verified = mutableSetOf<String>()
        var badKnown = false
        var unknown = false
        for (signature in envelope.signatures) {
            val hinted = keys[signature.keyid]
            if (hinted != null) {
                if (hinted.verify(message, signature.sig)) verified.add(hinted.keyId) else badKnown = true
                continue
            }
            // DSSE makes the key id optional: without a usable hint, try each key.
            val match = keys.values.firstOrNull { it.verify(message, signature.sig) }
            if (match == null) unknown = true else verified.add(match.keyId)
        }
        return SignatureReport(verified, badKnown, unknown)
    }
}
