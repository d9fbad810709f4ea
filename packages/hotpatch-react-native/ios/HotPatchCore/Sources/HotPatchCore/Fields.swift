/// The case of `T` whose wire name is exactly `text` (compared as scalars), or a
/// `SchemaError` naming `field` that says the text is not `what`.
func wireCase<T: CaseIterable & RawRepresentable>(_ text: String, _ what: String, field: String) throws -> T
    where T.RawValue == String {
    guard let found = T.allCases.first(where: { sameScalars($0.rawValue, text) }) else {
        throw HotPatchError.schema("'\(text.prefix(40))' is not \(what)", field)
    }
    return found
}

/// Typed reads of a document's members, naming the field at fault (the wire converter's rules).
struct Fields {
    let document: JSON
    let prefix: String

    init(_ document: JSON, _ prefix: String) {
        self.document = document
        self.prefix = prefix
    }

    /// The members of `value`, which must be an object, named `at` in errors.
    static func of(_ value: JSON, at: String) throws -> Fields {
        guard case .object = value else { throw HotPatchError.schema("expected an object", at) }
        return Fields(value, at)
    }

    func at(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix).\(name)" }

    func require(_ name: String) throws -> JSON {
        guard let value = document[name] else { throw HotPatchError.schema("required field is missing", at(name)) }
        return value
    }

    func optional(_ name: String) -> JSON? {
        guard let value = document[name], value != .null else { return nil }
        return value
    }

    func integer(_ name: String, default fallback: Int64? = nil) throws -> Int64 {
        guard let value = document[name] else {
            guard let fallback else { throw HotPatchError.schema("required field is missing", at(name)) }
            return fallback
        }
        guard case let .integer(number) = value else { throw HotPatchError.schema("expected an int", at(name)) }
        return number
    }

    func positive(_ name: String) throws -> Int64 {
        let value = try integer(name)
        if value < 1 { throw HotPatchError.schema("must be a positive integer", at(name)) }
        return value
    }

    func int(_ name: String, default fallback: Int? = nil) throws -> Int {
        let value = try integer(name, default: fallback.map(Int64.init))
        guard value >= Int64(Int32.min), value <= Int64(Int32.max) else {
            throw HotPatchError.schema("out of range", at(name))
        }
        return Int(value)
    }

    func string(_ name: String) throws -> String {
        guard case let .string(text) = try require(name) else { throw HotPatchError.schema("expected a str", at(name)) }
        return text
    }

    func list(_ name: String, default fallback: [JSON]? = nil) throws -> [JSON] {
        guard let value = document[name] else {
            guard let fallback else { throw HotPatchError.schema("required field is missing", at(name)) }
            return fallback
        }
        guard case let .array(items) = value else { throw HotPatchError.schema("expected a list", at(name)) }
        return items
    }

    func object(_ name: String, default fallback: [(key: String, value: JSON)]? = nil) throws -> [(key: String, value: JSON)] {
        guard let value = document[name] else {
            guard let fallback else { throw HotPatchError.schema("required field is missing", at(name)) }
            return fallback
        }
        guard case let .object(members) = value else { throw HotPatchError.schema("expected an object", at(name)) }
        return members
    }

    /// A string for which `valid` holds; `what` says what it should look like.
    func matching(_ name: String, _ valid: (String) -> Bool, _ what: String) throws -> String {
        let text = try string(name)
        if !valid(text) { throw HotPatchError.schema("'\(text.prefix(40))' is not \(what)", at(name)) }
        return text
    }

    /// An integer in `low...high`.
    func between(_ name: String, _ low: Int64, _ high: Int64, default fallback: Int64? = nil) throws -> Int64 {
        let value = try integer(name, default: fallback)
        if value < low || value > high { throw HotPatchError.schema("must be between \(low) and \(high)", at(name)) }
        return value
    }

    /// A JSON true or false (never a number), or `fallback` when absent.
    func bool(_ name: String, default fallback: Bool? = nil) throws -> Bool {
        guard let value = document[name] else {
            guard let fallback else { throw HotPatchError.schema("required field is missing", at(name)) }
            return fallback
        }
        guard case let .bool(flag) = value else { throw HotPatchError.schema("expected a bool", at(name)) }
        return flag
    }

    /// Parse a signed document's body strictly: a JSON object whose `format` is `format`
    /// (`UnsupportedFormatError` otherwise, checked before the fields, as the reference does).
    static func ofDocument(_ body: [UInt8], format: Int64, what: String) throws -> Fields {
        let document = try StrictJSON.parse(body)
        guard case .object = document else { throw HotPatchError.schema("expected a JSON object", "") }
        guard case let .integer(given)? = document["format"], given == format else {
            let shown: String
            switch document["format"] {
            case nil, .null?: shown = "None"
            case let .integer(number)?: shown = String(number)
            case let .string(text)?: shown = "'\(text.prefix(20))'"
            default: shown = "(not a number)"
            }
            throw HotPatchError(.unsupportedFormat, "\(what) format \(shown) is not supported (expected \(format))")
        }
        return Fields(document, "")
    }

    /// An RFC 3339 UTC time with second precision (`2026-11-29T10:00:00Z`), or nil when absent.
    func time(_ name: String) throws -> UTCSeconds? {
        guard let value = optional(name) else { return nil }
        guard case let .string(text) = value else { throw HotPatchError.schema("expected a time string", at(name)) }
        guard let moment = UTCSeconds.parse(text) else {
            throw HotPatchError.schema("'\(text.prefix(40))' is not a UTC time like 2026-11-29T10:00:00Z", at(name))
        }
        return moment
    }
}
