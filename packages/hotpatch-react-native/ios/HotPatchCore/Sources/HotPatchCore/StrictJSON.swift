/// A JSON value as the strict parser reads it: no floats, integers within 64 bits.
///
/// Object members keep their order, and keys are compared by their exact
/// Unicode scalars (never by Swift's canonical equivalence, under which `é`
/// and `e` + U+0301 are equal: the reference tells them apart).
public indirect enum JSON: Equatable, Sendable {
    case object([(key: String, value: JSON)])
    case array([JSON])
    case string(String)
    case integer(Int64)
    case bool(Bool)
    case null

    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { x, y in
                sameScalars(x.key, y.key) && x.value == y.value
            }
        case let (.array(a), .array(b)): return a == b
        case let (.string(a), .string(b)): return sameScalars(a, b)
        case let (.integer(a), .integer(b)): return a == b
        case let (.bool(a), .bool(b)): return a == b
        case (.null, .null): return true
        default: return false
        }
    }

    /// The member named `key` of an object (exact scalars), or nil.
    public subscript(key: String) -> JSON? {
        guard case let .object(members) = self else { return nil }
        return members.first { sameScalars($0.key, key) }?.value
    }
}

func sameScalars(_ a: String, _ b: String) -> Bool {
    a.unicodeScalars.elementsEqual(b.unicodeScalars)
}

/// Code point order, as Python sorts strings.
func scalarOrder(_ a: String, _ b: String) -> Bool {
    a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value }
}

/// Strict JSON for signed documents, as hotpatch_core.strictjson: UTF-8 without a
/// byte-order mark, no duplicate keys, no floats, `NaN` or `Infinity`, integers in
/// the signed 64-bit range, no lone surrogates, nesting at most `maxDepth` deep.
/// `canonical` writes the one encoding HotPatch signs: keys sorted by code point,
/// compact, UTF-8 with no escaping beyond what JSON requires.
public enum StrictJSON {
    public static let maxDepth = 32

    public static func parse(_ data: [UInt8]) throws -> JSON {
        if data.starts(with: [0xEF, 0xBB, 0xBF]) {
            throw HotPatchError(.strictJSON, "a byte-order mark is not allowed")
        }
        var parser = Parser(bytes: data)
        parser.skipSpace()
        let value = try parser.value(depth: 1)
        parser.skipSpace()
        if !parser.atEnd {
            throw HotPatchError(.strictJSON, "not JSON: extra data at byte \(parser.at)")
        }
        return value
    }

    public static func canonical(_ value: JSON) -> [UInt8] {
        var out = ""
        write(value, to: &out)
        return Array(out.utf8)
    }

    private static func write(_ value: JSON, to out: inout String) {
        switch value {
        case .null: out += "null"
        case let .bool(flag): out += flag ? "true" : "false"
        case let .integer(number): out += String(number)
        case let .string(text): writeString(text, to: &out)
        case let .array(items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                write(item, to: &out)
            }
            out += "]"
        case let .object(members):
            out += "{"
            for (index, member) in members.sorted(by: { scalarOrder($0.key, $1.key) }).enumerated() {
                if index > 0 { out += "," }
                writeString(member.key, to: &out)
                out += ":"
                write(member.value, to: &out)
            }
            out += "}"
        }
    }

    private static let hexDigits = Array("0123456789abcdef".unicodeScalars)

