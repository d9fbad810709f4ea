/// Semantic versions and npm-style binary ranges, as hotpatch_core.versions
/// (docs/spec/manifest.md): a native version may be short (`1.2` = 1.2.0); a
/// pre-release native version is compared by plain semver precedence and is not
/// excluded from ranges. Text is read as Unicode scalars, as Python reads it:
/// lengths count code points and whitespace is Python's `str.isspace()`.
public struct Version: Comparable, Hashable, CustomStringConvertible, Sendable {
    public let major: Int64
    public let minor: Int64
    public let patch: Int64
    public let prerelease: [String]
    public let build: [String]

    static let maxText = 256
    /// 2^53 - 1: exact in JavaScript, so every SDK agrees.
    static let maxComponent: Int64 = 9_007_199_254_740_991

    public init(_ major: Int64, _ minor: Int64, _ patch: Int64, prerelease: [String] = [], build: [String] = []) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.prerelease = prerelease
        self.build = build
    }

    public static func < (lhs: Version, rhs: Version) -> Bool { compare(lhs, rhs) < 0 }

    public static func == (lhs: Version, rhs: Version) -> Bool { compare(lhs, rhs) == 0 }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(major)
        hasher.combine(minor)
        hasher.combine(patch) // equal versions may spell a pre-release number apart ("01", "1")
    }

    static func compare(_ a: Version, _ b: Version) -> Int {
        for (x, y) in [(a.major, b.major), (a.minor, b.minor), (a.patch, b.patch)] where x != y {
            return x < y ? -1 : 1
        }
        // A version without pre-release sorts after all its pre-releases.
        if a.prerelease.isEmpty || b.prerelease.isEmpty {
            return a.prerelease.isEmpty == b.prerelease.isEmpty ? 0 : (a.prerelease.isEmpty ? 1 : -1)
        }
        for (x, y) in zip(a.prerelease, b.prerelease) {
            let order = compareIdentifiers(x, y)
            if order != 0 { return order }
        }
        return a.prerelease.count == b.prerelease.count ? 0 : (a.prerelease.count < b.prerelease.count ? -1 : 1)
    }

    // Numeric identifiers sort before alphanumeric ones, numerically (semver 11).
    private static func compareIdentifiers(_ a: String, _ b: String) -> Int {
        let numericA = Scan.allDigits(a)
        let numericB = Scan.allDigits(b)
        switch (numericA, numericB) {
        case (true, true):
            let x = Scan.withoutLeadingZeros(a)
            let y = Scan.withoutLeadingZeros(b)
            if x.count != y.count { return x.count < y.count ? -1 : 1 }
            return x == y ? 0 : (Array(x.utf8).lexicographicallyPrecedes(Array(y.utf8)) ? -1 : 1)
        case (true, false): return -1
        case (false, true): return 1
        case (false, false):
            if Array(a.utf8) == Array(b.utf8) { return 0 }
            return Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8)) ? -1 : 1
        }
    }

    public var description: String {
        var text = "\(major).\(minor).\(patch)"
        if !prerelease.isEmpty { text += "-" + prerelease.joined(separator: ".") }
        if !build.isEmpty { text += "+" + build.joined(separator: ".") }
        return text
    }

    static func component(_ digits: Substring, source: String) throws -> Int64 {
        let significant = Scan.withoutLeadingZeros(String(digits))
        guard significant.count <= 16, let value = Int64(significant), value <= maxComponent else {
            throw HotPatchError(.versionSyntax, "version component too large in '\(source)'")
        }
        return value
    }

    /// A full semantic version such as `1.2.0` or `2.0.0-rc.1+42`.
    public static func parse(_ text: String) throws -> Version {
        if text.unicodeScalars.count > maxText {
            throw HotPatchError(.versionSyntax, "version string longer than 256 characters")
        }
        let refused = HotPatchError(.versionSyntax, "'\(text)' is not a semantic version like 1.2.0")
        guard text.unicodeScalars.allSatisfy(\.isASCII) else { throw refused }
        var rest = Substring(text)
        var build: [String] = []
        if let plus = rest.firstIndex(of: "+") {
            build = rest[rest.index(after: plus)...].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard build.allSatisfy(Scan.isIdentifier) else { throw refused }
            rest = rest[..<plus]
        }
        var prerelease: [String] = []
        if let dash = rest.firstIndex(of: "-") {
            prerelease = rest[rest.index(after: dash)...].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard prerelease.allSatisfy(Scan.isIdentifier) else { throw refused }
            rest = rest[..<dash]
        }
        let core = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard core.count == 3, core.allSatisfy(Scan.isNumber) else { throw refused }
        for ident in prerelease where ident.count > 1 && ident.hasPrefix("0") && Scan.allDigits(ident) {
            throw HotPatchError(.versionSyntax, "numeric pre-release part with leading zero in '\(text)'")
        }
        return Version(
            try component(core[0], source: text), try component(core[1], source: text),
            try component(core[2], source: text), prerelease: prerelease, build: build
        )
    }

    /// A native app version: the short forms stores allow (`1.2` = 1.2.0), or a full one.
    public static func parseNative(_ text: String) throws -> Version {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard text.unicodeScalars.count <= maxText, text.unicodeScalars.allSatisfy(\.isASCII),
              (1...3).contains(parts.count), parts.allSatisfy(Scan.isNumber)
        else { return try parse(text) }
        let numbers = try parts.map { try component($0, source: text) }
        return Version(numbers[0], numbers.count > 1 ? numbers[1] : 0, numbers.count > 2 ? numbers[2] : 0)
    }
}

