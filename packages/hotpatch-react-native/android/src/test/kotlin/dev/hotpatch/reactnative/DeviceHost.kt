package dev.hotpatch.reactnative

import dev.hotpatch.core.Http
import dev.hotpatch.core.HttpResponse
import dev.hotpatch.core.Json
import dev.hotpatch.core.StrictJson
import dev.hotpatch.core.UrlConnectionHttp
import java.io.File
import java.time.Instant

/**
 * One process of an Android app, as far as HotPatch is concerned, for
 * `tests/e2e/test_sdk_app_hermes.py`: `HotPatch.onLaunch` as MainApplication
 * calls it, then `HotPatchModule` answering the calls the app's JavaScript
 * makes in a Hermes VM, which the test relays here. Only Android and React
 * Native themselves are fakes (`Fakes.kt`); the module, the core, the disk
 * and the network are real.
 *
 *     DeviceHost FILES TRUST_ROOT BINARY_URL REACHABLE_URL APP_ID NATIVE_VERSION APK_ASSETS
 *
 * `APK_ASSETS` is a folder whose files stand for the APK's `assets/` (the JS bundle
 * HotPatch may patch from among them).
 * `BINARY_URL` is the server URL the app binary's HotPatchSettings name (as
 * `configure()` must); the phone's network takes it to `REACHABLE_URL`.
 * Prints one JSON object per line: `{"kind":"launched","bundle":…}` (the file
 * React Native is to load, null for the APK's own), then for each call read
 * from stdin (`{"id":N,"method":"…","args":[…]}`) the events it emitted
 * (`{"kind":"event","name","body"}`), its settlement
 * (`{"kind":"settle","id","error","value"}`), `{"kind":"restart"}` for
 * `restartApp`, and `{"kind":"done","id"}` once all the call's work, the
 * reports it sends included, is over.
 */
fun main(args: Array<String>) {
    require(args.size == 7) { "DeviceHost FILES TRUST_ROOT BINARY_URL REACHABLE_URL APP_ID NATIVE_VERSION APK_ASSETS" }
    val (files, root, binaryUrl, reachableUrl, appId) = args
    // The APK's assets: the folder's files by their paths in it (the JS bundle among them), and the trust root.
    val apk = File(args[6])
    val assets = apk.walkTopDown().filter { it.isFile }.associate { it.relativeTo(apk).invariantSeparatorsPath to it.readBytes() }
    val app = FakeApp(File(files), assets + ("hotpatch/trust-root.json" to File(root).readBytes()), args[5], appId)
    val http = Rerouted(UrlConnectionHttp(), binaryUrl, reachableUrl)
    val bundle = HotPatch.onLaunch(app, HotPatchSettings(serverUrl = binaryUrl, appId = appId), http, Instant::now)
    send("launched", "bundle" to bundle)
    val events = FakeReactContext(app) { name, body -> send("event", "name" to name, "body" to body) }
    val module = HotPatchModule(events, { it.run() }, { send("restart") }, { FakeMap() })
    while (true) {
        val line = readlnOrNull() ?: break
        val call = (StrictJson.parse(line.toByteArray()) as Json.Obj).members
        val id = (call.getValue("id") as Json.Int).value
        val method = (call.getValue("method") as Json.Str).value
        val given = (call.getValue("args") as Json.Arr).items
        val promise = FakePromise { settled ->
            val error = settled.code?.let {
                mapOf("code" to it, "message" to settled.message, "userInfo" to mapOf("reason" to settled.reason))
            }
            send("settle", "id" to id, "error" to error, "value" to if (error == null) settled.resolved else null)
        }
        when (method) {
            "configure" -> module.configure(readableMap(given[0] as Json.Obj), promise)
            "checkForUpdate" -> module.checkForUpdate(promise)
            "downloadUpdate" -> module.downloadUpdate((given[0] as Json.Str).value, promise)
            "notifyAppReady" -> module.notifyAppReady(promise)
            "getStatus" -> module.getStatus(promise)
            "restartApp" -> module.restartApp()
            "addListener" -> module.addListener((given[0] as Json.Str).value)
            "removeListeners" -> module.removeListeners((given[0] as Json.Int).value.toDouble())
            else -> error("the JavaScript called an unknown method $method")
        }
        send("done", "id" to id)
    }
}

/** The phone's network: requests to [from] go to [to]. */
private class Rerouted(private val http: Http, private val from: String, private val to: String) : Http {
    private fun route(url: String) = if (url.startsWith(from)) to + url.removePrefix(from) else url

    override fun get(url: String, headers: Map<String, String>): HttpResponse = http.get(route(url), headers)

    override fun postJson(url: String, body: ByteArray): Int = http.postJson(route(url), body)
}

private fun readableMap(value: Json.Obj) = FakeMap().apply {
    for ((key, member) in value.members) {
        when (member) {
            is Json.Str -> putString(key, member.value)
            is Json.Bool -> putBoolean(key, member.value)
            is Json.Null -> putNull(key)
            else -> error("configure() got a $member for $key")
        }
    }
}

private fun json(value: Any?): Json = when (value) {
    null -> Json.Null
    is String -> Json.Str(value)
    is Boolean -> Json.Bool(value)
    is Long -> Json.Int(value)
    is Int -> Json.Int(value.toLong())
    is Double -> {
        check(value == Math.floor(value) && !value.isInfinite()) { "not a whole number: $value" }
        Json.Int(value.toLong())
    }
    is FakeMap -> json(value.values)
    is Map<*, *> -> Json.Obj(value.entries.associate { (k, v) -> k as String to json(v) })
    else -> error("no JSON for a ${value.javaClass.name}")
}

private fun send(kind: String, vararg members: Pair<String, Any?>) {
    val line = StrictJson.canonical(json(mapOf("kind" to kind, *members))).decodeToString()
    synchronized(System.out) {
        println(line)
        System.out.flush()
    }
}
