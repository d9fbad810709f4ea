import XCTest
@testable import HotPatchCore

final class VersionsTests: XCTestCase {
    func testNativeVersionsParseAndNormaliseAsTheReferenceOrAreRefused() throws {
        let cases = try Vectors.json("versions.json").at("nativeVersions").items
        XCTAssertGreaterThanOrEqual(cases.count, 20)
        for item in cases {
            let text = item.at("text").text
            if item.at("valid").flag {
                XCTAssertEqual(try Version.parseNative(text).description, item.at("normalized").text, text)
            } else {
                assertRefused(.versionSyntax, text) { try Version.parseNative(text) }
            }
        }
    }

    private func validVersions() throws -> [Version] {
        try Vectors.json("versions.json").at("nativeVersions").items
            .filter { $0.at("valid").flag }
            .map { try Version.parseNative($0.at("text").text) }
    }

    func testVersionsSortBySemverPrecedencePreReleasesFirst() throws {
        let expected = try Vectors.json("versions.json").at("ascending").items.map(\.text)
        XCTAssertEqual(try validVersions().sorted().map(\.description), expected)
    }

    func testEveryRangeContainsAndIsAboveExactlyTheVersionsTheReferenceSays() throws {
        let versions = try validVersions()
        let ranges = try Vectors.json("versions.json").at("ranges").items
        XCTAssertGreaterThanOrEqual(ranges.count, 20)
        for item in ranges {
            let text = item.at("range").text
            guard item.at("valid").flag else {
                assertRefused(.versionSyntax, text) { try BinaryRange.parse(text) }
                continue
            }
            let range = try BinaryRange.parse(text)
            XCTAssertEqual(versions.filter(range.contains).map(\.description), item.at("contains").items.map(\.text), "contains \(text)")
            XCTAssertEqual(versions.filter(range.above).map(\.description), item.at("above").items.map(\.text), "above \(text)")
        }
    }
}

final class CohortTests: XCTestCase {
    func testBucketsMatchTheGoldenVector() throws {
        let cases = try Vectors.json("cohort.json").items
        XCTAssertFalse(cases.isEmpty)
        for item in cases {
            let bucket = Cohorts.bucket(deviceId: item.at("deviceId").text, salt: item.at("salt").text)
            XCTAssertEqual(Int64(bucket), item.at("bucket").number, item.at("deviceId").text)
        }
    }
}