    private static func writeString(_ text: String, to out: inout String) {
        var scalars = String.UnicodeScalarView()
        scalars.append("\"")
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": scalars.append(contentsOf: "\\\"".unicodeScalars)
            case "\\": scalars.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": scalars.append(contentsOf: "\\n".unicodeScalars)
            case "\r": scalars.append(contentsOf: "\\r".unicodeScalars)
            case "\t": scalars.append(contentsOf: "\\t".unicodeScalars)
            case "\u{08}": scalars.append(contentsOf: "\\b".unicodeScalars)
            case "\u{0C}": scalars.append(contentsOf: "\\f".unicodeScalars)
            default:
                if scalar.value < 0x20 {
                    scalars.append(contentsOf: "\\u00".unicodeScalars)
                    scalars.append(hexDigits[Int(scalar.value >> 4)])
                    scalars.append(hexDigits[Int(scalar.value & 0xF)])
                } else {
                    scalars.append(scalar)
                }
            }
        }
        scalars.append("\"")
        out.unicodeScalars.append(contentsOf: scalars)
    }

    private struct Parser {
        let bytes: [UInt8]
        var at = 0

        var atEnd: Bool { at >= bytes.count }

        mutating func skipSpace() {
            while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
        }

        func fail(_ what: String) -> HotPatchError {
            HotPatchError(.strictJSON, "not JSON: \(what) at byte \(at)")
        }

        mutating func value(depth: Int) throws -> JSON {
            guard !atEnd else { throw fail("unexpected end") }
            switch bytes[at] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "n"): return try literal("null", .null)
            case UInt8(ascii: "N"), UInt8(ascii: "I"):
                throw HotPatchError(.strictJSON, "NaN and Infinity are not allowed in HotPatch documents")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw fail("unexpected byte \(bytes[at])")
            }
        }

        mutating func literal(_ word: String, _ value: JSON) throws -> JSON {
            let expected = Array(word.utf8)
            guard bytes[at...].starts(with: expected) else { throw fail("expected \(word)") }
            at += expected.count
            return value
        }

        func checkDepth(_ depth: Int) throws {
            if depth > StrictJSON.maxDepth {
                throw HotPatchError(.strictJSON, "nesting deeper than \(StrictJSON.maxDepth) levels")
            }
        }

        mutating func object(depth: Int) throws -> JSON {
            try checkDepth(depth)
            at += 1
            var members: [(key: String, value: JSON)] = []
            var seen = Set<[UInt32]>()
            skipSpace()
            if !atEnd, bytes[at] == UInt8(ascii: "}") {
                at += 1
                return .object(members)
            }
            while true {
                skipSpace()
                guard !atEnd, bytes[at] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                let key = try string()
                skipSpace()
                guard !atEnd, bytes[at] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                at += 1
                skipSpace()
                let item = try value(depth: depth + 1)
                guard seen.insert(key.unicodeScalars.map(\.value)).inserted else {
                    throw HotPatchError(.strictJSON, "duplicate key '\(key.prefix(64))'")
                }
                members.append((key, item))
                skipSpace()
                guard !atEnd else { throw fail("unexpected end") }
                switch bytes[at] {
                case UInt8(ascii: ","): at += 1
                case UInt8(ascii: "}"):
                    at += 1
                    return .object(members)
                default: throw fail("expected ',' or '}'")
                }
            }
        }

        mutating func array(depth: Int) throws -> JSON {
            try checkDepth(depth)
            at += 1
            var items: [JSON] = []
            skipSpace()
            if !atEnd, bytes[at] == UInt8(ascii: "]") {
                at += 1
                return .array(items)
            }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard !atEnd else { throw fail("unexpected end") }
                switch bytes[at] {
                case UInt8(ascii: ","): at += 1
                case UInt8(ascii: "]"):
                    at += 1
                    return .array(items)
                default: throw fail("expected ',' or ']'")
                }
            }
        }

        static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

        mutating func number() throws -> JSON {
            let start = at
            if bytes[at] == UInt8(ascii: "-") { at += 1 }
            guard !atEnd, Parser.isDigit(bytes[at]) else { throw fail("expected a digit") }
            if bytes[at] == UInt8(ascii: "0") {
                at += 1
            } else {
                while !atEnd, Parser.isDigit(bytes[at]) { at += 1 }
            }
            if !atEnd, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[at]) {
                throw HotPatchError(.strictJSON, "a non-integer number is not allowed")
            }
            let digits = String(decoding: bytes[start..<at], as: UTF8.self)
            guard let value = Int64(digits) else {
                throw HotPatchError(.strictJSON, "integer out of the 64-bit range")
            }
            return .integer(value)
        }

        mutating func string() throws -> String {
            at += 1 // the opening quote
            var scalars = String.UnicodeScalarView()
            while true {
                guard !atEnd else { throw fail("unterminated string") }
                let byte = bytes[at]
                if byte == UInt8(ascii: "\"") {
                    at += 1
                    break
                } else if byte == UInt8(ascii: "\\") {
                    at += 1
                    scalars.append(try escape())
                } else if byte < 0x20 {
                    throw fail("a control character in a string")
                } else {
                    scalars.append(try utf8Scalar())
                }
            }
            return String(scalars)
        }

        mutating func utf8Scalar() throws -> Unicode.Scalar {
            guard let (scalar, count) = UTF8Strict.scalar(bytes, at) else { throw HotPatchError(.strictJSON, "not UTF-8") }
            at += count
            return scalar
        }

        mutating func hex4() throws -> UInt32 {
            guard at + 4 <= bytes.count else { throw fail("a short \\u escape") }
            var value: UInt32 = 0
            for byte in bytes[at..<at + 4] {
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw fail("a bad \\u escape")
                }
                value = value << 4 | UInt32(digit)
            }
            at += 4
            return value
        }

        mutating func escape() throws -> Unicode.Scalar {
            guard !atEnd else { throw fail("unterminated escape") }
            let byte = bytes[at]
            at += 1
            switch byte {
            case UInt8(ascii: "\""): return "\""
            case UInt8(ascii: "\\"): return "\\"
            case UInt8(ascii: "/"): return "/"
            case UInt8(ascii: "b"): return "\u{08}"
            case UInt8(ascii: "f"): return "\u{0C}"
            case UInt8(ascii: "n"): return "\n"
            case UInt8(ascii: "r"): return "\r"
            case UInt8(ascii: "t"): return "\t"
            case UInt8(ascii: "u"):
                let unit = try hex4()
                if (0xD800...0xDBFF).contains(unit),
                   bytes[at...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) {
                    let saved = at
                    at += 2
                    let low = try hex4()
                    if (0xDC00...0xDFFF).contains(low) {
                        return Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))!
                    }
                    at = saved
                }
                guard let scalar = Unicode.Scalar(unit) else {
                    throw HotPatchError(.strictJSON, "a string holds a lone surrogate escape")
                }
                return scalar
            default:
                throw fail("a bad escape")
            }
        }
    }
}

