package dev.hotpatch.core

import java.io.File
import java.nio.file.Files
import java.time.Instant
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class StorageTest {
    private val spec = Vectors.json("release.verify.json")
    private val root = TrustRoots.load(Vectors.bytes("trust-root.envelope.json").trimEnd())
    private val device = DeviceIdentity("com.example.app", Platform.ANDROID, "production", Version.parse("1.2.3"))
    private val release = Releases.verify(Vectors.bytes("release.envelope.json").trimEnd(), root, device, null, Instant.parse(spec["now"].str()))
    private val archive = Vectors.bytes("release.archive.zip")

    private fun withDirectory(block: (File) -> Unit) {
        val dir = Files.createTempDirectory("hotpatch-storage").toFile()
        try {
            block(dir)
        } finally {
            dir.deleteRecursively()
        }
    }

    @Test
    fun `a release installs durably on a real disk, and tampering is caught`() = withDirectory { dir ->
        val storage = DeviceStorage(JvmFileSystem(dir))
        var reported = 0L
        val installed = storage.install(release, ArchiveSource.Bytes(archive)) { done, total ->
            assertEquals(release.manifest.archive.uncompressedSize, total)
            reported = done
        }
        assertEquals("releases/${release.manifestId}", installed)
        assertEquals(release.manifest.archive.uncompressedSize, reported)
        assertTrue(File(dir, "$installed/files/index.android.bundle").isFile)
        assertEquals(release.envelope.toList(), File(dir, "$installed/envelope").readBytes().toList())
        assertEquals(listOf(release.manifestId), dir.resolve("releases").list()!!.toList())
        storage.verifyInstalled(release.manifestId, release.manifest.files)
        File(dir, "$installed/files/index.android.bundle").appendText("evil()")
        val error = assertThrows<LocalTamperingException> { storage.verifyInstalled(release.manifestId, release.manifest.files) }
        assertEquals("LocalTamperingError", error.reason)
    }

    @Test
    fun `an archive that does not match leaves nothing behind`() = withDirectory { dir ->
        val storage = DeviceStorage(JvmFileSystem(dir))
        // One byte of the bundle's own text changed (stored, so it is in the archive as is).
        val at = String(archive, Charsets.ISO_8859_1).indexOf("hotpatch golden vector")
        assertTrue(at > 0)
        val broken = archive.copyOf().also { it[at] = 'H'.code.toByte() }
        assertThrows<HotPatchException> { storage.install(release, ArchiveSource.Bytes(broken)) }
        assertEquals(emptyList<String>(), dir.resolve("releases").list()!!.toList())
    }

    @Test
    fun `the state round-trips through state json, and a damaged one is set aside`() = withDirectory { dir ->
        val storage = DeviceStorage(JvmFileSystem(dir))
        assertNull(storage.loadState())
        val state = DeviceState(launched = true, nativeVersion = "1.2.3", pending = Bundle.of(release), failed = listOf("ab".repeat(32)))
        storage.saveState(StoredState("device-1", state))
        assertEquals(StoredState("device-1", state), storage.loadState())
        assertFalse(File(dir, "state.json.tmp").exists())
        File(dir, "state.json").writeText("{\"format\":1,")
        assertNull(storage.loadState())
        assertTrue(File(dir, "state.json.corrupt").isFile)
        assertFalse(File(dir, "state.json").exists())
    }

    @Test
    fun `a power cut at any operation of an install leaves a state that runs`() {
        val before = StoredState("device-1", DeviceState(launched = true, nativeVersion = "1.2.3"))
        val after = StoredState("device-1", before.state.copy(pending = Bundle.of(release)))
        fun run(fs: MemoryFileSystem) {
            val storage = DeviceStorage(fs)
            storage.install(release, ArchiveSource.Bytes(archive))
            storage.saveState(after)
        }
        fun fresh(): MemoryFileSystem = MemoryFileSystem().also { DeviceStorage(it).saveState(before) }
        val counting = fresh()
        val start = counting.operations
        run(counting)
        val total = counting.operations - start
        assertTrue(total > 15, counting.trace.toString())
        val outcomes = mutableSetOf<Boolean>()
        // Cut before each operation, and once after the last (the power fails once all is done).
        for (cut in 1..total + 1) {
            val fs = fresh()
            fs.cutAt = fs.operations + cut
            if (cut <= total) assertThrows<PowerCut> { run(fs) } else run(fs)
            val rebooted = fs.afterCut()
            val storage = DeviceStorage(rebooted)
            val loaded = storage.loadState()
            assertNotNull(loaded, "cut $cut")
            loaded!!
            assertTrue(loaded == before || loaded == after, "cut $cut: $loaded")
            storage.recover(loaded.state)
            for (bundle in loaded.state.installed()) storage.verifyInstalled(bundle.manifestId, release.manifest.files)
            val left = rebooted.files().filter { it.startsWith("releases/") && it != "releases/" }
            if (loaded == before) {
                assertEquals(emptyList<String>(), left, "cut $cut")
            } else {
                assertTrue(left.all { it.startsWith("releases/${release.manifestId}/") }, "cut $cut: $left")
            }
            assertTrue(rebooted.files().none { it.endsWith(".tmp") || it.contains(".staging-") }, "cut $cut")
            outcomes.add(loaded == after)
            // The device carries on: installing again after the cut succeeds.
            if (loaded == before) run(rebooted)
            storage.verifyInstalled(release.manifestId, release.manifest.files)
        }
        assertEquals(setOf(false, true), outcomes)
    }

    @Test
    fun `reports are queued once per outcome, with the reference's ids`() {
        val fs = MemoryFileSystem()
        val queue = ReportQueue(fs, "com.example.app", "device-1")
        val failed = Action.Report("ab".repeat(32), ReportStatus.FAILED, ReportPhase.VERIFY, "x".repeat(600))
        // Ids computed by the reference, hotpatch_client.reports.report_id.
        assertEquals("7a6ce382400756769eb0d8a972268258", queue.put(failed))
        assertEquals("7a6ce382400756769eb0d8a972268258", queue.put(failed.copy(reason = "again")))
        assertEquals("9bfd6094df5e19faa71da477c5a5c925", queue.put(Action.Report("ab".repeat(32), ReportStatus.APPLIED)))
        val pending = queue.pending()
        assertEquals(2, pending.size)
        val body = StrictJson.parse(pending.first { it.first.contains("7a6c") }.second)
        assertEquals("again", body["reason"].str())
        assertEquals("verify", body["phase"].str())
        assertEquals(setOf("id", "appId", "deviceId", "manifestId", "status", "phase", "reason"), body.obj().keys)
        val long = StrictJson.parse(queue.pending().first().second)
        assertTrue(long["reason"].str().length <= ReportQueue.MAX_REASON_CHARS)
        queue.remove(pending[0].first)
        assertEquals(1, queue.pending().size)
    }
}