/// Which native app versions can run a bundle, parsed from npm range syntax.
public struct BinaryRange: CustomStringConvertible, Sendable {
    typealias Comparator = (op: String, bound: Version)

    public let text: String
    private let alternatives: [[Comparator]]

    public var description: String { text }

    public func contains(_ version: Version) -> Bool {
        alternatives.contains { alt in alt.allSatisfy { BinaryRange.holds($0, version) } }
    }

    /// Whether every version the range contains is newer than `version` (it needs a new binary).
    public func above(_ version: Version) -> Bool {
        alternatives.allSatisfy { alt in
            alt.contains { c in
                (["=", ">="].contains(c.op) && version < c.bound) || (c.op == ">" && version <= c.bound)
            }
        }
    }

    static let operators: Set<String> = ["<", "<=", ">", ">=", "=", "^", "~", "~>"]

    public static func parse(_ text: String) throws -> BinaryRange {
        if text.unicodeScalars.count > Version.maxText {
            throw HotPatchError(.versionSyntax, "range string longer than 256 characters")
        }
        if Scan.words(text).isEmpty {
            throw HotPatchError(.versionSyntax, "empty binary range; use '*' to match every native version")
        }
        let parts = Scan.splitOn(text, "||")
        let alternatives = try parts.map { try conjunction($0, source: text) }
        if parts.contains(where: { Scan.words($0).isEmpty }) {
            throw HotPatchError(.versionSyntax, "empty alternative in range '\(text)'")
        }
        return BinaryRange(text: text, alternatives: alternatives)
    }

    private static func conjunction(_ text: String, source: String) throws -> [Comparator] {
        let tokens = Scan.words(text)
        if tokens.count == 3, tokens[1] == "-" {
            return try desugar(">=", tokens[0], source: source) + desugar("<=", tokens[2], source: source)
        }
        if tokens.contains("-") { throw HotPatchError(.versionSyntax, "misplaced hyphen range in '\(source)'") }
        // Operators may be written apart from their version (">= 1.2"): join them.
        var merged: [String] = []
        for token in tokens {
            if let last = merged.last, operators.contains(last) {
                merged[merged.count - 1] = last + token
            } else {
                merged.append(token)
            }
        }
        return try merged.flatMap { token -> [Comparator] in
            // The longest operator first, as the reference's alternation tries them.
            let op = ["<=", ">=", "<", ">", "=", "^", "~>", "~"].first { token.hasPrefix($0) } ?? ""
            let rest = String(token.unicodeScalars.dropFirst(op.unicodeScalars.count))
            guard !rest.isEmpty else {
                throw HotPatchError(.versionSyntax, "'\(token)' in range '\(source)' is not a comparator")
            }
            return try desugar(op, rest, source: source)
        }
    }

