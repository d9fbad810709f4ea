package dev.hotpatch.core

import java.io.File
import java.nio.file.Files
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.Test

/**
 * The Kotlin agent against a real hotpatch-server process, on a real disk:
 * tests/e2e/test_sdk_jvm.py starts the server, publishes a signed release with
 * the CLI, and passes where (`run_tests.py --live url=... app=... root=... native=...`).
 * Skipped, saying so, when run without a server.
 */
class LiveServerTest {
    private fun setting(name: String): String? = System.getProperty("hotpatch.live.$name")

    @Test
    fun `a device receives a signed release from a running server`() {
        val url = setting("url")
        assumeTrue(url != null, "no server given (run_tests.py --live url=...)")
        val dir = Files.createTempDirectory("hotpatch-live").toFile()
        try {
            val config = AgentConfig(
                serverUrl = url!!,
                appId = setting("app")!!,
                platform = Platform.ANDROID,
                nativeVersion = setting("native")!!,
                trustRoot = File(setting("root")!!).readBytes(),
            )
            val first = Agent(config, JvmFileSystem(dir))
            assertEquals(null, first.onLaunch())
            val result = first.sync()
            assertEquals(SyncStatus.STAGED, result.status, "${result.error?.reason}: ${result.error?.message}")
            println("live: staged ${result.version} (${result.manifestId}) for device ${first.id}")
            val next = Agent(config, JvmFileSystem(dir))
            val bundle = next.onLaunch()
            assertEquals("releases/${result.manifestId}/files/index.android.bundle", bundle)
            assertTrue(File(dir, bundle!!).length() > 0)
            next.notifyReady()
            assertEquals(1, next.flushReports(), "the applied report")
            assertEquals(SyncStatus.UP_TO_DATE, next.sync().status)
            println("live: confirmed ${result.version}; the server took the applied report")
        } finally {
            dir.deleteRecursively()
        }
    }
}
