package dev.hotpatch.reactnative

import android.content.Intent
import com.sun.net.httpserver.HttpServer
import dev.hotpatch.core.UrlConnectionHttp
import java.io.File
import java.net.InetSocketAddress
import java.nio.file.Files
import java.time.Instant
import java.util.Base64
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test

/**
 * The adapter over fakes of Android and React Native (the stubs' types), with
 * the core and a real HTTP server of the JDK serving the golden release.
 */
class HotPatchModuleTest {
    private val spec = File(System.getProperty("hotpatch.spec"), "vectors")
    private val envelope = File(spec, "release.envelope.json").readBytes().let { it.copyOf(it.size - 1) }
    private val archive = File(spec, "release.archive.zip").readBytes()
    private val now = Instant.parse("2026-11-29T12:00:00Z")
    private val manifestId = "6ddd4dbac189811ba690ed7c7b6eebb9ee97ac96fa10b816fcdf56cad50a5f91"
    private lateinit var server: HttpServer
    private lateinit var files: File
    private val reports = mutableListOf<String>()

    /** How many report posts the server answers 503 before it takes them. */
    private var refuseReports = 0

    @BeforeEach
    fun start() {
        files = Files.createTempDirectory("hotpatch-adapter").toFile()
        server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)
        fun answer(exchange: com.sun.net.httpserver.HttpExchange, status: Int, body: ByteArray) {
            exchange.sendResponseHeaders(status, if (body.isEmpty()) -1 else body.size.toLong())
            exchange.responseBody.use { it.write(body) }
        }
        server.createContext("/") { exchange ->
            val path = exchange.requestURI.path
            when {
                path.startsWith("/update/check") -> answer(
                    exchange, 200,
                    ("{\"updateAvailable\":true,\"manifest\":\"${Base64.getEncoder().encodeToString(envelope)}\"," +
                        "\"bundleUrl\":\"/bundles/$manifestId.zip\"}").toByteArray(),
                )
                path == "/bundles/$manifestId.zip" -> answer(exchange, 200, archive)
                path == "/installations" && refuseReports > 0 -> {
                    refuseReports -= 1
                    answer(exchange, 503, ByteArray(0))
                }
                path == "/installations" -> {
                    reports.add(exchange.requestBody.readBytes().decodeToString())
                    answer(exchange, 201, "{}".toByteArray())
                }
                else -> answer(exchange, 404, ByteArray(0))
            }
        }
        server.start()
    }

    @AfterEach
    fun stop() {
        server.stop(0)
        files.deleteRecursively()
    }

    private val url get() = "http://127.0.0.1:${server.address.port}"

    private fun settings(serverUrl: String = url) = HotPatchSettings(serverUrl = serverUrl, appId = "com.example.app")

    /** An app process: what Android gives MainApplication, with the golden trust root in its assets. */
    private fun newApp() = FakeApp(files, mapOf("hotpatch/trust-root.json" to File(spec, "trust-root.envelope.json").readBytes().let { it.copyOf(it.size - 1) }))

    private fun module(app: FakeApp, exits: MutableList<Unit> = mutableListOf()) =
        HotPatchModule(FakeReactContext(app), { it.run() }, { exits.add(Unit) }, { FakeMap() })

    private fun config(serverUrl: String = url, appId: String = "com.example.app") =
        FakeMap().apply { putString("serverUrl", serverUrl); putString("appId", appId); putString("channel", "production") }

    private fun call(block: (FakePromise) -> Unit): FakePromise = FakePromise().also { block(it); assertTrue(it.done) }

    private fun launch(app: FakeApp, serverUrl: String = url): String? =
        HotPatch.onLaunch(app, settings(serverUrl), UrlConnectionHttp(), { now })

    @Test
    fun `an app takes, stages, runs and confirms the release through the module`() {
        val app = newApp()
        assertNull(launch(app)) // the embedded bundle
        val module = module(app)
        assertNull(call { module.configure(config(), it) }.code)
        val checked = call { module.checkForUpdate(it) }
        val offer = checked.resolved as? FakeMap ?: error("${checked.code}: ${checked.message}")
        assertEquals(manifestId, offer.values["manifestId"])
        assertEquals(false, offer.values["isPatch"])
        assertEquals(archive.size.toDouble(), offer.values["downloadSize"])
        val staged = call { module.downloadUpdate(manifestId, it) }
        assertEquals(manifestId, (staged.resolved as FakeMap).values["manifestId"], staged.message)
        val events = (module.reactApplicationContextForTests() as FakeReactContext).emitted
        assertTrue(events.isNotEmpty() && events.all { it.first == "HotPatchProgress" })
        assertEquals(setOf("download", "install"), events.map { (it.second as FakeMap).values["stage"] }.toSet())
        // The next process starts the staged bundle, on trial, until notifyAppReady.
        val path = launch(app)
        assertEquals(File(files, "hotpatch/releases/$manifestId/files/index.android.bundle").absolutePath, path)
        val second = module(app)
        call { second.configure(config(), it) }
        val status = call { second.getStatus(it) }.resolved as FakeMap
        assertEquals(true, status.values["onTrial"])
        assertEquals("1.2.3", status.values["nativeVersion"])
        assertNull(call { second.notifyAppReady(it) }.code)
        assertEquals(false, (call { second.getStatus(it) }.resolved as FakeMap).values["onTrial"])
        // The confirmation went to the server: its release health counts the install.
        assertEquals(1, reports.size)
        assertTrue(reports.single().contains("\"status\":\"applied\""), reports.single())
    }

    @Test
    fun `a report the server could not take goes with the next check`() {
        val app = newApp()
        launch(app)
        val module = module(app)
        call { module.configure(config(), it) }
        call { module.checkForUpdate(it) }
        call { module.downloadUpdate(manifestId, it) }
        launch(app)
        val second = module(app)
        call { second.configure(config(), it) }
        refuseReports = 1
        assertNull(call { second.notifyAppReady(it) }.code) // confirmed, though the report waits
        assertEquals(listOf<String>(), reports)
        call { second.checkForUpdate(it) }
        assertEquals(1, reports.size)
        assertTrue(reports.single().contains("\"status\":\"applied\""), reports.single())
    }

    @Test
    fun `refusals and failures reach JavaScript with the SDK's codes`() {
        val app = newApp()
        launch(app)
        val module = module(app)
        assertEquals("E_NOT_CONFIGURED", call { module.checkForUpdate(it) }.code)
        val mismatch = call { module.configure(config(appId = "com.example.other"), it) }
        assertEquals("E_INVALID_CONFIG", mismatch.code)
        assertTrue(mismatch.message!!.contains("appId=com.example.other"), mismatch.message)
        call { module.configure(config(), it) }
        assertEquals("E_NO_UPDATE", call { module.downloadUpdate("ab".repeat(32), it) }.code)
        // A server that is not there: a network error, retryable from JavaScript.
        launch(app, "http://127.0.0.1:9")
        val offline = module(app)
        call { offline.configure(config("http://127.0.0.1:9"), it) }
        val failed = call { offline.checkForUpdate(it) }
        assertEquals("E_NETWORK", failed.code, failed.message)
        assertEquals("NetworkError", failed.reason)
    }

    @Test
    fun `restartApp starts the app anew in a fresh task and ends this process`() {
        val app = newApp()
        launch(app)
        val exits = mutableListOf<Unit>()
        module(app, exits).restartApp()
        val intent = app.started.single()
        assertEquals(Intent.FLAG_ACTIVITY_NEW_TASK or Intent.FLAG_ACTIVITY_CLEAR_TASK, intent.flags)
        assertEquals(1, exits.size)
    }
}
