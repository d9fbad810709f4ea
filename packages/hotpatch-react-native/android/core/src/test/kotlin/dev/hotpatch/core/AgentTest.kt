package dev.hotpatch.core

import java.io.ByteArrayInputStream
import java.io.IOException
import java.io.InputStream
import java.time.Instant
import java.util.Base64
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

/** The agent against a scripted server that serves the golden release (the live test uses a real one). */
class AgentTest {
    private val spec = Vectors.json("release.verify.json")
    private val now = Instant.parse(spec["now"].str())
    private val envelope = Vectors.bytes("release.envelope.json").trimEnd()
    private val archive = Vectors.bytes("release.archive.zip")
    private val manifestId = spec["expect"]["manifestId"].str()

    /** Serves no newer root, an answer offering the golden release, its archive (with ranges), and takes reports. */
    private inner class Server : Http {
        var served = archive
        var cutAfter: Int? = null
        val requests = mutableListOf<String>()
        val reports = mutableListOf<Json>()
        var offer = true
        /** A patch offer's base: the answer then offers a (missing) patch from it. */
        var patchBase: String? = null

        override fun get(url: String, headers: Map<String, String>): HttpResponse {
            requests.add(url + (headers["Range"]?.let { " Range: $it" } ?: ""))
            val path = url.removePrefix("https://updates.example")
            return when {
                path.startsWith("/apps/com.example.app/roots/") -> HttpResponse(404, emptyMap(), InputStream.nullInputStream())
                path.startsWith("/update/check?") -> {
                    val answer = if (!offer) {
                        "{\"updateAvailable\":false}"
                    } else {
                        val patch = patchBase?.let { ",\"patch\":{\"url\":\"/patches/p1\",\"size\":100,\"baseManifestId\":\"$it\"}" } ?: ""
                        "{\"updateAvailable\":true,\"manifest\":\"${Base64.getEncoder().encodeToString(envelope)}\",\"bundleUrl\":\"/bundles/$manifestId.zip\"$patch}"
                    }
                    HttpResponse(200, emptyMap(), ByteArrayInputStream(answer.toByteArray()))
                }
                path == "/bundles/$manifestId.zip" -> {
                    val from = headers["Range"]?.removePrefix("bytes=")?.removeSuffix("-")?.toInt() ?: 0
                    val body = served.copyOfRange(from, served.size)
                    val status = if (from > 0) 206 else 200
                    val range = if (from > 0) mapOf("content-range" to "bytes $from-${served.size - 1}/${served.size}") else emptyMap()
                    val cut = cutAfter
                    cutAfter = null
                    val stream = if (cut == null) ByteArrayInputStream(body) else Cut(body, cut)
                    HttpResponse(status, range + ("content-length" to body.size.toString()), stream)
                }
                else -> HttpResponse(404, emptyMap(), InputStream.nullInputStream())
            }
        }

        override fun postJson(url: String, body: ByteArray): Int {
            requests.add("POST $url")
            reports.add(StrictJson.parse(body))
            return 201
        }
    }

    /** A body whose connection drops after [limit] bytes. */
    private class Cut(private val data: ByteArray, private val limit: Int) : InputStream() {
        private var at = 0

        override fun read(): Int = throw UnsupportedOperationException()

        override fun read(b: ByteArray, off: Int, len: Int): Int {
            if (at >= limit) throw IOException("connection reset")
            val count = minOf(len, limit - at, data.size - at)
            System.arraycopy(data, at, b, off, count)
            at += count
            return count
        }
    }

    /** A clock that moves only when told to, or when the agent sleeps. */
    private class FakeTimer : Timer {
        var now = 0L
        val sleeps = mutableListOf<Long>()

        override fun monotonicMillis() = now

        override fun sleep(millis: Long) {
            sleeps.add(millis)
            now += millis
        }
    }

