package dev.hotpatch.core

import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction
import java.nio.charset.StandardCharsets

/** A JSON value as the strict parser reads it: no floats, integers within 64 bits. */
sealed interface Json {
    data class Obj(val members: Map<String, Json>) : Json
    data class Arr(val items: List<Json>) : Json
    data class Str(val value: String) : Json
    data class Int(val value: Long) : Json
    data class Bool(val value: Boolean) : Json
    data object Null : Json
}

/**
 * Strict JSON for signed documents, as hotpatch_core.strictjson: UTF-8 without a
 * byte-order mark, no duplicate keys, no floats, `NaN` or `Infinity`, integers in
 * the signed 64-bit range, no lone surrogates, nesting at most [MAX_DEPTH] deep.
 * [canonical] writes the one encoding HotPatch signs: sorted keys (by code point),
 * compact, UTF-8 without escaping beyond what JSON requires.
 */
object StrictJson {
    const val MAX_DEPTH = 32

    fun parse(data: ByteArray): Json {
        if (data.size >= 3 && data[0] == 0xEF.toByte() && data[1] == 0xBB.toByte() && data[2] == 0xBF.toByte()) {
            throw StrictJsonException("a byte-order mark is not allowed")
        }
        val text = try {
            StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT)
                .decode(ByteBuffer.wrap(data))
                .toString()
        } catch (e: CharacterCodingException) {
            throw StrictJsonException("not UTF-8")
        }
        val parser = Parser(text)
        parser.skipSpace()
        val value = parser.value(1)
        parser.skipSpace()
        if (!parser.atEnd()) throw StrictJsonException("not JSON: extra data at character ${parser.at}")
        return value
    }

    fun canonical(value: Json): ByteArray {
        val out = StringBuilder()
        write(value, out)
        return out.toString().toByteArray(StandardCharsets.UTF_8)
    }

    /** Code point order, as Python sorts strings (UTF-16 order differs above U+FFFF). */
    internal val CODE_POINT_ORDER = Comparator<String> { a, b ->
        var i = 0
        var j = 0
        while (i < a.length && j < b.length) {
            val x = a.codePointAt(i)
            val y = b.codePointAt(j)
            if (x != y) return@Comparator x.compareTo(y)
            i += Character.charCount(x)
            j += Character.charCount(y)
        }
        (a.length - i).compareTo(b.length - j)
    }

    private fun write(value: Json, out: StringBuilder) {
        when (value) {
            is Json.Null -> out.append("null")
            is Json.Bool -> out.append(if (value.value) "true" else "false")
            is Json.Int -> out.append(value.value)
            is Json.Str -> writeString(value.value, out)
            is Json.Arr -> {
                out.append('[')
                value.items.forEachIndexed { index, item ->
                    if (index > 0) out.append(',')
                    write(item, out)
                }
                out.append(']')
            }
            is Json.Obj -> {
                out.append('{')
                value.members.keys.sortedWith(CODE_POINT_ORDER).forEachIndexed { index, key ->
                    if (index > 0) out.append(',')
                    writeString(key, out)
                    out.append(':')
                    write(value.members.getValue(key), out)
                }
                out.append('}')
            }
        }
    }

    private fun writeString(text: String, out: StringBuilder) {
        out.append('"')
        for (c in text) {
            when (c) {
                '"' -> out.append("\\\"")
                '\\' -> out.append("\\\\")
                '\n' -> out.append("\\n")
                '\r' -> out.append("\\r")
                '\t' -> out.append("\\t")
                '\b' -> out.append("\\b")
                '\u000C' -> out.append("\\f")
                else -> if (c < ' ') out.append("\\u%04x".format(c.code)) else out.append(c)
            }
        }
        out.append('"')
    }

    private class Parser(private val text: String) {
        var at = 0

        fun atEnd() = at >= text.length

        fun skipSpace() {
            while (at < text.length && text[at] in " \t\n\r") at++
        }

        private fun fail(what: String): Nothing = throw StrictJsonException("not JSON: $what at character $at")

        fun value(depth: kotlin.Int): Json {
            if (atEnd()) fail("unexpected end")
            return when (val c = text[at]) {
                '{' -> obj(depth)
                '[' -> arr(depth)
                '"' -> Json.Str(string())
                't' -> literal("true", Json.Bool(true))
                'f' -> literal("false", Json.Bool(false))
                'n' -> literal("null", Json.Null)
                'N', 'I' -> throw StrictJsonException("NaN and Infinity are not allowed in HotPatch documents")
                else -> if (c == '-' || c in '0'..'9') number() else fail("unexpected '$c'")
            }
        }

        private fun literal(word: String, value: Json): Json {
            if (!text.startsWith(word, at)) fail("expected $word")
            at += word.length
            return value
        }

        private fun checkDepth(depth: kotlin.Int) {
            if (depth > MAX_DEPTH) throw StrictJsonException("nesting deeper than $MAX_DEPTH levels")
        }

        private fun obj(depth: kotlin.Int): Json {
            checkDepth(depth)
            at++
            val members = LinkedHashMap<String, Json>()
            skipSpace()
            if (!atEnd() && text[at] == '}') {
                at++
                return Json.Obj(members)
            }
            while (true) {
                skipSpace()
                if (atEnd() || text[at] != '"') fail("expected a key")
                val key = string()
                skipSpace()
                if (atEnd() || text[at] != ':') fail("expected ':'")
                at++
                skipSpace()
                val item = value(depth + 1)
                if (members.put(key, item) != null) {
                    throw StrictJsonException("duplicate key '${key.take(64)}'")
                }
                skipSpace()
                if (atEnd()) fail("unexpected end")
                when (text[at]) {
                    ',' -> at++
                    '}' -> { at++; return Json.Obj(members) }
                    else -> fail("expected ',' or '}'")
                }
            }
        }

        private fun arr(depth: kotlin.Int): Json {
            checkDepth(depth)
            at++
            val items = ArrayList<Json>()
            skipSpace()
            if (!atEnd() && text[at] == ']') {
                at++
                return Json.Arr(items)
            }
            while (true) {
                skipSpace()
                items.add(value(depth + 1))
                skipSpace()
                if (atEnd()) fail("unexpected end")
                when (text[at]) {
                    ',' -> at++
                    ']' -> { at++; return Json.Arr(items) }
                    else -> fail("expected ',' or ']'")
                }
            }
        }

        private fun number(): Json {
            val start = at
            if (text[at] == '-') at++
            if (atEnd() || text[at] !in '0'..'9') fail("a digit")
            if (text[at] == '0') at++ else while (!atEnd() && text[at] in '0'..'9') at++
            if (!atEnd() && text[at] in ".eE") {
                throw StrictJsonException("non-integer number '${text.substring(start, minOf(text.length, start + 32))}' is not allowed")
            }
            val digits = text.substring(start, at)
            if (digits.trimStart('-').length > 19) throw StrictJsonException("integer out of the 64-bit range")
            val value = digits.toLongOrNull() ?: throw StrictJsonException("integer out of the 64-bit range")
            return Json.Int(value)
        }

        private fun string(): String {
            at++ // the opening quote
            val out = StringBuilder()
            while (true) {
                if (atEnd()) fail("unterminated string")
                val c = text[at++]
                when {
                    c == '"' -> break
                    c == '\\' -> out.append(escape())
                    c < ' ' -> fail("a control character in a string")
                    else -> out.append(c)
                }
            }
            val value = out.toString()
            var i = 0
            while (i < value.length) {
                val c = value[i]
                if (Character.isHighSurrogate(c) && i + 1 < value.length && Character.isLowSurrogate(value[i + 1])) {
                    i += 2
                } else if (Character.isSurrogate(c)) {
                    throw StrictJsonException("a string holds a lone surrogate escape")
                } else {
                    i++
                }
            }
            return value
        }

        private fun escape(): Char {
            if (atEnd()) fail("unterminated escape")
            return when (val c = text[at++]) {
                '"' -> '"'
                '\\' -> '\\'
                '/' -> '/'
                'b' -> '\b'
                'f' -> '\u000C'
                'n' -> '\n'
                'r' -> '\r'
                't' -> '\t'
                'u' -> {
                    if (at + 4 > text.length) fail("a short \\u escape")
                    val hex = text.substring(at, at + 4)
                    if (!hex.all { it in '0'..'9' || it in 'a'..'f' || it in 'A'..'F' }) fail("a bad \\u escape")
                    at += 4
                    hex.toInt(16).toChar()
                }
                else -> fail("a bad escape '\\$c'")
            }
        }
    }
}