/// Strict UTF-8, as Python's and Java's decoders read it: no overlong forms, no
/// encoded surrogates, nothing past U+10FFFF, no truncated sequences.
enum UTF8Strict {
    /// The scalar that starts at `at` and its length in bytes, or nil if the bytes there are not UTF-8.
    static func scalar(_ bytes: [UInt8], _ at: Int) -> (Unicode.Scalar, Int)? {
        let lead = bytes[at]
        let count: Int
        let minimum: UInt32
        var value: UInt32
        switch lead {
        case 0x00...0x7F: return (Unicode.Scalar(lead), 1)
        case 0xC2...0xDF: count = 2; minimum = 0x80; value = UInt32(lead & 0x1F)
        case 0xE0...0xEF: count = 3; minimum = 0x800; value = UInt32(lead & 0x0F)
        case 0xF0...0xF4: count = 4; minimum = 0x10000; value = UInt32(lead & 0x07)
        default: return nil
        }
        guard at + count <= bytes.count else { return nil }
        for offset in 1..<count {
            let next = bytes[at + offset]
            guard next & 0xC0 == 0x80 else { return nil }
            value = value << 6 | UInt32(next & 0x3F)
        }
        guard value >= minimum, let scalar = Unicode.Scalar(value) else { return nil }
        return (scalar, count)
    }

    /// `bytes` as text, or nil if they are not UTF-8.
    static func decode(_ bytes: [UInt8]) -> String? {
        var scalars = String.UnicodeScalarView()
        var at = 0
        while at < bytes.count {
            guard let (scalar, count) = scalar(bytes, at) else { return nil }
            scalars.append(scalar)
            at += count
        }
        return String(scalars)
    }
}
