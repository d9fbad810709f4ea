package dev.hotpatch.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class VersionsTest {
    private val vectors = Vectors.json("versions.json")

    @Test
    fun `native versions parse and normalise as the reference, or are refused`() {
        val cases = vectors["nativeVersions"].arr()
        assertTrue(cases.size >= 20)
        for (case in cases) {
            val text = case["text"].str()
            if ((case["valid"] as Json.Bool).value) {
                assertEquals(case["normalized"].str(), Version.parseNative(text).toString(), text)
            } else {
                assertThrows<VersionSyntaxException>(text) { Version.parseNative(text) }
            }
        }
    }

    @Test
    fun `versions sort by semver precedence, pre-releases first`() {
        val valid = vectors["nativeVersions"].arr().filter { (it["valid"] as Json.Bool).value }
        val sorted = valid.map { Version.parseNative(it["text"].str()) }.sorted().map { it.toString() }
        assertEquals(vectors["ascending"].arr().map { it.str() }, sorted)
    }

    @Test
    fun `every range contains and is above exactly the versions the reference says`() {
        val versions = vectors["nativeVersions"].arr()
            .filter { (it["valid"] as Json.Bool).value }
            .map { Version.parseNative(it["text"].str()) }
        for (case in vectors["ranges"].arr()) {
            val text = case["range"].str()
            if (!(case["valid"] as Json.Bool).value) {
                assertThrows<VersionSyntaxException>(text) { BinaryRange.parse(text) }
                continue
            }
            val range = BinaryRange.parse(text)
            assertEquals(case["contains"].arr().map { it.str() }, versions.filter { range.contains(it) }.map { it.toString() }, "contains $text")
            assertEquals(case["above"].arr().map { it.str() }, versions.filter { range.above(it) }.map { it.toString() }, "above $text")
        }
    }
}