    private fun agent(
        fs: FileSystem,
        server: Http,
        restart: () -> Unit = {},
        timer: Timer = FakeTimer(),
        embedded: EmbeddedBundle? = null,
    ) = Agent(
        AgentConfig(
            serverUrl = "https://updates.example/",
            appId = "com.example.app",
            platform = Platform.ANDROID,
            nativeVersion = "1.2.3",
            trustRoot = Vectors.bytes("trust-root.envelope.json").trimEnd(),
            deviceId = "device-1",
            embedded = embedded,
        ),
        fs, server, clock = { now }, restart = restart, timer = timer,
    )

    @Test
    fun `a device takes the release, runs it on trial, confirms it and reports it`() {
        val fs = MemoryFileSystem()
        val server = Server()
        val device = agent(fs, server)
        assertNull(device.onLaunch()) // the embedded bundle
        val stages = mutableSetOf<String>()
        val result = device.sync { stage, done, total -> stages.add(stage); assertTrue(done <= total) }
        assertEquals(SyncStatus.STAGED, result.status, result.error?.toString())
        assertEquals(manifestId, result.manifestId)
        assertEquals(setOf("download", "install"), stages)
        assertTrue(server.requests.any { it.contains("/update/check?appId=com.example.app&platform=android&deviceId=device-1") })
        // The next process: the staged bundle runs on trial, and notifyReady confirms it.
        val next = agent(fs.afterCut(), server)
        assertEquals("releases/$manifestId/files/index.android.bundle", next.onLaunch())
        next.notifyReady()
        assertEquals(manifestId, next.currentState.confirmed?.manifestId)
        assertEquals(1, next.flushReports())
        assertEquals("applied", server.reports.single()["status"].str())
        assertEquals(SyncStatus.UP_TO_DATE, next.sync().status) // installed already
    }

    /** The APK's assets, counting how often each file is opened; [broken] ones cannot be read. */
    private class Assets(val files: Map<String, ByteArray>, val broken: Set<String> = emptySet()) : EmbeddedBundle {
        val opened = mutableListOf<String>()
        override val paths: List<String> get() = files.keys.toList()

        override fun open(path: String): InputStream {
            opened.add(path)
            if (path in broken) throw IOException("$path: no such asset")
            return ByteArrayInputStream(files.getValue(path))
        }
    }

    @Test
    fun `a device on the bundle in its binary takes a patch from it only when the offer names that bundle`() {
        val bundle = "var app = 1;\n".repeat(10_000).toByteArray()
        val files = mapOf("index.android.bundle" to bundle)
        val digest = java.security.MessageDigest.getInstance("SHA-256").digest(bundle).joinToString("") { "%02x".format(it) }
        val entry = FileEntry("index.android.bundle", digest, bundle.size.toLong())
        val id = EmbeddedBundles.id("com.example.app", "android", "1.2.3", listOf(entry))
        for ((base, assets, patched) in listOf(
            Triple(id, Assets(files), true),
            Triple("ab".repeat(32), Assets(files), false), // another bundle (another native version's)
            Triple(id, Assets(files, broken = setOf("index.android.bundle")), false), // unreadable: no base
            Triple(id, null, false), // the app named no embedded bundle
        )) {
            val server = Server().apply { patchBase = base }
            val device = agent(MemoryFileSystem(), server, embedded = assets)
            device.onLaunch()
            val result = device.sync()
            // The patch this server offers is missing (404): a device that chose it reports the
            // failure and downloads the archive. Every case ends with the release staged.
            assertEquals(SyncStatus.STAGED, result.status, result.error?.toString())
            assertEquals(patched, server.requests.any { it.startsWith("https://updates.example/patches/p1") }, "$base $assets")
            val failed = server.reports.filter { it["status"].str() == "failed" }
            assertEquals(if (patched) 1 else 0, failed.size, server.reports.toString())
            // Hashed once, when the offer came; not read again, as the patch never arrived.
            if (assets != null) assertEquals(listOf("index.android.bundle"), assets.opened)
        }
    }

