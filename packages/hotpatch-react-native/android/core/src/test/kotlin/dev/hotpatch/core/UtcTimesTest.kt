package dev.hotpatch.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class UtcTimesTest {
    @Test
    fun `times parse as the reference parses them, leap seconds and year 0 refused`() {
        val cases = Vectors.json("times.json").arr()
        assertTrue(cases.size >= 20)
        for (case in cases) {
            val text = case["text"].str()
            val expected = (case["epochSeconds"] as? Json.Int)?.value
            assertEquals(expected, UtcTimes.parse(text)?.epochSecond, text)
        }
    }
}
