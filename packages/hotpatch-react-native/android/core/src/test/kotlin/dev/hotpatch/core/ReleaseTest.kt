package dev.hotpatch.core

import java.time.Instant
import java.util.Base64
import org.bouncycastle.crypto.params.Ed25519PrivateKeyParameters
import org.bouncycastle.crypto.signers.Ed25519Signer
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class ReleaseTest {
    private val spec = Vectors.json("release.verify.json")
    private val root = TrustRoots.load(Vectors.bytes("trust-root.envelope.json").trimEnd())
    private val envelope = Vectors.bytes("release.envelope.json").trimEnd()
    private val now = Instant.parse(spec["now"].str())

    private fun device(native: String = spec["device"]["nativeVersion"].str(), channel: String = "production") =
        DeviceIdentity(spec["device"]["appId"].str(), Platform.of(spec["device"]["platform"].str()), channel, Version.parse(native))

    private fun mark(sequence: Long, id: String = "0".repeat(64)) = HighWaterMark(1, sequence, id)

    @Test
    fun `the golden manifest decodes field by field`() {
        val manifest = Manifests.decode(Vectors.bytes("release.manifest.json").trimEnd())
        assertEquals("com.example.app", manifest.appId)
        assertEquals(Platform.ANDROID, manifest.platform)
        assertEquals(42L, manifest.sequence)
        assertEquals(listOf("assets/drawable-mdpi/logo.png", "index.android.bundle"), manifest.files.map { it.path })
        assertEquals(manifest.files.sumOf { it.size }, manifest.archive.uncompressedSize)
        assertTrue(manifest.binaryRange.contains(Version.parse("1.2.3")))
    }

    @Test
    fun `every broken manifest gets the reference's error`() {
        val cases = Vectors.json("manifest.decode.json").arr()
        assertTrue(cases.size >= 40)
        for (case in cases) {
            val expected = (case["error"] as? Json.Str)?.value
            val actual = try {
                Manifests.decode(case["body"].str().toByteArray())
                null
            } catch (e: HotPatchException) {
                e.reason
            }
            assertEquals(expected, actual, case["change"].str())
        }
    }

    @Test
    fun `the golden release verifies for its device`() {
        val release = Releases.verify(envelope, root, device(), mark(41), now)
        val expect = spec["expect"]
        assertEquals(expect["manifestId"].str(), release.manifestId)
        assertEquals(spec["manifestSha256"].str(), release.manifestId)
        assertEquals(expect["signedBy"].arr().map { it.str() }.toSet(), release.signedBy)
        assertEquals(HighWaterMark(1, 42, release.manifestId), release.highWaterMark())
        // Accepting the same release again is not a rollback.
        Releases.verify(envelope, root, device(), release.highWaterMark(), now)
    }

    @Test
    fun `each defence throws the error that names its attack`() {
        val cases = mapOf<String, () -> Unit>(
            "RollbackError" to { Releases.verify(envelope, root, device(), mark(43), now) },
            "EquivocationError" to { Releases.verify(envelope, root, device(), mark(42), now) },
            "IdentityMismatchError" to { Releases.verify(envelope, root, device(native = "1.3.0"), null, now) },
            "IdentityMismatchError " to { Releases.verify(envelope, root, device(channel = "beta"), null, now) },
            "BadSignatureError" to { Releases.verify(tampered(), root, device(), null, now) },
            "UnknownKeyError" to { Releases.verify(resigned(), root, device(), null, now) },
            "PayloadTypeError" to { Releases.verify(Vectors.bytes("trust-root.envelope.json").trimEnd(), root, device(), null, now) },
            "MalformedEnvelopeError" to { Releases.verify("{}".toByteArray(), root, device(), null, now) },
        )
        for ((expected, attempt) in cases) {
            val error = assertThrows<HotPatchException>(expected) { attempt() }
            assertEquals(expected.trim(), error.reason)
        }
    }

    /** The golden envelope with one byte of its manifest changed, the signature kept. */
    private fun tampered(): ByteArray {
        val document = StrictJson.parse(envelope).obj().toMutableMap()
        val payload = Base64.getDecoder().decode(document["payload"]!!.str())
        val changed = String(payload).replace("\"sequence\":42", "\"sequence\":43").toByteArray()
        document["payload"] = Json.Str(Base64.getEncoder().encodeToString(changed))
        return StrictJson.canonical(Json.Obj(document))
    }

    /** The golden manifest signed by the golden test key, which the trust root does not list. */
    private fun resigned(): ByteArray {
        val decoded = Envelopes.decode(envelope)
        val key = Ed25519PrivateKeyParameters(Vectors.hex(Vectors.json("keys.json")["seedHex"].str()), 0)
        val signer = Ed25519Signer().apply { init(true, key) }
        val message = Envelopes.pae(decoded.payloadType, decoded.payload)
        signer.update(message, 0, message.size)
        val signature = Json.Obj(mapOf("keyid" to Json.Str(""), "sig" to Json.Str(Base64.getEncoder().encodeToString(signer.generateSignature()))))
        val document = StrictJson.parse(envelope).obj().toMutableMap()
        document["signatures"] = Json.Arr(listOf(signature))
        return StrictJson.canonical(Json.Obj(document))
    }
}

internal fun ByteArray.trimEnd(): ByteArray = if (isNotEmpty() && last() == '\n'.code.toByte()) copyOf(size - 1) else this
