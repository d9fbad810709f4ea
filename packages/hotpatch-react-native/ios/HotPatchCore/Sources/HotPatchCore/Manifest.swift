/// The platforms a React Native bundle is built for, and the bundle file each starts.
public enum Platform: String, Sendable, CaseIterable {
    case android
    case ios

    public var entryFile: String { self == .android ? "index.android.bundle" : "main.jsbundle" }

    public static func of(_ text: String) throws -> Platform {
        try wireCase(text, "one of 'android', 'ios'", field: "platform")
    }
}

/// One file of a release: its relative path, sha256 (hex) and size in bytes.
public struct FileEntry: Equatable, Sendable {
    public let path: String
    public let sha256: String
    public let size: Int64
}

/// The archive a manifest signs: its sha256, byte length, uncompressed size and file count.
public struct ArchiveInfo: Equatable, Sendable {
    public let sha256: String
    public let length: Int64
    public let uncompressedSize: Int64
    public let fileCount: Int64
}

/// What a publisher signs for one release (docs/spec/manifest.md), as hotpatch_core.manifest.
public struct ReleaseManifest: Sendable {
    public let appId: String
    public let platform: Platform
    public let channel: String
    public let binaryRange: BinaryRange
    public let version: String
    public let epoch: Int64
    public let sequence: Int64
    public let archive: ArchiveInfo
    public let files: [FileEntry]
    public let createdAt: UTCSeconds
    public let mandatory: Bool
    public let rollbackOf: String?
    public let expiresAt: UTCSeconds?
}

/// Full-match checks of the reference's field patterns, on bytes (every pattern is ASCII).
enum Patterns {
    private static func matches(_ text: String, first: (UInt8) -> Bool, rest: (UInt8) -> Bool, maxRest: Int) -> Bool {
        let bytes = Array(text.utf8)
        guard let head = bytes.first, first(head), bytes.count - 1 <= maxRest else { return false }
        return bytes.dropFirst().allSatisfy(rest)
    }

    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func isLower(_ b: UInt8) -> Bool { b >= 0x61 && b <= 0x7A }
    static func isAlnum(_ b: UInt8) -> Bool { isDigit(b) || isLower(b) || (b >= 0x41 && b <= 0x5A) }
    static func isPunct(_ b: UInt8) -> Bool { b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-") }

    /// `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`
    static func appId(_ text: String) -> Bool {
        matches(text, first: isAlnum, rest: { isAlnum($0) || isPunct($0) }, maxRest: 127)
    }

    /// `[a-z0-9][a-z0-9._-]{0,63}`
    static func channel(_ text: String) -> Bool {
        let lowerAlnum: (UInt8) -> Bool = { isDigit($0) || isLower($0) }
        return matches(text, first: lowerAlnum, rest: { lowerAlnum($0) || isPunct($0) }, maxRest: 63)
    }

    /// `[0-9a-f]{64}`
    static func sha256(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.count == 64 && bytes.allSatisfy { isDigit($0) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// Decoding release manifests strictly; every rule of the reference, every error its class.
public enum Manifests {
    public static let payloadType = "application/vnd.hotpatch.release+json"
    public static let format: Int64 = 1
    public static let maxManifestBytes = 4 * 1024 * 1024
    static let hex64 = "64 lowercase hex digits"

    /// A manifest's id: the sha256 (hex) of its exact signed bytes.
    public static func manifestId(_ body: [UInt8], crypto: CryptoBackend = CryptoBackends.system) -> String {
        Hex.encode(crypto.sha256(body))
    }

    /// Parse manifest bytes strictly. Call only on bytes whose signature verified.
    public static func decode(_ body: [UInt8]) throws -> ReleaseManifest {
        if body.count > maxManifestBytes { throw HotPatchError.tooLarge("manifest bytes", limit: maxManifestBytes) }
        let fields = try Fields.ofDocument(body, format: format, what: "manifest")
        let limits = ArchiveLimits.default
        // Field by field in the reference's order, so a body with two faults names the same one.
        let appId = try fields.matching("appId", Patterns.appId, "an app id like com.acme.shop")
        let platform = try Platform.of(try fields.string("platform"))
        let channel = try fields.matching("channel", Patterns.channel, "a channel like production")
        let rangeText = try fields.string("binaryRange")
        let binaryRange: BinaryRange
        do {
            binaryRange = try BinaryRange.parse(rangeText)
        } catch let error as HotPatchError {
            throw HotPatchError.schema(error.message, "binaryRange")
        }
        let version = try fields.string("version")
        do {
            _ = try Version.parse(version)
        } catch let error as HotPatchError {
            throw HotPatchError.schema(error.message, "version")
        }
        let manifest = ReleaseManifest(
            appId: appId,
            platform: platform,
            channel: channel,
            binaryRange: binaryRange,
            version: version,
            epoch: try fields.between("epoch", 1, Int64.max),
            sequence: try fields.between("sequence", 1, Int64.max),
            archive: try archive(try Fields.of(.object(try fields.object("archive")), at: "archive"), limits),
            files: try fields.list("files").enumerated().map { try file($1, "files[\($0)]", limits) },
            createdAt: try fields.time("createdAt") ?? { throw HotPatchError.schema("required field is missing", "createdAt") }(),
            mandatory: try fields.bool("mandatory", default: false),
            rollbackOf: try fields.optional("rollbackOf").map { _ in try fields.matching("rollbackOf", Patterns.sha256, hex64) },
            expiresAt: try fields.time("expiresAt")
        )
        try consistent(manifest)
        return manifest
    }

    private static func archive(_ fields: Fields, _ limits: ArchiveLimits) throws -> ArchiveInfo {
        ArchiveInfo(
            sha256: try fields.matching("sha256", Patterns.sha256, hex64),
            length: try fields.between("length", 22, limits.maxTotalBytes),
            uncompressedSize: try fields.between("uncompressedSize", 0, limits.maxTotalBytes),
            fileCount: try fields.between("fileCount", 1, Int64(limits.maxFiles))
        )
    }

    private static func file(_ value: JSON, _ at: String, _ limits: ArchiveLimits) throws -> FileEntry {
        let fields = try Fields.of(value, at: at)
        let path = try fields.string("path")
        do {
            try ArchivePaths.check(path, limits: limits)
        } catch let error as HotPatchError {
            throw HotPatchError.schema(error.message, at)
        }
        return FileEntry(
            path: path,
            sha256: try fields.matching("sha256", Patterns.sha256, hex64),
            size: try fields.between("size", 0, limits.maxTotalBytes)
        )
    }

    private static func consistent(_ manifest: ReleaseManifest) throws {
        let paths = manifest.files.map(\.path)
        for (a, b) in zip(paths, paths.dropFirst()) where scalarOrder(b, a) {
            throw HotPatchError.schema("files must be sorted by path", "files")
        }
        do {
            try ArchivePaths.checkCollisions(paths)
        } catch let error as HotPatchError {
            throw HotPatchError.schema(error.message, "files")
        }
        if Int64(paths.count) != manifest.archive.fileCount {
            throw HotPatchError.schema("declares \(manifest.archive.fileCount) files, lists \(paths.count)", "archive.fileCount")
        }
        let total = manifest.files.reduce(Int64(0)) { $0 + $1.size }
        if total != manifest.archive.uncompressedSize {
            throw HotPatchError.schema("declares \(manifest.archive.uncompressedSize) bytes, files sum to \(total)",
                                       "archive.uncompressedSize")
        }
    }
}
