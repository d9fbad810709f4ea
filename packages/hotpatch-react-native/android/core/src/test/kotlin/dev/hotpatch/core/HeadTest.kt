package dev.hotpatch.core

import java.time.Instant
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

class HeadTest {
    private val spec = Vectors.json("head.verify.json")
    private val role = TrustRoots.load(Vectors.bytes("trust-root.timestamp.envelope.json").trimEnd()).timestamp!!
    private val data = Vectors.bytes("head.envelope.json").trimEnd()
    private val now = Instant.parse(spec["now"].str())
    private val mark = Position(1, 41)
    private val device = DeviceIdentity("com.example.app", Platform.ANDROID, "production", Version.parse("1.2.3"))

    @Test
    fun `the golden head verifies and says what is due to each device`() {
        val head = ChannelHeads.verify(data, role, device, now, null, mark)
        assertEquals(Instant.parse(spec["expiresAt"].str()), head.expiresAt)
        for (case in spec["cases"].arr()) {
            val id = case["deviceId"].str()
            val failed = case["failed"].arr().map { it.str() }
            assertEquals((case["bucket"] as Json.Int).value.toInt(), Cohorts.bucket(id, head.releases.single().manifestId), id)
            val due = ChannelHeads.dueOffers(head, id, device.nativeVersion, 1, mark, failed)
            val expected = (case["due"] as? Json.Arr)?.items?.map { it.str() }?.toSet()
            assertEquals(expected, due, "$id failed=$failed")
        }
    }

    @Test
    fun `stale, replayed, foreign and gapped heads are refused`() {
        val expires = Instant.parse(spec["expiresAt"].str())
        val cases = mapOf<String, () -> Unit>(
            "ExpiredError" to { ChannelHeads.verify(data, role, device, expires, null, mark) },
            "RollbackError" to { ChannelHeads.verify(data, role, device, now, expires.plusSeconds(3600), mark) },
            "RollbackError " to { ChannelHeads.verify(data, role, device, now, null, null) },
            "IdentityMismatchError" to { ChannelHeads.verify(data, role, device.copy(channel = "beta"), now, null, mark) },
            "UnknownKeyError" to {
                val other = TrustRoots.load(Vectors.bytes("trust-root.envelope.json").trimEnd())
                ChannelHeads.verify(data, TimestampRole(other.rootKeys, 1), device, now, null, mark)
            },
        )
        for ((expected, attempt) in cases) {
            val error = assertThrows<HotPatchException>(expected) { attempt() }
            assertEquals(expected.trim(), error.reason, error.message)
        }
    }
}
