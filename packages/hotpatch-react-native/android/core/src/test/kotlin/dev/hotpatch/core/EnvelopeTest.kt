package dev.hotpatch.core

import java.security.KeyFactory
import java.security.KeyPairGenerator
import java.security.spec.X509EncodedKeySpec
import kotlin.random.Random
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class EnvelopeTest {
    @Test
    fun `PAE matches every vector`() {
        val cases = Vectors.json("pae.json").arr()
        assertTrue(cases.isNotEmpty())
        for (case in cases) {
            val pae = Envelopes.pae(case["payloadType"].str(), Vectors.hex(case["bodyHex"].str()))
            assertArrayEquals(Vectors.hex(case["paeHex"].str()), pae, case["payloadType"].str())
        }
    }

    @Test
    fun `the key vector's id and signature verify, and a changed byte does not`() {
        val keys = Vectors.json("keys.json")
        val key = PublicKey.fromBase64(keys["publicKeyBase64"].str())
        assertEquals(keys["keyId"].str(), key.keyId)
        val signature = Vectors.hex(keys["signatureOverHelloHex"].str())
        assertTrue(key.verify("hello".toByteArray(), signature))
        assertFalse(key.verify("hellO".toByteArray(), signature))
        signature[5] = (signature[5].toInt() xor 1).toByte()
        assertFalse(key.verify("hello".toByteArray(), signature))
    }

    @Test
    fun `the trust root vector is signed by its own root key, and the release by its publisher`() {
        val rootEnvelope = Envelopes.decode(Vectors.bytes("trust-root.envelope.json"))
        assertEquals("application/vnd.hotpatch.root+json", rootEnvelope.payloadType)
        val root = StrictJson.parse(rootEnvelope.payload)
        val rootKeys = root["rootKeys"].arr().map { PublicKey.fromBase64(it.str()) }.associateBy { it.keyId }
        val report = Envelopes.checkSignatures(rootEnvelope, rootKeys)
        assertEquals(rootKeys.keys, report.verified)
        assertFalse(report.badKnown || report.unknown)

        val publishers = root["publishers"].arr().map { PublicKey.fromBase64(it["publicKey"].str()) }.associateBy { it.keyId }
        val release = Envelopes.decode(Vectors.bytes("release.envelope.json"))
        assertEquals(publishers.keys, Envelopes.checkSignatures(release, publishers).verified)
        // The root keys did not sign the release: nothing verifies, each signature is unknown.
        val wrongKeys = Envelopes.checkSignatures(release, rootKeys)
        assertEquals(emptySet<String>(), wrongKeys.verified)
        assertTrue(wrongKeys.unknown)
    }

    @Test
    fun `a changed payload fails its known key`() {
        val envelope = Envelopes.decode(Vectors.bytes("release.envelope.json"))
        val payload = envelope.payload
        payload[payload.size - 2] = (payload[payload.size - 2].toInt() xor 1).toByte()
        val changed = Envelope(envelope.payloadType, payload, envelope.signatures)
        val root = StrictJson.parse(Envelopes.decode(Vectors.bytes("trust-root.envelope.json")).payload)
        val publishers = root["publishers"].arr().map { PublicKey.fromBase64(it["publicKey"].str()) }.associateBy { it.keyId }
        val report = Envelopes.checkSignatures(changed, publishers)
        assertEquals(emptySet<String>(), report.verified)
        assertTrue(report.badKnown)
    }

    @Test
    fun `malformed envelopes are refused as the reference refuses them`() {
        for (text in listOf(
            "[]",
            """{"payloadType":"t","payload":"e30="}""",
            """{"payloadType":1,"payload":"e30=","signatures":[]}""",
            """{"payloadType":"t","payload":"not base64!","signatures":[]}""",
            """{"payloadType":"t","payload":"e30=","signatures":{}}""",
            """{"payloadType":"t","payload":"e30=","signatures":[{"keyid":1,"sig":"AA=="}]}""",
            """{"payloadType":"t","payload":"e30=","signatures":[],"payloadType":"u"}""",
        )) {
            assertThrows<MalformedEnvelopeException>(text) { Envelopes.decode(text.toByteArray()) }
        }
        val many = (1..Envelopes.MAX_SIGNATURES + 1).joinToString(",") { """{"keyid":"k","sig":"AA=="}""" }
        assertThrows<TooLargeException> {
            Envelopes.decode("""{"payloadType":"t","payload":"e30=","signatures":[$many]}""".toByteArray())
        }
        assertThrows<TooLargeException> { Envelopes.decode(ByteArray(Envelopes.MAX_ENVELOPE_BYTES + 1)) }
    }

    @Test
    fun `BouncyCastle agrees with the JDK's own Ed25519 on random keys and messages`() {
        val random = Random(2026)
        val generator = KeyPairGenerator.getInstance("Ed25519")
        val jdk = java.security.Signature.getInstance("Ed25519")
        val spkiPrefix = Vectors.hex("302a300506032b6570032100")
        repeat(200) { round ->
            val pair = generator.generateKeyPair()
            val encoded = pair.public.encoded
            val raw = encoded.copyOfRange(encoded.size - 32, encoded.size)
            assertArrayEquals(spkiPrefix + raw, encoded)
            val message = random.nextBytes(random.nextInt(0, 300))
            jdk.initSign(pair.private)
            jdk.update(message)
            val signature = jdk.sign()
            if (round % 2 == 1) {
                val at = random.nextInt(64)
                signature[at] = (signature[at].toInt() xor (1 shl random.nextInt(8))).toByte()
            }
            val verifier = java.security.Signature.getInstance("Ed25519")
            verifier.initVerify(KeyFactory.getInstance("Ed25519").generatePublic(X509EncodedKeySpec(spkiPrefix + raw)))
            verifier.update(message)
            val expected = try { verifier.verify(signature) } catch (e: java.security.SignatureException) { false }
            assertEquals(expected, PublicKey(raw).verify(message, signature), "round $round")
        }
    }
}
