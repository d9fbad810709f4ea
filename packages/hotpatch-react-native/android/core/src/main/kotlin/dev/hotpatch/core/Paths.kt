package dev.hotpatch.core

import java.text.Normalizer

/** Caps on an archive on top of the signed manifest's own sizes (hotpatch_core.archive.ArchiveLimits). */
data class ArchiveLimits(
    val maxFiles: Int = 10_000,
    val maxTotalBytes: Long = 1024L * 1024 * 1024,
    val maxPathBytes: Int = 1024,
    val maxComponentBytes: Int = 255,
    val maxDepth: Int = 32,
) {
    companion object {
        val DEFAULT = ArchiveLimits()
    }
}

/**
 * The strict rules for file names in a release (docs/spec/archive.md), as the
 * reference's `check_path` and `check_collisions`: names are refused, never
 * repaired.
 */
object ArchivePaths {
    private val FORBIDDEN = Regex("[\\x00-\\x1f\\x7f\\\\:]")

    /** Return [path] if it is a safe relative file path, else throw [UnsafePathException]. */
    fun check(path: String, limits: ArchiveLimits = ArchiveLimits.DEFAULT): String {
        if (path.isEmpty()) throw UnsafePathException("empty entry name")
        val shown = quote(path)
        if (!wellFormed(path)) throw UnsafePathException("entry name is not valid UTF-8")
        if (utf8Length(path) > limits.maxPathBytes) {
            throw UnsafePathException("entry name longer than ${limits.maxPathBytes} bytes")
        }
        if (FORBIDDEN.containsMatchIn(path)) {
            throw UnsafePathException("entry name $shown contains a backslash, colon, NUL or control character")
        }
        if (path.startsWith("/")) throw UnsafePathException("absolute entry name $shown")
        val parts = path.split("/")
        if (parts.size > limits.maxDepth) throw UnsafePathException("entry name deeper than ${limits.maxDepth} levels")
        for (part in parts) {
            if (part == "" || part == "." || part == "..") {
                throw UnsafePathException("entry name $shown has an empty, '.' or '..' segment")
            }
            if (utf8Length(part) > limits.maxComponentBytes) throw UnsafePathException("a segment of $shown is over-long")
        }
        return path
    }

    /** The key under which two names would land on one file on some file system: NFC, then full case folding. */
    fun collisionKey(path: String): String = CaseFolding.fold(Normalizer.normalize(path, Normalizer.Form.NFC))

    /** Throw [DuplicateEntryException] if two of [paths] would land on one file, or a file is another's directory. */
    fun checkCollisions(paths: Iterable<String>) {
        val seen = HashMap<String, String>()
        val parents = HashSet<String>()
        for (path in paths) {
            val key = collisionKey(path)
            val earlier = seen[key]
            if (earlier != null) {
                if (earlier == path) throw DuplicateEntryException("duplicate entry ${quote(path)}")
                throw DuplicateEntryException(
                    "entries ${quote(earlier)} and ${quote(path)} collide on case-insensitive or normalising file systems",
                )
            }
            seen[key] = path
            val segments = key.split("/")
            for (i in 1 until segments.size) parents.add(segments.subList(0, i).joinToString("/"))
        }
        val clash = parents.filter { it in seen }.minWithOrNull(::compareCodePoints)
        if (clash != null) throw DuplicateEntryException("entry ${quote(seen.getValue(clash))} is both a file and a directory")
    }

    /** Order strings by code point, as the reference sorts paths (not by UTF-16 unit). */
    fun compareCodePoints(a: String, b: String): Int {
        var i = 0
        var j = 0
        while (i < a.length && j < b.length) {
            val x = a.codePointAt(i)
            val y = b.codePointAt(j)
            if (x != y) return x.compareTo(y)
            i += Character.charCount(x)
            j += Character.charCount(y)
        }
        return (a.length - i).compareTo(b.length - j)
    }

    private fun quote(path: String) = "'${path.take(80)}'"

    private fun wellFormed(text: String): Boolean {
        var i = 0
        while (i < text.length) {
            val c = text[i]
            if (Character.isHighSurrogate(c)) {
                if (i + 1 >= text.length || !Character.isLowSurrogate(text[i + 1])) return false
                i += 2
                continue
            }
            if (Character.isLowSurrogate(c)) return false
            i++
        }
        return true
    }

    /** The UTF-8 length of well-formed [text]. */
    internal fun utf8Length(text: String): Int {
        var bytes = 0
        var i = 0
        while (i < text.length) {
            val codePoint = text.codePointAt(i)
            bytes += when {
                codePoint < 0x80 -> 1
                codePoint < 0x800 -> 2
                codePoint < 0x10000 -> 3
                else -> 4
            }
            i += Character.charCount(codePoint)
        }
        return bytes
    }
}
