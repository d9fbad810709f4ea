package dev.hotpatch.core

import java.io.File
import java.nio.charset.StandardCharsets
import java.time.Instant
import java.util.Base64
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class TrustTest {
    private val spec = File(System.getProperty("hotpatch.spec"))

    private fun scenario(name: String): Json = StrictJson.parse(File(spec, "conformance/$name.json").readBytes())

    private fun b64(json: Json): ByteArray = Base64.getDecoder().decode(json.str())

    /** The same envelope with its payload replaced (the signatures kept). */
    private fun withPayload(envelope: ByteArray, payload: ByteArray): ByteArray {
        val document = StrictJson.parse(envelope).obj().toMutableMap()
        document["payload"] = Json.Str(Base64.getEncoder().encodeToString(payload))
        return StrictJson.canonical(Json.Obj(document))
    }

    @Test
    fun `the golden trust roots load, the timestamp role with them`() {
        val root = TrustRoots.load(Vectors.bytes("trust-root.envelope.json"))
        assertEquals(1L, root.version)
        assertEquals(1L, root.epoch)
        assertEquals(1, root.rootThreshold)
        assertEquals(listOf("*"), root.publishers.single().scope.apps)
        assertTrue(root.publishers.single().scope.covers("com.example.app", "android", "production"))
        assertEquals(null, root.timestamp)
        val stamped = TrustRoots.load(Vectors.bytes("trust-root.timestamp.envelope.json"))
        assertNotNull(stamped.timestamp)
        assertEquals(1, stamped.timestamp!!.threshold)
    }

    @Test
    fun `a device walks the rotation of the conformance scenario, and only forward`() {
        val story = scenario("trust-root-rotation")
        val embedded = TrustRoots.load(b64(story["config"]["trustRoot"]))
        val next = story["steps"].arr().map { it["event"] }.first { it["type"].str() == "RootAnswered" && it.obj()["envelope"] !is Json.Null }
        val rotated = TrustRoots.rotate(embedded, b64(next["envelope"]))
        assertEquals(embedded.version + 1, rotated.version)
        // The old publisher is gone from v2: its key no longer signs releases.
        assertTrue(embedded.publishers.single().keyId !in rotated.publisherKeyring())
        val again = assertThrows<RootRotationException> { TrustRoots.rotate(rotated, b64(next["envelope"])) }
        assertEquals("RootRotationError", again.reason)
    }

    @Test
    fun `a changed body no longer verifies, and other payload types are refused`() {
        val envelope = Vectors.bytes("trust-root.envelope.json")
        val body = String(Envelopes.decode(envelope).payload, StandardCharsets.UTF_8)
        val changed = withPayload(envelope, body.replace("\"epoch\":1", "\"epoch\":2").toByteArray())
        assertEquals("BadSignatureError", assertThrows<BadSignatureException> { TrustRoots.load(changed) }.reason)
        assertThrows<PayloadTypeException> { TrustRoots.load(Vectors.bytes("release.envelope.json")) }
        val root = TrustRoots.load(envelope)
        assertThrows<RootRotationException> { TrustRoots.rotate(root, envelope) } // v1 does not follow v1
    }

    @Test
    fun `bodies that break the trust root's rules are refused, naming the field`() {
        val body = String(Envelopes.decode(Vectors.bytes("trust-root.envelope.json")).payload, StandardCharsets.UTF_8)
        val cases = mapOf(
            body.replace("\"format\":1,", "") to "UnsupportedFormatError",
            body.replace("\"format\":1", "\"format\":2") to "UnsupportedFormatError",
            body.replace("\"rootThreshold\":1", "\"rootThreshold\":2") to "rootThreshold",
            body.replace("\"rootThreshold\":1", "\"rootThreshold\":true") to "rootThreshold",
            body.replace("\"version\":1", "\"version\":0") to "version",
            body.replace("\"apps\":[\"*\"]", "\"apps\":[]") to "publishers[0].scope.apps",
            body.replace("\"apps\":[\"*\"]", "\"apps\":[\"*\\n\"]") to "publishers[0].scope.apps",
            body.replace("\"name\":\"ci\"", "\"name\":\"ci\",\"expiresAt\":\"2027-01-01T00:00:00+00:00\"") to "publishers[0].expiresAt",
        )
        for ((text, expected) in cases) {
            val error = assertThrows<FormatException>(text) { TrustRoots.decodeBody(text.toByteArray()) }
            val named = if (error is SchemaException) error.field else error.reason
            assertEquals(expected, named, text)
        }
        val expiring = body.replace("\"name\":\"ci\"", "\"name\":\"ci\",\"expiresAt\":\"2027-01-01T00:00:00Z\"")
        val publisher = TrustRoots.decodeBody(expiring.toByteArray()).publishers.single()
        assertEquals(Instant.parse("2027-01-01T00:00:00Z"), publisher.expiresAt)
        assertTrue(publisher.expired(Instant.parse("2027-01-01T00:00:00Z")))
    }
}
