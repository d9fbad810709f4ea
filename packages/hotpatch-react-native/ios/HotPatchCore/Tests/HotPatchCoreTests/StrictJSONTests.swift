import XCTest
@testable import HotPatchCore

final class StrictJSONTests: XCTestCase {
    func testTheCanonicalVectorReadsAndWritesBackByteForByte() throws {
        let committed = try Vectors.bytes("canonical.json")
        let body = Array(committed.dropLast()) // the file ends with a newline
        XCTAssertEqual(StrictJSON.canonical(try StrictJSON.parse(body)), body)
    }

    func testCanonicalSortsKeysByCodePointAndEscapesAsTheReference() throws {
        let text = #"{"b":1,"a":"x\n\u0001\"\\/","\uD83D\uDE00":2,"\uFFFF":3,"e\u0301":4,"\u00e9":5}"#
        let expected = "{\"a\":\"x\\n\\u0001\\\"\\\\/\",\"b\":1,\"e\u{301}\":4,\"\u{e9}\":5,\"\u{FFFF}\":3,\"\u{1F600}\":2}"
        let written = StrictJSON.canonical(try StrictJSON.parse(Array(text.utf8)))
        XCTAssertEqual(written, Array(expected.utf8))
    }

    func testKeysThatSwiftCallsEqualAreTwoKeys() throws {
        // "é" precomposed and "e" + combining acute are canonically equivalent,
        // and equal as Swift Strings; the reference (and the signature) tells them apart.
        let value = try StrictJSON.parse(Array(#"{"\u00e9":1,"e\u0301":2}"#.utf8))
        guard case let .object(members) = value else { return XCTFail("not an object") }
        XCTAssertEqual(members.count, 2)
        XCTAssertEqual(value["\u{e9}"], .integer(1))
        XCTAssertEqual(value["e\u{301}"], .integer(2))
        XCTAssertNotEqual(JSON.string("\u{e9}"), JSON.string("e\u{301}"))
    }

    func testAmbiguousOrInvalidJSONIsRefused() {
        let cases = [
            #"{"a":1,"a":2}"#, #"{"a":1.5}"#, #"{"a":1e3}"#, #"{"a":NaN}"#, #"{"a":Infinity}"#,
            #"{"a":9223372036854775808}"#, #"{"a":-9223372036854775809}"#, #"{"a":"\ud800"}"#,
            #"{"a":"\udc00\ud800"}"#, #"{"a":1} x"#, #"{"a":01}"#, "{\"a\":\"tab\tinside\"}", "{'a':1}", "",
            "[1,]", "{\"a\":1,}", "-", "tru", "\"\\x\"",
        ]
        for text in cases {
            assertRefused(.strictJSON, text) { try StrictJSON.parse(Array(text.utf8)) }
        }
    }

    func testAByteOrderMarkBadUTF8AndDeepNestingAreRefused() throws {
        assertRefused(.strictJSON) { try StrictJSON.parse([0xEF, 0xBB, 0xBF] + Array("{}".utf8)) }
        for bad: [UInt8] in [[0xC3], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0xFF]] {
            assertRefused(.strictJSON, "\(bad)") { try StrictJSON.parse([0x22] + bad + [0x22]) }
        }
        let depth = StrictJSON.maxDepth
        let deep = String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1)
        assertRefused(.strictJSON) { try StrictJSON.parse(Array(deep.utf8)) }
        let deepest = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        _ = try StrictJSON.parse(Array(deepest.utf8))
    }

    func testMultiByteUTF8AndSurrogatePairsRead() throws {
        let value = try StrictJSON.parse(Array("[\"h\u{e9}\u{20AC}\u{1F600}\", \"\\ud83d\\ude00\"]".utf8))
        XCTAssertEqual(value, .array([.string("h\u{e9}\u{20AC}\u{1F600}"), .string("\u{1F600}")]))
    }

    func testThe64BitLimitsAreInclusive() throws {
        XCTAssertEqual(try StrictJSON.parse(Array("9223372036854775807".utf8)), .integer(Int64.max))
        XCTAssertEqual(try StrictJSON.parse(Array("-9223372036854775808".utf8)), .integer(Int64.min))
        XCTAssertEqual(StrictJSON.canonical(try StrictJSON.parse(Array("-0".utf8))), Array("0".utf8))
    }
}