    @Test
    fun `a dropped download resumes where it stopped, after a backoff`() {
        val fs = MemoryFileSystem()
        val server = Server().apply { cutAfter = 100 }
        val timer = FakeTimer()
        val device = agent(fs, server, timer = timer)
        device.onLaunch()
        assertEquals(SyncStatus.STAGED, device.sync().status)
        assertTrue(server.requests.any { it.endsWith("Range: bytes=100-") }, server.requests.toString())
        assertEquals(1, timer.sleeps.size)
        assertTrue(timer.sleeps.single() in 500L..1_000L, timer.sleeps.toString())
    }

    @Test
    fun `a server that keeps failing is given up after the retries, the partial file kept`() {
        val fs = MemoryFileSystem()
        val server = object : Http by Server() {
            val inner = Server()

            override fun get(url: String, headers: Map<String, String>): HttpResponse =
                if (url.contains("/bundles/")) HttpResponse(503, emptyMap(), InputStream.nullInputStream()) else inner.get(url, headers)

            override fun postJson(url: String, body: ByteArray) = inner.postJson(url, body)
        }
        val timer = FakeTimer()
        val device = agent(fs, server, timer = timer)
        device.onLaunch()
        val result = device.sync()
        assertEquals(SyncStatus.FAILED, result.status)
        assertEquals("NetworkError", result.error?.reason)
        assertEquals(4, timer.sleeps.size) // the default four retries, backing off
        for ((index, slept) in timer.sleeps.withIndex()) assertTrue(slept in (500L shl index)..(1_000L shl index), timer.sleeps.toString())
        assertEquals("download", server.inner.reports.single()["phase"].str())
        assertEquals(manifestId, device.currentState.offer?.bundle?.manifestId) // the next sync resumes
    }

    @Test
    fun `a trickling server is abandoned below the minimum throughput`() {
        val fs = MemoryFileSystem()
        val timer = FakeTimer()
        val slow = object : InputStream() {
            override fun read(): Int = throw UnsupportedOperationException()

            override fun read(b: ByteArray, off: Int, len: Int): Int {
                timer.now += 10_000 // ten seconds a byte
                b[off] = archive[0]
                return 1
            }
        }
        val server = object : Http by Server() {
            val inner = Server()

            override fun get(url: String, headers: Map<String, String>): HttpResponse =
                if (url.contains("/bundles/")) HttpResponse(200, emptyMap(), slow) else inner.get(url, headers)
        }
        val device = agent(fs, server, timer = timer)
        device.onLaunch()
        val result = device.sync()
        assertEquals(SyncStatus.FAILED, result.status)
        assertTrue(result.error?.message?.contains("below the minimum 1024 B/s") == true, result.error?.message)
        assertTrue(timer.sleeps.isEmpty()) // not retried: the server is too slow, not failing
    }

    @Test
    fun `a corrupted archive is refused, reported, and not installed`() {
        val fs = MemoryFileSystem()
        val server = Server().apply { served = archive.copyOf().also { it[200] = (it[200] + 1).toByte() } }
        val device = agent(fs, server)
        device.onLaunch()
        val result = device.sync()
        assertEquals(SyncStatus.FAILED, result.status)
        assertEquals("HashMismatchError", result.error?.reason)
        assertEquals(emptyList<String>(), fs.list(DeviceStorage.RELEASES))
        assertEquals("verify", server.reports.single()["phase"].str())
        assertNull(device.currentState.pending)
    }

    @Test
    fun `a bundle that crashes before notifyReady is rolled back at the threshold`() {
        val fs = MemoryFileSystem()
        val server = Server()
        agent(fs, server).apply { onLaunch(); sync() }
        server.offer = false
        assertNotNull(agent(fs, server).onLaunch()) // trial launch 1: crashes
        assertNotNull(agent(fs, server).onLaunch()) // trial launch 2: crashes
        val third = agent(fs, server)
        assertNull(third.onLaunch()) // back to the embedded bundle
        assertEquals(listOf(manifestId), third.currentState.failed)
        third.flushReports()
        assertEquals("rolled_back", server.reports.last()["status"].str())
        assertEquals(emptyList<String>(), fs.list(DeviceStorage.RELEASES))
    }
}
