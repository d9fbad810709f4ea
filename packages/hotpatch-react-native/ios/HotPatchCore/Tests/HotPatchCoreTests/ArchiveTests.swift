import Foundation
import XCTest
@testable import HotPatchCore

final class ArchiveTests: XCTestCase {
    private func entries(_ item: JSON) -> [FileEntry] {
        item.at("files").items.map { FileEntry(path: $0.at("path").text, sha256: $0.at("sha256").text, size: $0.at("size").number) }
    }

    func testEveryArchiveGetsTheReferencesVerdict() throws {
        let cases = try Vectors.json("archives.json").items
        XCTAssertGreaterThanOrEqual(cases.count, 40)
        for item in cases {
            let name = item.at("name").text
            let data = [UInt8](Data(base64Encoded: item.at("archive").text)!)
            let expected = entries(item)
            let sink = MemorySink()
            var verdict: String?
            do {
                try Archives.extract(BytesSource(data), expected: expected, sink: sink)
            } catch let error as HotPatchError {
                verdict = error.reason.rawValue
            }
            let wanted: String? = item.at("error") == .null ? nil : item.at("error").text
            XCTAssertEqual(verdict, wanted, name)
            // Never more than the signed sizes, whatever the archive claims.
            XCTAssertLessThanOrEqual(sink.written, expected.reduce(0) { $0 + $1.size }, name)
            if verdict == nil { XCTAssertEqual(Set(sink.files.map(\.path)), Set(expected.map(\.path)), name) }
        }
    }

    func testTheGoldenArchiveExtractsFromAFileOnDiskByteForByte() throws {
        let spec = try Vectors.json("release.archive.json")
        let expected = entries(spec)
        let path = NSTemporaryDirectory() + "hotpatch-\(UUID().uuidString).zip"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let data = try Vectors.bytes("release.archive.zip")
        FileManager.default.createFile(atPath: path, contents: Data(data))
        let source = try FileSource(path: path)
        XCTAssertEqual(try source.sha256Hex(), spec.at("sha256").text)
        let sink = MemorySink()
        let total = try Archives.extract(source, expected: expected, sink: sink)
        XCTAssertEqual(total, expected.reduce(0) { $0 + $1.size })
        XCTAssertEqual(sink.files.map(\.path), expected.map(\.path))
        for (file, entry) in zip(sink.files, expected) {
            XCTAssertEqual(Hex.encode(CryptoBackends.system.sha256(file.data)), entry.sha256)
        }
        XCTAssertEqual(try Archives.declaredEntries(BytesSource(data)), 2)
    }

    func testCapsAreEnforcedBeforeTheDirectoryIsRead() throws {
        let data = try Vectors.bytes("release.archive.zip")
        let expected = entries(try Vectors.json("release.archive.json"))
        var fewFiles = ArchiveLimits()
        fewFiles.maxFiles = 1
        assertRefused(.tooLarge) { try Archives.extract(BytesSource(data), expected: expected, sink: NullSink(), limits: fewFiles) }
        var fewBytes = ArchiveLimits()
        fewBytes.maxTotalBytes = 10
        assertRefused(.tooLarge) { try Archives.extract(BytesSource(data), expected: expected, sink: NullSink(), limits: fewBytes) }
        XCTAssertNoThrow(try Archives.extract(BytesSource(data), expected: expected, sink: MemorySink()))
    }
}
