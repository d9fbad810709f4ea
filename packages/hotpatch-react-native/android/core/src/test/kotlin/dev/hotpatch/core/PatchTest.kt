package dev.hotpatch.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import java.util.Base64

/** Collects produced files in memory, in order. */
class CollectingSink : ExtractSink {
    val files = linkedMapOf<String, ByteArray>()
    private var current = java.io.ByteArrayOutputStream()

    override fun begin(entry: FileEntry) {
        current = java.io.ByteArrayOutputStream()
    }

    override fun write(data: ByteArray, offset: Int, length: Int) = current.write(data, offset, length)

    override fun end(entry: FileEntry) {
        files[entry.path] = current.toByteArray()
    }
}

/** The patch vectors (docs/spec/vectors/patches.json): every operation, both bsdiff encodings, every refusal. */
class PatchTest {
    private val vectors = Vectors.json("patches.json")
    private val baseFiles = entries("base")
    private val targetFiles = entries("target")
    private val baseData = data("base")
    private val base = PatchBase(vectors["baseManifestId"].str(), baseFiles) { baseData.getValue(it.path) }

    private fun entries(side: String) = vectors[side].arr().map {
        FileEntry(it["path"].str(), it["sha256"].str(), (it["size"] as Json.Int).value)
    }

    private fun data(side: String) = vectors[side].arr().associate { it["path"].str() to Base64.getDecoder().decode(it["data"].str()) }

    private fun apply(patch: ByteArray, sink: ExtractSink = CollectingSink()) =
        Patches.apply(patch, base, vectors["targetManifestId"].str(), targetFiles, sink)

    @TestFactory
    fun `every case applies or fails as the reference does`(): List<DynamicTest> = vectors["cases"].arr().map { case ->
        DynamicTest.dynamicTest(case["name"].str()) {
            val patch = Base64.getDecoder().decode(case["patch"].str())
            val error = case.obj()["error"]?.str()
            if (error == null) {
                val sink = CollectingSink()
                val written = apply(patch, sink)
                val target = data("target")
                assertEquals(target.keys.toList(), sink.files.keys.toList())
                for ((path, bytes) in target) assertArrayEquals(bytes, sink.files[path], path)
                assertEquals(target.values.sumOf { it.size.toLong() }, written)
            } else {
                val thrown = assertThrows<HotPatchException> { apply(patch) }
                assertEquals(error, thrown.reason, thrown.message)
            }
        }
    }

    @Test
    fun `a base file changed on the device is a wrong base, not a bad patch`() {
        val case = vectors["cases"].arr().first { it["name"].str() == "bsdiff-lzma2" }
        val damaged = baseData.mapValues { (_, v) -> v.copyOf().also { it[0] = (it[0] + 1).toByte() } }
        val tampered = PatchBase(base.manifestId, baseFiles) { damaged.getValue(it.path) }
        val thrown = assertThrows<WrongBaseException> {
            Patches.apply(Base64.getDecoder().decode(case["patch"].str()), tampered, vectors["targetManifestId"].str(), targetFiles, CollectingSink())
        }
        assertEquals("WrongBaseError", thrown.reason)
    }

    @Test
    fun `any single flipped bit in an HDiffPatch or bsdiff payload is refused or still yields the signed files`() {
        for (name in listOf("hdiffpatch-zstd", "bsdiff-bzip2", "bsdiff-lzma2", "zstd-from-base")) {
            val patch = Base64.getDecoder().decode(vectors["cases"].arr().first { it["name"].str() == name }["patch"].str())
            val random = java.util.Random(name.hashCode().toLong())
            repeat(150) {
                val bit = 11 * 8 + random.nextInt((patch.size - 11) * 8)
                val damaged = patch.copyOf().also { it[bit / 8] = (it[bit / 8].toInt() xor (1 shl (bit % 8))).toByte() }
                try {
                    val sink = CollectingSink()
                    apply(damaged, sink)
                    val target = data("target")
                    for ((path, bytes) in target) assertArrayEquals(bytes, sink.files[path], "$name bit $bit: $path")
                } catch (e: HotPatchException) {
                    // refused with a typed error: the device falls back to the archive
                }
            }
        }
    }

    @Test
    fun `embedded ids are the reference's`() {
        for (case in vectors["embeddedIds"].arr()) {
            val files = case["files"].arr().map { FileEntry(it["path"].str(), it["sha256"].str(), (it["size"] as Json.Int).value) }
            val id = EmbeddedBundles.id(case["appId"].str(), case["platform"].str(), case["nativeVersion"].str(), files)
            assertEquals(case["id"].str(), id)
        }
    }
}
