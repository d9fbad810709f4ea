package dev.hotpatch.core

import java.io.File
import java.time.Instant
import java.util.Base64
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** Replays every conformance scenario (docs/spec/conformance.md) through [Machine.step]. */
class ConformanceTest {
    private val folder = File(System.getProperty("hotpatch.spec"), "conformance")

    private fun scenarios(): List<File> = folder.listFiles { f -> f.name.endsWith(".json") }!!.sortedBy { it.name }

    @TestFactory
    fun `every scenario replays exactly`(): List<DynamicTest> = scenarios().map { file ->
        DynamicTest.dynamicTest(file.nameWithoutExtension) {
            val mismatches = Replay.run(StrictJson.parse(file.readBytes()))
            assertTrue(mismatches.isEmpty(), mismatches.joinToString("\n"))
        }
    }

    @Test
    fun `the scenarios exist and use every event and action`() {
        val files = scenarios()
        assertTrue(files.size >= 19, "found ${files.size} scenarios in $folder")
        val events = HashSet<String>()
        val actions = HashSet<String>()
        for (file in files) {
            for (step in StrictJson.parse(file.readBytes())["steps"].arr()) {
                events.add(step["event"]["type"].str())
                step["actions"].arr().forEach { actions.add(it["type"].str()) }
            }
        }
        // Kotlin sealed types compile to JVM 17 sealed classes: their permitted subclasses are every kind.
        assertEquals(Event::class.java.permittedSubclasses.map { it.simpleName }.toSet(), events)
        assertEquals(Action::class.java.permittedSubclasses.map { it.simpleName }.toSet(), actions)
        assertEquals(14, events.size)
    }

    @Test
    fun `a wrong answer is caught, once, and the replay goes on`() {
        val document = StrictJson.parse(File(folder, "corrupt-download.json").readBytes()).obj().toMutableMap()
        val steps = document["steps"]!!.arr().toMutableList()
        val step = steps[0].obj().toMutableMap()
        step["actions"] = Json.Arr(emptyList())
        steps[0] = Json.Obj(step)
        document["steps"] = Json.Arr(steps)
        val mismatches = Replay.run(Json.Obj(document))
        assertEquals(listOf("corrupt-download step 0: actions differ"), mismatches.map { it.lineSequence().first() })
    }

    @Test
    fun `an event the phase cannot take changes nothing and says so`() {
        val document = StrictJson.parse(File(folder, "no-update.json").readBytes())
        val config = Replay.config(document["config"])
        val idle = StateCodec.decode(document["initial"])
        val error = assertThrows<IllegalTransitionException> { Machine.step(idle, Event.InstallFinished, config) }
        assertEquals("IllegalTransitionError", error.reason)
        assertThrows<IllegalTransitionException> { Machine.step(idle, Event.Ready, config) } // before a launch
    }
}

/** The reference replayer (hotpatch_core.conformance.replay), for the Kotlin core. */
object Replay {
    fun run(document: Json): List<String> {
        assertEquals(1L, (document["format"] as Json.Int).value)
        val name = document["name"].str()
        val config = config(document["config"])
        var state = StateCodec.decode(document["initial"])
        val mismatches = mutableListOf<String>()
        for ((index, step) in document["steps"].arr().withIndex()) {
            val result = Machine.step(state, event(step["event"]), config)
            state = result.state
            val produced = result.actions.map { comparable(encode(it)) }
            val recorded = step["actions"].arr().map { comparable(it) }
            if (produced != recorded) mismatches.add("$name step $index: actions differ\n  expected $recorded\n  actual   $produced")
            val encoded = StateCodec.encode(state)
            if (encoded != step["state"]) {
                mismatches.add("$name step $index: states differ\n  expected ${step["state"]}\n  actual   $encoded")
                state = StateCodec.decode(step["state"])
            }
            // The state survives its own persistence.
            assertEquals(encoded, StateCodec.encode(StateCodec.decode(encoded)))
        }
        return mismatches
    }

