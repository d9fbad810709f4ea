import Foundation

/// Caps on an archive on top of the signed manifest's own sizes (hotpatch_core.archive.ArchiveLimits).
public struct ArchiveLimits: Equatable, Sendable {
    public var maxFiles = 10_000
    public var maxTotalBytes: Int64 = 1024 * 1024 * 1024
    public var maxPathBytes = 1024
    public var maxComponentBytes = 255
    public var maxDepth = 32

    public init() {}

    public static let `default` = ArchiveLimits()
}

/// The strict rules for file names in a release (docs/spec/archive.md), as the
/// reference's `check_path` and `check_collisions`: names are refused, never
/// repaired. Names are read as Unicode scalars throughout: Swift's `String`
/// comparison (canonical equivalence) and `Character` splitting (a `/` followed
/// by a combining mark is one `Character`) would both disagree with the reference.
public enum ArchivePaths {
    private static let slash = Unicode.Scalar("/")

    /// Return `path` if it is a safe relative file path, else throw `UnsafePathError`.
    @discardableResult
    public static func check(_ path: String, limits: ArchiveLimits = .default) throws -> String {
        let scalars = Array(path.unicodeScalars)
        if scalars.isEmpty { throw HotPatchError(.unsafePath, "empty entry name") }
        let shown = quote(path)
        if path.utf8.count > limits.maxPathBytes {
            throw HotPatchError(.unsafePath, "entry name longer than \(limits.maxPathBytes) bytes")
        }
        if scalars.contains(where: { $0.value <= 0x1F || $0.value == 0x7F || $0 == "\\" || $0 == ":" }) {
            throw HotPatchError(.unsafePath, "entry name \(shown) contains a backslash, colon, NUL or control character")
        }
        if scalars[0] == slash { throw HotPatchError(.unsafePath, "absolute entry name \(shown)") }
        let parts = scalars.split(separator: slash, omittingEmptySubsequences: false)
        if parts.count > limits.maxDepth {
            throw HotPatchError(.unsafePath, "entry name deeper than \(limits.maxDepth) levels")
        }
        for part in parts {
            if part.isEmpty || part.elementsEqual(["."]) || part.elementsEqual([".", "."]) {
                throw HotPatchError(.unsafePath, "entry name \(shown) has an empty, '.' or '..' segment")
            }
            if part.reduce(0, { $0 + UTF8.width($1) }) > limits.maxComponentBytes {
                throw HotPatchError(.unsafePath, "a segment of \(shown) is over-long")
            }
        }
        return path
    }

    /// The key under which two names would land on one file on some file system:
    /// NFC, then full case folding, as code points.
    public static func collisionKey(_ path: String) -> [UInt32] {
        CaseFolding.fold(path.precomposedStringWithCanonicalMapping.unicodeScalars.map(\.value))
    }

    /// Throw `DuplicateEntryError` if two of `paths` would land on one file, or a file is another's directory.
    public static func checkCollisions<S: Sequence>(_ paths: S) throws where S.Element == String {
        var seen: [[UInt32]: String] = [:]
        var parents = Set<[UInt32]>()
        for path in paths {
            let key = collisionKey(path)
            if let earlier = seen[key] {
                if sameScalars(earlier, path) { throw HotPatchError(.duplicateEntry, "duplicate entry \(quote(path))") }
                throw HotPatchError(.duplicateEntry,
                    "entries \(quote(earlier)) and \(quote(path)) collide on case-insensitive or normalising file systems")
            }
            seen[key] = path
            let segments = key.split(separator: slash.value, omittingEmptySubsequences: false)
            for count in stride(from: 1, to: segments.count, by: 1) {
                parents.insert(Array(segments[0..<count].joined(separator: [slash.value])))
            }
        }
        let clashes = parents.filter { seen[$0] != nil }
        if let clash = clashes.min(by: { $0.lexicographicallyPrecedes($1) }) {
            throw HotPatchError(.duplicateEntry, "entry \(quote(seen[clash]!)) is both a file and a directory")
        }
    }

    private static func quote(_ path: String) -> String { "'\(String(String.UnicodeScalarView(path.unicodeScalars.prefix(80))))'" }
}
