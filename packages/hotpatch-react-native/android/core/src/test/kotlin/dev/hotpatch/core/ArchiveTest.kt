package dev.hotpatch.core

import java.io.ByteArrayOutputStream
import java.io.File
import java.nio.file.Files
import java.util.Base64
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class ArchiveTest {
    /** Keeps every file in memory and counts what it was given. */
    private class Memory : ExtractSink {
        val files = LinkedHashMap<String, ByteArray>()
        var written = 0L
        private var current = ByteArrayOutputStream()

        override fun begin(entry: FileEntry) {
            current = ByteArrayOutputStream()
        }

        override fun write(data: ByteArray, offset: Int, length: Int) {
            current.write(data, offset, length)
            written += length
        }

        override fun end(entry: FileEntry) {
            files[entry.path] = current.toByteArray()
        }
    }

    private fun entries(case: Json): List<FileEntry> = case["files"].arr().map {
        FileEntry(it["path"].str(), it["sha256"].str(), (it["size"] as Json.Int).value)
    }

    @Test
    fun `every archive gets the reference's verdict`() {
        val cases = Vectors.json("archives.json").arr()
        assertTrue(cases.size >= 40)
        for (case in cases) {
            val data = Base64.getDecoder().decode(case["archive"].str())
            val expected = entries(case)
            val sink = Memory()
            val verdict = try {
                Archives.extract(ArchiveSource.Bytes(data), expected, sink)
                null
            } catch (e: HotPatchException) {
                e.reason
            }
            assertEquals((case["error"] as? Json.Str)?.value, verdict, case["name"].str())
            // Never more than the signed sizes, whatever the archive claims.
            assertTrue(sink.written <= expected.sumOf { it.size }, case["name"].str())
            if (verdict == null) assertEquals(expected.map { it.path }.toSet(), sink.files.keys, case["name"].str())
        }
    }

    @Test
    fun `the golden archive extracts from a file on disk, byte for byte`() {
        val spec = Vectors.json("release.archive.json")
        val expected = spec["files"].arr().map { FileEntry(it["path"].str(), it["sha256"].str(), (it["size"] as Json.Int).value) }
        val file = Files.createTempFile("hotpatch", ".zip").toFile()
        try {
            file.writeBytes(Vectors.bytes("release.archive.zip"))
            val sink = Memory()
            val total = ArchiveSource.OpenFile.open(file).use { source -> Archives.extract(source, expected, sink) }
            assertEquals(expected.sumOf { it.size }, total)
            assertEquals(expected.map { it.path }, sink.files.keys.toList())
            for (entry in expected) assertEquals(entry.sha256, sha256Of(sink.files.getValue(entry.path)))
            assertEquals(2L, Archives.declaredEntries(ArchiveSource.Bytes(file.readBytes())))
        } finally {
            File(file.path).delete()
        }
    }

    @Test
    fun `caps are enforced before the directory is read`() {
        val data = Vectors.bytes("release.archive.zip")
        val spec = Vectors.json("release.archive.json")
        val expected = spec["files"].arr().map { FileEntry(it["path"].str(), it["sha256"].str(), (it["size"] as Json.Int).value) }
        assertThrows<TooLargeException> { Archives.extract(ArchiveSource.Bytes(data), expected, ExtractSink.Null, ArchiveLimits(maxFiles = 1)) }
        assertThrows<TooLargeException> { Archives.extract(ArchiveSource.Bytes(data), expected, ExtractSink.Null, ArchiveLimits(maxTotalBytes = 10)) }
        val copy = Memory()
        Archives.extract(ArchiveSource.Bytes(data), expected, copy)
        assertArrayEquals(Vectors.bytes("release.archive.zip"), data) // the source is only read
    }

    private fun sha256Of(data: ByteArray) = java.security.MessageDigest.getInstance("SHA-256").digest(data).joinToString("") { "%02x".format(it) }
}
