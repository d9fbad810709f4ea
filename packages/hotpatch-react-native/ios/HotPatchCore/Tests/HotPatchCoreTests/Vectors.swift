import Foundation
import XCTest
@testable import HotPatchCore

/// The repository's golden vectors (the test driver passes where: `HOTPATCH_SPEC`).
enum Vectors {
    static var spec: URL {
        guard let path = ProcessInfo.processInfo.environment["HOTPATCH_SPEC"] else {
            fatalError("run with HOTPATCH_SPEC=<repo>/docs/spec")
        }
        return URL(fileURLWithPath: path)
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: spec.appendingPathComponent("vectors").appendingPathComponent(name)))
    }

    static func json(_ name: String) throws -> JSON { try StrictJSON.parse(bytes(name)) }

    static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.utf8)
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }
}

extension JSON {
    var items: [JSON] {
        guard case let .array(items) = self else { fatalError("not an array: \(self)") }
        return items
    }

    var text: String {
        guard case let .string(text) = self else { fatalError("not a string: \(self)") }
        return text
    }

    var flag: Bool {
        guard case let .bool(flag) = self else { fatalError("not a boolean: \(self)") }
        return flag
    }

    var number: Int64 {
        guard case let .integer(number) = self else { fatalError("not an integer: \(self)") }
        return number
    }

    func at(_ key: String) -> JSON {
        guard let value = self[key] else { fatalError("no member \(key)") }
        return value
    }
}

/// Assert that `body` throws a HotPatchError whose reason is `reason` (or derives from it).
func assertRefused<T>(
    _ reason: HotPatchError.Reason, _ message: String = "", file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> T
) {
    do {
        _ = try body()
        XCTFail("expected \(reason.rawValue), nothing was thrown \(message)", file: file, line: line)
    } catch let error as HotPatchError {
        XCTAssertTrue(error.reason.isA(reason), "expected \(reason.rawValue), got \(error) \(message)", file: file, line: line)
    } catch {
        XCTFail("expected \(reason.rawValue), got \(error) \(message)", file: file, line: line)
    }
}

/// Keeps every file an extractor or a patch produces in memory, and counts what it was given.
final class MemorySink: ExtractSink {
    var files: [(path: String, data: [UInt8])] = []
    var written: Int64 = 0
    private var current: [UInt8] = []

    func begin(_ entry: FileEntry) { current = [] }

    func write(_ data: UnsafeRawBufferPointer) {
        current += data
        written += Int64(data.count)
    }

    func end(_ entry: FileEntry) { files.append((entry.path, current)) }
}
