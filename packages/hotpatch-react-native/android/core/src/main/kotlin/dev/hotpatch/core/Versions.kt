package dev.hotpatch.core

/**
 * Semantic versions and npm-style binary ranges, as hotpatch_core.versions
 * (docs/spec/manifest.md): a native version may be short (`1.2` = 1.2.0); a
 * pre-release native version is compared by plain semver precedence and is not
 * excluded from ranges.
 */
class Version(
    val major: Long,
    val minor: Long,
    val patch: Long,
    val prerelease: List<String> = emptyList(),
    val build: List<String> = emptyList(),
) : Comparable<Version> {
    override fun compareTo(other: Version): Int {
        compareValues(major, other.major).takeIf { it != 0 }?.let { return it }
        compareValues(minor, other.minor).takeIf { it != 0 }?.let { return it }
        compareValues(patch, other.patch).takeIf { it != 0 }?.let { return it }
        // A version without pre-release sorts after all its pre-releases.
        if (prerelease.isEmpty() || other.prerelease.isEmpty()) {
            return compareValues(prerelease.isEmpty(), other.prerelease.isEmpty())
        }
        for (i in 0 until minOf(prerelease.size, other.prerelease.size)) {
            val order = compareIdentifiers(prerelease[i], other.prerelease[i])
            if (order != 0) return order
        }
        return compareValues(prerelease.size, other.prerelease.size)
    }

    override fun equals(other: Any?): Boolean = other is Version && compareTo(other) == 0

    override fun hashCode(): Int = listOf(major, minor, patch, prerelease).hashCode()

    override fun toString(): String {
        val text = StringBuilder("$major.$minor.$patch")
        if (prerelease.isNotEmpty()) text.append('-').append(prerelease.joinToString("."))
        if (build.isNotEmpty()) text.append('+').append(build.joinToString("."))
        return text.toString()
    }

    companion object {
        private const val MAX_TEXT = 256
        /** 2^53 - 1: exact in JavaScript, so every SDK agrees. */
        private const val MAX_COMPONENT = 9007199254740991L
        private const val NUM = "0|[1-9][0-9]*"
        private const val IDENT = "[0-9A-Za-z-]+"
        private val SEMVER = Regex("($NUM)\\.($NUM)\\.($NUM)(?:-($IDENT(?:\\.$IDENT)*))?(?:\\+($IDENT(?:\\.$IDENT)*))?")
        private val NATIVE = Regex("($NUM)(?:\\.($NUM))?(?:\\.($NUM))?")

        // Numeric identifiers sort before alphanumeric ones, numerically (semver 11).
        private fun compareIdentifiers(a: String, b: String): Int {
            val numericA = a.all { it in '0'..'9' }
            val numericB = b.all { it in '0'..'9' }
            return when {
                numericA && numericB -> a.toBigInteger().compareTo(b.toBigInteger())
                numericA -> -1
                numericB -> 1
                else -> a.compareTo(b)
            }
        }

        internal fun component(text: String, source: String): Long {
            val value = text.toBigInteger()
            if (value > MAX_COMPONENT.toBigInteger()) throw VersionSyntaxException("version component too large in '$source'")
            return value.toLong()
        }

        /** A full semantic version such as `1.2.0` or `2.0.0-rc.1+42`. */
        fun parse(text: String): Version {
            if (text.codePointCount(0, text.length) > MAX_TEXT) {
                throw VersionSyntaxException("version string longer than 256 characters")
            }
            val match = SEMVER.matchEntire(text)
                ?: throw VersionSyntaxException("'$text' is not a semantic version like 1.2.0")
            val (major, minor, patch, pre, build) = match.destructured
            val prerelease = if (pre.isEmpty()) emptyList() else pre.split(".")
            for (ident in prerelease) {
                if (ident.length > 1 && ident.startsWith("0") && ident.all { it in '0'..'9' }) {
                    throw VersionSyntaxException("numeric pre-release part with leading zero in '$text'")
                }
            }
            return Version(
                component(major, text), component(minor, text), component(patch, text), prerelease,
                if (build.isEmpty()) emptyList() else build.split("."),
            )
        }

        /** A native app version: the short forms stores allow (`1.2` = 1.2.0), or a full one. */
        fun parseNative(text: String): Version {
            val match = if (text.codePointCount(0, text.length) <= MAX_TEXT) NATIVE.matchEntire(text) else null
            if (match == null) return parse(text)
            val (major, minor, patch) = match.destructured
            return Version(component(major, text), component(minor.ifEmpty { "0" }, text), component(patch.ifEmpty { "0" }, text))
        }
    }
}

/** Which native app versions can run a bundle, parsed from npm range syntax. */
class BinaryRange private constructor(val text: String, private val alternatives: List<List<Pair<String, Version>>>) {
    fun contains(version: Version): Boolean = alternatives.any { alt -> alt.all { holds(it, version) } }

    /** Whether every version the range contains is newer than [version] (it needs a new binary). */
    fun above(version: Version): Boolean = alternatives.all { alt ->
        alt.any { (op, bound) -> (op in setOf("=", ">=") && version < bound) || (op == ">" && version <= bound) }
    }

    override fun toString(): String = text

