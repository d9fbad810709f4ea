package dev.hotpatch.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class PathsTest {
    @Test
    fun `every path list gets the reference's verdict`() {
        val cases = Vectors.json("paths.json").arr()
        assertTrue(cases.size >= 40)
        for (case in cases) {
            val paths = case["paths"].arr().map { it.str() }
            val expected = (case["error"] as? Json.Str)?.value
            val actual = try {
                paths.forEach { ArchivePaths.check(it) }
                ArchivePaths.checkCollisions(paths)
                null
            } catch (e: ArchiveException) {
                e.reason
            }
            assertEquals(expected, actual, paths.joinToString(" | ") { it.take(40) })
        }
    }

    @Test
    fun `case folding agrees with the reference on every code point`() {
        val vector = Vectors.json("casefold.json")
        assertEquals(vector["unicodeVersion"].str(), CaseFolding.UNICODE_VERSION)
        val folds = vector["folds"].obj().mapKeys { it.key.toInt(16) }
        var differing = 0
        for (codePoint in 0..0x10FFFF) {
            if (codePoint in 0xD800..0xDFFF) continue
            val expected = folds[codePoint]?.str()?.split(" ")?.map { it.toInt(16) } ?: listOf(codePoint)
            val actual = CaseFolding.fold(codePoint).toList()
            assertEquals(expected, actual, "U+%04X".format(codePoint))
            if (actual != listOf(codePoint)) differing++
        }
        assertEquals(folds.size, differing)
    }

    @Test
    fun `collision keys normalise before they fold`() {
        assertEquals(ArchivePaths.collisionKey("e\u0301.PNG"), ArchivePaths.collisionKey("\u00e9.png"))
        assertEquals("strasse/ss", ArchivePaths.collisionKey("STRAßE/ẞ"))
        // Code point order, not UTF-16 order: U+FF5E sorts before U+1F600.
        assertTrue(ArchivePaths.compareCodePoints("\uff5e", "\ud83d\ude00") < 0)
        assertTrue("\uff5e" > "\ud83d\ude00")
    }
}
