package dev.hotpatch.core

import java.io.File

/** The repository's golden vectors and conformance scenarios (the test driver passes where). */
object Vectors {
    private val spec: File =
        File(System.getProperty("hotpatch.spec") ?: error("run with -Dhotpatch.spec=<repo>/docs/spec"))

    fun bytes(name: String): ByteArray = File(spec, "vectors/$name").readBytes()

    fun json(name: String): Json = StrictJson.parse(bytes(name))

    fun hex(text: String): ByteArray = ByteArray(text.length / 2) { text.substring(2 * it, 2 * it + 2).toInt(16).toByte() }
}

fun Json.obj(): Map<String, Json> = (this as Json.Obj).members

fun Json.arr(): List<Json> = (this as Json.Arr).items

fun Json.str(): String = (this as Json.Str).value

operator fun Json.get(key: String): Json = obj().getValue(key)

/** JUnit's assertThrows for a reified type (Debian's JUnit jar has no Kotlin extensions). */
inline fun <reified T : Throwable> assertThrows(message: String = "", noinline block: () -> Unit): T =
    org.junit.jupiter.api.Assertions.assertThrows(T::class.java, { block() }, message)
