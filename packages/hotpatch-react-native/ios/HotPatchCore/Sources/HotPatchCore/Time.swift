/// A moment in UTC, in whole seconds since 1970-01-01T00:00:00Z: the only
/// precision HotPatch's signed documents carry. The core never reads the
/// clock: every decision that needs the time takes `now` as an argument.
public struct UTCSeconds: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let seconds: Int64

    public init(_ seconds: Int64) { self.seconds = seconds }

    public static func < (lhs: UTCSeconds, rhs: UTCSeconds) -> Bool { lhs.seconds < rhs.seconds }

    public var description: String {
        (UTCSeconds.parse("0001-01-01T00:00:00Z")!...UTCSeconds.parse("9999-12-31T23:59:59Z")!).contains(self)
            ? rfc3339 : "\(seconds) s since 1970"
    }

    /// Parse `YYYY-MM-DDTHH:MM:SSZ` exactly as the reference (hotpatch_core.wire.parse_time):
    /// years 0001 to 9999, real calendar days, hours 00-23, minutes and seconds 00-59
    /// (no leap second), ASCII digits, nothing before or after.
    public static func parse(_ text: String) -> UTCSeconds? {
        let bytes = Array(text.utf8)
        guard bytes.count == 20 else { return nil }
        let shape = Array("dddd-dd-ddTdd:dd:ddZ".utf8)
        for (byte, expected) in zip(bytes, shape) {
            if expected == UInt8(ascii: "d") {
                guard byte >= 0x30, byte <= 0x39 else { return nil }
            } else if byte != expected {
                return nil
            }
        }
        func number(_ from: Int, _ count: Int) -> Int64 {
            bytes[from..<from + count].reduce(0) { $0 * 10 + Int64($1 - 0x30) }
        }
        let (year, month, day) = (number(0, 4), number(5, 2), number(8, 2))
        let (hour, minute, second) = (number(11, 2), number(14, 2), number(17, 2))
        guard year >= 1, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour <= 23, minute <= 59, second <= 59
        else { return nil }
        return UTCSeconds(daysFromCivil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` (years 0001 to 9999; other moments are not HotPatch times).
    public var rfc3339: String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let rest = seconds - days * 86_400
        let (year, month, day) = UTCSeconds.civil(fromDays: days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(rest / 3_600, 2)):\(pad(rest % 3_600 / 60, 2)):\(pad(rest % 60, 2))Z"
    }

    /// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