    companion object {
        private const val MAX_TEXT = 256
        private val PARTIAL = Regex("v?([0-9]+|[xX*])(?:\\.([0-9]+|[xX*]))?(?:\\.([0-9]+|[xX*]))?(?:-([0-9A-Za-z.-]+))?(?:\\+[0-9A-Za-z.-]+)?")
        private val OPERATOR = Regex("(<=|>=|<|>|=|\\^|~>?)?\\s*(.*)", RegexOption.DOT_MATCHES_ALL)
        private val WILD = setOf("x", "X", "*")
        private val OPERATORS = setOf("<", "<=", ">", ">=", "=", "^", "~", "~>")
        /** Python's `str.isspace()`: Unicode's spaces and the C0 separators (all in the BMP). */
        private const val SPACES = "\t\n\u000B\u000C\r\u001C\u001D\u001E\u001F \u0085\u00A0\u1680" +
            "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u2028\u2029\u202F\u205F\u3000"

        fun parse(text: String): BinaryRange {
            if (text.codePointCount(0, text.length) > MAX_TEXT) {
                throw VersionSyntaxException("range string longer than 256 characters")
            }
            if (tokens(text).isEmpty()) throw VersionSyntaxException("empty binary range; use '*' to match every native version")
            val parts = text.split("||")
            val alternatives = parts.map { conjunction(it, text) }
            if (parts.any { tokens(it).isEmpty() }) throw VersionSyntaxException("empty alternative in range '$text'")
            return BinaryRange(text, alternatives)
        }

        /** Python's `str.split()`: runs of whitespace separate, none at the ends. */
        private fun tokens(text: String): List<String> = text.split(*SPACES.map { it.toString() }.toTypedArray()).filter { it.isNotEmpty() }

        private fun conjunction(text: String, source: String): List<Pair<String, Version>> {
            val tokens = tokens(text)
            if (tokens.size == 3 && tokens[1] == "-") return desugar(">=", tokens[0], source) + desugar("<=", tokens[2], source)
            if ("-" in tokens) throw VersionSyntaxException("misplaced hyphen range in '$source'")
            // Operators may be written apart from their version (">= 1.2"): join them.
            val merged = mutableListOf<String>()
            for (token in tokens) {
                if (merged.isNotEmpty() && merged.last() in OPERATORS) merged[merged.size - 1] = merged.last() + token else merged.add(token)
            }
            return merged.flatMap { token ->
                val match = OPERATOR.matchEntire(token)
                val rest = match?.groupValues?.get(2).orEmpty()
                if (match == null || rest.isEmpty()) throw VersionSyntaxException("'$token' in range '$source' is not a comparator")
                desugar(match.groupValues[1], rest, source)
            }
        }

        private fun partial(text: String, source: String): Pair<List<Long?>, List<String>> {
            val match = PARTIAL.matchEntire(text) ?: throw VersionSyntaxException("'$text' in range '$source' is not a version")
            val parts = mutableListOf<Long?>()
            var wild = false
            for (index in 1..3) {
                val value = match.groups[index]?.value
                if (value == null || value in WILD || wild) {
                    wild = true
                    parts.add(null)
                } else {
                    parts.add(Version.component(value, source))
                }
            }
            val pre = match.groups[4]?.value
            return parts to if (pre != null && !wild) pre.split(".") else emptyList()
        }

        private fun desugar(op: String, text: String, source: String): List<Pair<String, Version>> {
            val (parts, pre) = partial(text, source)
            val (major, minor, patch) = parts
            if (major == null) {
                return if (op in setOf("", "=", ">=", "<=", "^", "~", "~>")) emptyList() else listOf("<" to Version(0, 0, 0))
            }
            val lo = Version(major, minor ?: 0, patch ?: 0, pre)
            return when (op) {
                "", "=" -> when {
                    minor == null -> listOf(">=" to lo, "<" to Version(major + 1, 0, 0))
                    patch == null -> listOf(">=" to lo, "<" to Version(major, minor + 1, 0))
                    else -> listOf("=" to lo)
                }
                "~", "~>" -> listOf(">=" to lo, "<" to if (minor == null) Version(major + 1, 0, 0) else Version(major, minor + 1, 0))
                "^" -> {
                    val upper = when {
                        major > 0 || minor == null -> Version(major + 1, 0, 0)
                        minor > 0 || patch == null -> Version(0, minor + 1, 0)
                        else -> Version(0, 0, patch + 1)
                    }
                    listOf(">=" to lo, "<" to upper)
                }
                ">" -> when {
                    minor == null -> listOf(">=" to Version(major + 1, 0, 0))
                    patch == null -> listOf(">=" to Version(major, minor + 1, 0))
                    else -> listOf(">" to lo)
                }
                "<=" -> when {
                    minor == null -> listOf("<" to Version(major + 1, 0, 0))
                    patch == null -> listOf("<" to Version(major, minor + 1, 0))
                    else -> listOf("<=" to lo)
                }
                else -> listOf(op to lo) // ">=" and "<" take the zero-filled bound as it is
            }
        }

        private fun holds(comparator: Pair<String, Version>, version: Version): Boolean {
            val (op, bound) = comparator
            return when (op) {
                "=" -> version == bound
                ">=" -> version >= bound
                ">" -> version > bound
                "<=" -> version <= bound
                else -> version < bound
            }
        }
    }
}
