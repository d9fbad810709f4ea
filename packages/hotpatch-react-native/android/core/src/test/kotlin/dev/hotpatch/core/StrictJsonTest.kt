package dev.hotpatch.core

import java.nio.charset.StandardCharsets
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.ValueSource

class StrictJsonTest {
    @Test
    fun `the canonical vector reads and writes back byte for byte`() {
        val committed = Vectors.bytes("canonical.json")
        val body = committed.copyOf(committed.size - 1) // the file ends with a newline
        assertArrayEquals(body, StrictJson.canonical(StrictJson.parse(body)))
    }

    @Test
    fun `canonical sorts keys by code point and escapes as the reference`() {
        val value = StrictJson.parse("""{"b":1,"a":"x\n\u0001\"\\/","\uD83D\uDE00":2,"\uFFFF":3}""".toByteArray())
        val expected = "{\"a\":\"x\\n\\u0001\\\"\\\\/\",\"b\":1,\"\uFFFF\":3,\"\uD83D\uDE00\":2}"
        assertEquals(expected, String(StrictJson.canonical(value), StandardCharsets.UTF_8))
    }

    @ParameterizedTest
    @ValueSource(
        strings = [
            """{"a":1,"a":2}""",
            """{"a":1.5}""",
            """{"a":1e3}""",
            """{"a":NaN}""",
            """{"a":Infinity}""",
            """{"a":9223372036854775808}""",
            """{"a":"\ud800"}""",
            """{"a":1} x""",
            """{"a":01}""",
            """{"a":"tab	inside"}""",
            """{'a':1}""",
            "",
        ],
    )
    fun `ambiguous or invalid JSON is refused`(text: String) {
        assertThrows<StrictJsonException> { StrictJson.parse(text.toByteArray(StandardCharsets.UTF_8)) }
    }

    @Test
    fun `a byte-order mark, bad UTF-8 and deep nesting are refused`() {
        val bom = byteArrayOf(0xEF.toByte(), 0xBB.toByte(), 0xBF.toByte()) + "{}".toByteArray()
        assertThrows<StrictJsonException> { StrictJson.parse(bom) }
        assertThrows<StrictJsonException> { StrictJson.parse(byteArrayOf('"'.code.toByte(), 0xC3.toByte(), '"'.code.toByte())) }
        val deep = "[".repeat(StrictJson.MAX_DEPTH + 1) + "]".repeat(StrictJson.MAX_DEPTH + 1)
        assertThrows<StrictJsonException> { StrictJson.parse(deep.toByteArray()) }
        val deepest = "[".repeat(StrictJson.MAX_DEPTH) + "]".repeat(StrictJson.MAX_DEPTH)
        StrictJson.parse(deepest.toByteArray())
    }

    @Test
    fun `the 64-bit limits are inclusive`() {
        assertEquals(Json.Int(Long.MAX_VALUE), StrictJson.parse("9223372036854775807".toByteArray()))
        assertEquals(Json.Int(Long.MIN_VALUE), StrictJson.parse("-9223372036854775808".toByteArray()))
    }
}
