package dev.hotpatch.core

import java.security.MessageDigest
import org.bouncycastle.crypto.params.Ed25519PublicKeyParameters
import org.bouncycastle.crypto.signers.Ed25519Signer

/**
 * An Ed25519 public key (32 raw bytes) and its key id: the sha256 of the raw key, in hex.
 *
 * Verification uses BouncyCastle's lightweight Ed25519 (RFC 8032): Android's
 * `java.security` has Ed25519 only from API 33, and React Native apps start at 24.
 */
class PublicKey(raw: ByteArray) {
    private val bytes: ByteArray = raw.copyOf()

    init {
        if (bytes.size != SIZE) throw FormatException("an Ed25519 public key is $SIZE bytes, not ${bytes.size}")
    }

    val raw: ByteArray get() = bytes.copyOf()

    val keyId: String = keyId(bytes)

    /** Whether [signature] is this key's Ed25519 signature of [message]; never throws. */
    fun verify(message: ByteArray, signature: ByteArray): Boolean {
        if (signature.size != SIGNATURE_SIZE) return false
        return try {
            val verifier = Ed25519Signer()
            verifier.init(false, Ed25519PublicKeyParameters(bytes, 0))
            verifier.update(message, 0, message.size)
            verifier.verifySignature(signature)
        } catch (e: IllegalArgumentException) {
            false // a point that is not on the curve
        }
    }

    override fun equals(other: Any?): Boolean = other is PublicKey && other.keyId == keyId

    override fun hashCode(): Int = keyId.hashCode()

    companion object {
        const val SIZE = 32
        const val SIGNATURE_SIZE = 64

        fun keyId(raw: ByteArray): String =
            MessageDigest.getInstance("SHA-256").digest(raw).joinToString("") { "%02x".format(it) }

        fun fromBase64(text: String): PublicKey = PublicKey(Base64Strict.decode(text, "publicKey"))
    }
}

/** Standard base64 with padding, refused (not repaired) when malformed. */
object Base64Strict {
    fun decode(text: String, field: String): ByteArray {
        if (text.length % 4 != 0 || !text.all { it in 'A'..'Z' || it in 'a'..'z' || it in '0'..'9' || it in "+/=" }) {
            throw FormatException("$field is not standard base64")
        }
        return try {
            java.util.Base64.getDecoder().decode(text)
        } catch (e: IllegalArgumentException) {
            throw FormatException("$field is not standard base64")
        }
    }
}