    /// `v?(N|x)(.(N|x))?(.(N|x))?(-pre)?(+build)?` with N = [0-9]+ and pre, build of [0-9A-Za-z.-]+.
    private static func partial(_ text: String, source: String) throws -> (parts: [Int64?], pre: [String]) {
        let refused = HotPatchError(.versionSyntax, "'\(text)' in range '\(source)' is not a version")
        guard text.unicodeScalars.allSatisfy(\.isASCII) else { throw refused }
        var rest = Substring(text)
        if rest.hasPrefix("v") { rest = rest.dropFirst() }
        let loose: (Substring) -> Bool = { !$0.isEmpty && $0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") } }
        if let plus = rest.firstIndex(of: "+") {
            guard loose(rest[rest.index(after: plus)...]) else { throw refused }
            rest = rest[..<plus]
        }
        var pre: Substring?
        if let dash = rest.firstIndex(of: "-") {
            pre = rest[rest.index(after: dash)...]
            guard loose(pre!) else { throw refused }
            rest = rest[..<dash]
        }
        let fields = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...3).contains(fields.count),
              fields.allSatisfy({ ["x", "X", "*"].contains($0) || (!$0.isEmpty && Scan.allDigits(String($0))) })
        else { throw refused }
        var parts: [Int64?] = []
        var wild = false
        for index in 0..<3 {
            if index >= fields.count || ["x", "X", "*"].contains(fields[index]) || wild {
                wild = true
                parts.append(nil)
            } else {
                parts.append(try Version.component(fields[index], source: source))
            }
        }
        let prerelease = (pre != nil && !wild) ? pre!.split(separator: ".", omittingEmptySubsequences: false).map(String.init) : []
        return (parts, prerelease)
    }

    private static func desugar(_ op: String, _ text: String, source: String) throws -> [Comparator] {
        let (parts, pre) = try partial(text, source: source)
        guard let major = parts[0] else {
            return ["", "=", ">=", "<=", "^", "~", "~>"].contains(op) ? [] : [("<", Version(0, 0, 0))]
        }
        let minor = parts[1]
        let patch = parts[2]
        let lo = Version(major, minor ?? 0, patch ?? 0, prerelease: pre)
        switch op {
        case "", "=":
            guard let minor else { return [(">=", lo), ("<", Version(major + 1, 0, 0))] }
            guard patch != nil else { return [(">=", lo), ("<", Version(major, minor + 1, 0))] }
            return [("=", lo)]
        case "~", "~>":
            return [(">=", lo), ("<", minor.map { Version(major, $0 + 1, 0) } ?? Version(major + 1, 0, 0))]
        case "^":
            let upper: Version
            if major > 0 || minor == nil {
                upper = Version(major + 1, 0, 0)
            } else if minor! > 0 || patch == nil {
                upper = Version(0, minor! + 1, 0)
            } else {
                upper = Version(0, 0, patch! + 1)
            }
            return [(">=", lo), ("<", upper)]
        case ">":
            guard let minor else { return [(">=", Version(major + 1, 0, 0))] }
            guard patch != nil else { return [(">=", Version(major, minor + 1, 0))] }
            return [(">", lo)]
        case "<=":
            guard let minor else { return [("<", Version(major + 1, 0, 0))] }
            guard patch != nil else { return [("<", Version(major, minor + 1, 0))] }
            return [("<=", lo)]
        default:
            return [(op, lo)] // ">=" and "<" take the zero-filled bound as it is
        }
    }

    private static func holds(_ comparator: Comparator, _ version: Version) -> Bool {
        switch comparator.op {
        case "=": return version == comparator.bound
        case ">=": return version >= comparator.bound
        case ">": return version > comparator.bound
        case "<=": return version <= comparator.bound
        default: return version < comparator.bound
        }
    }
}

/// Text helpers that read Unicode scalars as Python's `str` methods do.
enum Scan {
    /// Python's `str.isspace()`.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029,
             0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Python's `str.split()`: runs of whitespace separate, none at the ends.
    static func words(_ text: String) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if isSpace(scalar) {
                if !current.isEmpty { words.append(String(current)) }
                current = String.UnicodeScalarView()
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { words.append(String(current)) }
        return words
    }

    /// Python's `str.split(separator)` on scalars.
    static func splitOn(_ text: String, _ separator: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        let sep = Array(separator.unicodeScalars)
        var parts: [String] = []
        var start = 0
        var index = 0
        while index + sep.count <= scalars.count {
            if Array(scalars[index..<index + sep.count]) == sep {
                parts.append(String(String.UnicodeScalarView(scalars[start..<index])))
                index += sep.count
                start = index
            } else {
                index += 1
            }
        }
        parts.append(String(String.UnicodeScalarView(scalars[start...])))
        return parts
    }

    static func allDigits(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    static func isNumber(_ text: Substring) -> Bool {
        allDigits(String(text)) && (text == "0" || !text.hasPrefix("0"))
    }

    static func isIdentifier(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D
        }
    }

    static func withoutLeadingZeros(_ digits: String) -> String {
        let trimmed = digits.drop { $0 == "0" }
        return trimmed.isEmpty ? "0" : String(trimmed)
    }
}
