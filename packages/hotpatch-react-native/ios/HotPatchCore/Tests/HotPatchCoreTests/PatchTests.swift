import Foundation
import XCTest
@testable import HotPatchCore

/// The patch vectors (docs/spec/vectors/patches.json): every operation, both bsdiff encodings,
/// every refusal, applied with the system's zstd, bzip2 and LZMA2 (the Linux build's codecs).
final class PatchTests: XCTestCase {
    private struct Side {
        let entries: [FileEntry]
        let data: [String: [UInt8]]
    }

    private func load() throws -> (vectors: JSON, base: PatchBase, target: Side) {
        let vectors = try Vectors.json("patches.json")
        func side(_ name: String) -> Side {
            let items = vectors.at(name).items
            return Side(
                entries: items.map { FileEntry(path: $0.at("path").text, sha256: $0.at("sha256").text, size: $0.at("size").number) },
                data: Dictionary(uniqueKeysWithValues: items.map { ($0.at("path").text, [UInt8](Data(base64Encoded: $0.at("data").text)!)) })
            )
        }
        let base = side("base")
        let patchBase = PatchBase(manifestId: vectors.at("baseManifestId").text, files: base.entries) { base.data[$0.path]! }
        return (vectors, patchBase, side("target"))
    }

    private func patch(_ vectors: JSON, _ name: String) -> [UInt8] {
        [UInt8](Data(base64Encoded: vectors.at("cases").items.first { $0.at("name").text == name }!.at("patch").text)!)
    }

    func testEveryCaseAppliesOrFailsAsTheReferenceDoes() throws {
        let (vectors, base, target) = try load()
        let targetId = vectors.at("targetManifestId").text
        for item in vectors.at("cases").items {
            let name = item.at("name").text
            let patch = [UInt8](Data(base64Encoded: item.at("patch").text)!)
            let sink = MemorySink()
            let apply = { try Patches.apply(patch, base: base, targetId: targetId, targetFiles: target.entries, sink: sink, codecs: SystemPatchCodecs()) }
            if let error = item["error"] {
                do {
                    _ = try apply()
                    XCTFail("\(name): expected \(error.text), nothing was thrown")
                } catch let refused as HotPatchError {
                    XCTAssertEqual(refused.reason.rawValue, error.text, "\(name): \(refused)")
                }
            } else {
                let written = try apply()
                XCTAssertEqual(sink.files.map(\.path), target.entries.map(\.path), name)
                for (path, data) in sink.files { XCTAssertEqual(data, target.data[path], "\(name): \(path)") }
                XCTAssertEqual(written, target.entries.reduce(0) { $0 + $1.size }, name)
            }
        }
    }

    func testABaseFileChangedOnTheDeviceIsAWrongBase() throws {
        let (vectors, base, target) = try load()
        let damaged = PatchBase(manifestId: base.manifestId, files: base.files) { entry in
            var data = try base.read(entry)
            data[0] &+= 1
            return data
        }
        assertRefused(.wrongBase) {
            try Patches.apply(patch(vectors, "bsdiff-lzma2"), base: damaged, targetId: vectors.at("targetManifestId").text,
                              targetFiles: target.entries, sink: MemorySink(), codecs: SystemPatchCodecs())
        }
    }

    func testEmbeddedIdsAreTheReferences() throws {
        let vectors = try Vectors.json("patches.json")
        for item in vectors.at("embeddedIds").items {
            let files = item.at("files").items.map {
                FileEntry(path: $0.at("path").text, sha256: $0.at("sha256").text, size: $0.at("size").number)
            }
            let id = EmbeddedBundles.id(appId: item.at("appId").text, platform: try Platform.of(item.at("platform").text),
                                        nativeVersion: item.at("nativeVersion").text, files: files)
            XCTAssertEqual(id, item.at("id").text)
        }
    }

    func testAnySingleFlippedBitIsRefusedOrStillYieldsTheSignedFiles() throws {
        let (vectors, base, target) = try load()
        var generator = SplitMix64(seed: 17) // fixed: a failure names its bit and replays exactly
        for name in ["hdiffpatch-zstd", "bsdiff-bzip2", "bsdiff-lzma2", "zstd-from-base"] {
            let original = patch(vectors, name)
            for _ in 0..<150 {
                let bit = 11 * 8 + Int.random(in: 0..<(original.count - 11) * 8, using: &generator)
                var damaged = original
                damaged[bit / 8] ^= UInt8(1 << (bit % 8))
                let sink = MemorySink()
                do {
                    try Patches.apply(damaged, base: base, targetId: vectors.at("targetManifestId").text,
                                      targetFiles: target.entries, sink: sink, codecs: SystemPatchCodecs())
                    for (path, data) in sink.files { XCTAssertEqual(data, target.data[path], "\(name) bit \(bit): \(path)") }
                } catch is HotPatchError {
                    // refused with a typed error: the device falls back to the archive
                }
            }
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood): a small generator with a seed, so a run can be replayed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
