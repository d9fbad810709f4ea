import XCTest
@testable import HotPatchCore

final class PathsTests: XCTestCase {
    func testEveryPathListGetsTheReferencesVerdict() throws {
        let cases = try Vectors.json("paths.json").items
        XCTAssertGreaterThanOrEqual(cases.count, 40)
        for item in cases {
            let paths = item.at("paths").items.map(\.text)
            let expected: String? = item.at("error") == .null ? nil : item.at("error").text
            var actual: String?
            do {
                try paths.forEach { try ArchivePaths.check($0) }
                try ArchivePaths.checkCollisions(paths)
            } catch let error as HotPatchError {
                actual = error.reason.rawValue
            }
            XCTAssertEqual(actual, expected, paths.map { String($0.prefix(40)) }.joined(separator: " | "))
        }
    }

    func testCaseFoldingAgreesWithTheReferenceOnEveryCodePoint() throws {
        let vector = try Vectors.json("casefold.json")
        XCTAssertEqual(CaseFolding.unicodeVersion, vector.at("unicodeVersion").text)
        guard case let .object(members) = vector.at("folds") else { return XCTFail("folds is not an object") }
        var folds: [UInt32: [UInt32]] = [:]
        for member in members {
            folds[UInt32(member.key, radix: 16)!] = member.value.text.split(separator: " ").map { UInt32($0, radix: 16)! }
        }
        var differing = 0
        for codePoint in UInt32(0)...0x10FFFF where !(0xD800...0xDFFF).contains(codePoint) {
            let actual = CaseFolding.fold(codePoint)
            let expected = folds[codePoint] ?? [codePoint]
            if actual != expected {
                return XCTFail(String(format: "U+%04X folds to %@, not %@", codePoint, "\(actual)", "\(expected)"))
            }
            if actual != [codePoint] { differing += 1 }
        }
        XCTAssertEqual(differing, folds.count)
    }

    func testCollisionKeysNormaliseBeforeTheyFoldAndReadScalarsNotCharacters() throws {
        XCTAssertEqual(ArchivePaths.collisionKey("e\u{301}.PNG"), ArchivePaths.collisionKey("\u{e9}.png"))
        XCTAssertEqual(ArchivePaths.collisionKey("STRA\u{DF}E/\u{1E9E}"), Array("strasse/ss".unicodeScalars.map(\.value)))
        // A slash followed by a combining mark is one Swift Character, and still two segments.
        XCTAssertThrowsError(try ArchivePaths.check("a/\u{301}/../b"))
        XCTAssertThrowsError(try ArchivePaths.check("/\u{301}etc"))
        XCTAssertNoThrow(try ArchivePaths.check("a/\u{301}b"))
        XCTAssertThrowsError(try ArchivePaths.checkCollisions(["a/\u{301}", "a"]))
    }
}