    fun config(document: Json): DeviceConfig {
        val fields = document.obj()
        return DeviceConfig(
            identity = DeviceIdentity(
                fields.getValue("appId").str(), Platform.of(fields.getValue("platform").str()), fields.getValue("channel").str(),
                Version.parseNative(fields.getValue("nativeVersion").str()),
            ),
            trustRoot = TrustRoots.load(bytes(fields.getValue("trustRoot"))!!),
            crashThreshold = (fields.getValue("crashThreshold") as Json.Int).value.toInt(),
            bundleFile = (fields["bundleFile"] as? Json.Str)?.value,
            embeddedBase = (fields["embeddedBase"] as? Json.Str)?.value,
        )
    }

    private fun bytes(value: Json?): ByteArray? = (value as? Json.Str)?.let { Base64.getDecoder().decode(it.value) }

    private fun text(value: Json, key: String): String = value[key].str()

    fun event(value: Json): Event = when (val type = text(value, "type")) {
        "Launched" -> Event.Launched(Version.parseNative(text(value, "nativeVersion")))
        "Ready" -> Event.Ready
        "CheckStarted" -> Event.CheckStarted
        "RootAnswered" -> Event.RootAnswered(bytes(value["envelope"]))
        "CheckAnswered" -> Event.CheckAnswered(
            envelope = bytes(value["envelope"]),
            now = Instant.parse(text(value, "now")),
            head = bytes(value.obj()["head"]),
            deviceId = (value.obj()["deviceId"] as? Json.Str)?.value ?: "",
            patch = (value.obj()["patch"] as? Json.Obj)?.let { PatchHint(it["baseManifestId"].str(), (it["size"] as Json.Int).value) },
        )
        "CheckFailed" -> Event.CheckFailed(text(value, "reason"))
        "DownloadFinished" -> Event.DownloadFinished(text(value, "sha256"), (value["length"] as Json.Int).value)
        "DownloadFailed" -> Event.DownloadFailed(text(value, "reason"))
        "InstallFinished" -> Event.InstallFinished
        "InstallFailed" -> Event.InstallFailed(text(value, "reason"), (value["permanent"] as Json.Bool).value)
        "ApplyRequested" -> Event.ApplyRequested
        "Interrupted" -> Event.Interrupted
        "PatchInstalled" -> Event.PatchInstalled(text(value, "baseManifestId"))
        "PatchFailed" -> Event.PatchFailed(text(value, "reason"), ReportPhase.of(text(value, "phase")))
        else -> error("unknown event type $type")
    }

    private fun bundle(bundle: Bundle?): Json = bundle?.let { StateCodec.bundle(it) } ?: Json.Null

    private fun id(id: String) = Json.Str(id)

    fun encode(action: Action): Json.Obj {
        val fields: Map<String, Json> = when (action) {
            is Action.RunBundle -> mapOf("bundle" to bundle(action.bundle))
            is Action.FetchRoot -> mapOf("version" to Json.Int(action.version))
            is Action.RequestCheck -> mapOf("current" to bundle(action.current), "nativeVersion" to Json.Str(action.nativeVersion))
            is Action.Download -> mapOf("manifestId" to id(action.release.manifestId))
            is Action.FetchPatch -> mapOf(
                "manifestId" to id(action.release.manifestId),
                "hint" to Json.Obj(mapOf("baseManifestId" to Json.Str(action.hint.baseManifestId), "size" to Json.Int(action.hint.size))),
            )
            is Action.Install -> mapOf("manifestId" to id(action.release.manifestId))
            is Action.DiscardDownload -> mapOf("manifestId" to id(action.manifestId))
            is Action.DeleteBundle -> mapOf("manifestId" to id(action.manifestId))
            is Action.Report -> mapOf(
                "manifestId" to id(action.manifestId),
                "status" to Json.Str(action.status.wire),
                "phase" to (action.phase?.let { Json.Str(it.wire) } ?: Json.Null),
                "reason" to Json.Str(action.reason),
                "patchedFrom" to (action.patchedFrom?.let { Json.Str(it) } ?: Json.Null),
            )
            is Action.RestartApp -> emptyMap()
            is Action.Reject -> mapOf("error" to Json.Str(action.error.reason))
        }
        return Json.Obj(mapOf("type" to Json.Str(action::class.simpleName!!)) + fields)
    }

    /** An action as a replayer compares it: without a report's reason (text for people). */
    fun comparable(action: Json): Json = Json.Obj(action.obj() - "reason")
}
