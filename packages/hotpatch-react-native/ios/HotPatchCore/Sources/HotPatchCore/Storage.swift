import Foundation
#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// The storage failed (a full disk, an I/O error, a missing directory): not the release's fault.
public struct StorageError: Error, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// A file being written; nothing in it is durable before `sync`.
public protocol WritableFile: AnyObject {
    func write(_ data: UnsafeRawBufferPointer) throws
    func sync() throws
    func close()
}

extension WritableFile {
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }
}

/// A file opened for reading at chosen offsets.
public protocol ReadableFile: ArchiveSource {
    func close()
}

/// The app-private files a device keeps, by relative path (`releases/<id>/files/...`).
/// Devices use `PosixFileSystem` over the app's Application Support directory; tests use a
/// model that keeps only what was synced, to cut the power at every operation.
/// Every method throws `StorageError` when the storage fails.
public protocol FileSystem: AnyObject {
    /// Create or truncate a file.
    func create(_ path: String) throws -> WritableFile
    /// Open an existing file to add at its end (a download being resumed).
    func append(_ path: String) throws -> WritableFile
    func openRead(_ path: String) throws -> ReadableFile
    /// A file's size, or nil if there is no such file.
    func size(_ path: String) -> Int64?
    /// The sorted names in a directory; empty if there is none.
    func list(_ path: String) -> [String]
    /// Create a directory if missing (its parent must exist).
    func mkdir(_ path: String) throws
    /// Make a directory's entries (creations, renames, removals) durable.
    func syncDirectory(_ path: String) throws
    /// Move `source` over `target` atomically.
    func replace(_ source: String, _ target: String) throws
    /// Remove a file if present.
    func remove(_ path: String) throws
    /// Remove a directory tree (or a file) if present.
    func removeTree(_ path: String) throws
}

/// `FileSystem` over a real directory with POSIX calls: `fsync` (on Apple platforms
/// `F_FULLFSYNC`, which reaches the disk where `fsync` stops at the drive's cache),
/// and directories made durable by syncing the directory itself.
public final class PosixFileSystem: FileSystem {
    private let root: String

    public init(root: String) { self.root = root }

    private func at(_ path: String) -> String { path.isEmpty ? root : "\(root)/\(path)" }

    private static func failure(_ what: String, _ path: String) -> StorageError {
        StorageError("\(what) \(path): \(String(cString: strerror(errno)))")
    }

    static func fullSync(_ fd: Int32) -> Int32 {
        #if canImport(Darwin)
        if fcntl(fd, F_FULLFSYNC) == 0 { return 0 }
        #endif
        return fsync(fd)
    }

    private final class File: WritableFile {
        private var fd: Int32
        private let path: String

        init(fd: Int32, path: String) {
            self.fd = fd
            self.path = path
        }

        deinit { close() }

        func write(_ data: UnsafeRawBufferPointer) throws {
            var done = 0
            while done < data.count {
                let wrote = SwiftFileWrite(fd, data.baseAddress! + done, data.count - done)
                if wrote < 0 {
                    if errno == EINTR { continue }
                    throw PosixFileSystem.failure("write", path)
                }
                done += wrote
            }
        }

        func sync() throws {
            if PosixFileSystem.fullSync(fd) != 0 { throw PosixFileSystem.failure("fsync", path) }
        }

        func close() {
            if fd >= 0 {
                _ = SwiftFileClose(fd)
                fd = -1
            }
        }
    }

    private func open(_ path: String, _ flags: Int32) throws -> WritableFile {
        let full = at(path)
        let fd = SwiftFileOpen(full, flags | O_WRONLY | O_CLOEXEC, 0o644)
        if fd < 0 { throw Self.failure("open", full) }
        return File(fd: fd, path: full)
    }

    public func create(_ path: String) throws -> WritableFile { try open(path, O_CREAT | O_TRUNC) }

    public func append(_ path: String) throws -> WritableFile { try open(path, O_APPEND) }

    public func openRead(_ path: String) throws -> ReadableFile {
        do {
            return try FileSource(path: at(path))
        } catch {
            throw StorageError("open \(at(path)): \(error)")
        }
    }

    private func kind(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(at(path), &info) == 0 else { return nil }
        return info.st_mode & S_IFMT
    }

    public func size(_ path: String) -> Int64? {
        var info = stat()
        guard stat(at(path), &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return Int64(info.st_size)
    }

    public func list(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: at(path))) ?? []).sorted(by: scalarOrder)
    }

    public func mkdir(_ path: String) throws {
        if SwiftFileMkdir(at(path), 0o755) != 0 && !(errno == EEXIST && kind(path) == S_IFDIR) {
            throw Self.failure("mkdir", at(path))
        }
    }

    public func syncDirectory(_ path: String) throws {
        let fd = SwiftFileOpen(at(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)
        if fd < 0 { throw Self.failure("open", at(path)) }
        defer { _ = SwiftFileClose(fd) }
        if Self.fullSync(fd) != 0 { throw Self.failure("fsync", at(path)) }
    }

    public func replace(_ source: String, _ target: String) throws {
        if rename(at(source), at(target)) != 0 { throw Self.failure("rename \(at(source)) to", at(target)) }
    }

    public func remove(_ path: String) throws {
        guard kind(path) == S_IFREG else { return }
        if unlink(at(path)) != 0 { throw Self.failure("unlink", at(path)) }
    }

    public func removeTree(_ path: String) throws {
        var info = stat()
        guard lstat(at(path), &info) == 0 else { return }
        do {
            try FileManager.default.removeItem(atPath: at(path))
        } catch {
            throw StorageError("remove \(at(path)): \(error)")
        }
    }
}

// The C calls under names that do not clash with the protocol's methods.
private func SwiftFileOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func SwiftFileWrite(_ fd: Int32, _ data: UnsafeRawPointer, _ count: Int) -> Int { write(fd, data, count) }
private func SwiftFileClose(_ fd: Int32) -> Int32 { close(fd) }
private func SwiftFileMkdir(_ path: String, _ mode: mode_t) -> Int32 { mkdir(path, mode) }

/// What `state.json` holds: the machine's state and this installation's device id.
public struct StoredState: Equatable {
    public let deviceId: String
    public let state: DeviceState

    public init(deviceId: String, state: DeviceState) {
        self.deviceId = deviceId
        self.state = state
    }
}

/// The device's storage layout and its durable operations, as the Python agent's
/// (hotpatch_client.storage and .install) and the Kotlin core's, so each reads the others' files:
///
///     state.json                    the one pointer (device id + state), replaced atomically
///     releases/<manifest id>/       an installed bundle, never modified once renamed into place
///         envelope                  the signed release envelope it was installed from
///         files/...                 the verified files of the archive
///     releases/.staging-<id>/       an install in progress (removed at startup)
///     downloads/<manifest id>.part  the archive being downloaded
///     reports/<report id>.json      installation reports waiting to be sent
///
/// Every durable write is: a temporary file, synced, renamed over the target, the
/// directory synced. Nothing is truncated in place.
public final class DeviceStorage {
    public static let state = "state.json"
    public static let releases = "releases"
    public static let downloads = "downloads"
    public static let reports = "reports"
    static let envelope = "envelope"
    static let files = "files"
    static let stagingPrefix = ".staging-"
    static let tmpSuffix = ".tmp"
    static let stateFormat: Int64 = 1
    static let maxStateBytes: Int64 = 4 * 1024 * 1024

    private let fs: FileSystem

    public init(_ fs: FileSystem) { self.fs = fs }

    public static func releaseDir(_ manifestId: String) -> String { "\(releases)/\(manifestId)" }

    public static func downloadPath(_ manifestId: String) -> String { "\(downloads)/\(manifestId).part" }

    /// Where the files of installed bundle `manifestId` are (the JS engine's bundle is below it).
    public func filesOf(_ manifestId: String) -> String { "\(Self.releaseDir(manifestId))/\(Self.files)" }

    private static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }

    /// Replace `path` with `data` durably.
    public func writeAtomic(_ path: String, _ data: [UInt8]) throws {
        let temporary = path + Self.tmpSuffix
        let file = try fs.create(temporary)
        defer { file.close() }
        try file.write(data)
        try file.sync()
        file.close()
        try fs.replace(temporary, path)
        try fs.syncDirectory(Self.parent(path))
    }

    /// Persist `stored` atomically, in the canonical JSON the Python agent writes.
    public func saveState(_ stored: StoredState) throws {
        let document = JSON.object([
            ("format", .integer(Self.stateFormat)), ("deviceId", .string(stored.deviceId)),
            ("state", StateCodec.encode(stored.state)),
        ])
        try writeAtomic(Self.state, StrictJSON.canonical(document))
    }

    /// Read `state.json`; nil if there is none. One that cannot be read (it is never written
    /// in place, so the storage itself was damaged) is moved aside to `state.json.corrupt`
    /// and the device starts over on its embedded bundle: an app that cannot read its
    /// update state must still start.
    public func loadState() throws -> StoredState? {
        guard let size = fs.size(Self.state) else { return nil }
        do {
            if size > Self.maxStateBytes {
                throw HotPatchError(.tooLarge, "state.json exceeds the limit of \(Self.maxStateBytes)")
            }
            let file = try fs.openRead(Self.state)
            defer { file.close() }
            let document = try StrictJSON.parse(try file.bytes(at: 0, Int(size)))
            guard case .object = document else { throw HotPatchError.schema("state.json is not an object", "") }
            guard case .integer(Self.stateFormat)? = document["format"] else {
                throw HotPatchError(.unsupportedFormat, "state.json has an unknown format")
            }
            guard case let .string(deviceId)? = document["deviceId"] else {
                throw HotPatchError.schema("state.json has no device id", "deviceId")
            }
            let stored = StoredState(deviceId: deviceId, state: try StateCodec.decode(document["state"] ?? .null))
            // A process killed before its directory sync leaves a state the next one sees but a power cut would undo.
            try? fs.syncDirectory("")
            return stored
        } catch is HotPatchError {
            try fs.replace(Self.state, "\(Self.state).corrupt")
            try fs.syncDirectory("")
            return nil
        }
    }

    /// Remove what a crash left behind; return what was removed. Idempotent. Only what
    /// `state` does not reference goes: temporary files, staging directories, release
    /// directories of no installed bundle (a crash after the rename, before the state was
    /// saved), and downloads other than the current offer's. A removal that fails is
    /// retried at the next start.
    @discardableResult
    public func recover(_ state: DeviceState) -> [String] {
        let keep = Set(state.installed().map(\.manifestId))
        let offer = state.offer?.bundle.manifestId
        var doomed: [(String, Bool)] = fs.list("").filter { $0.hasSuffix(Self.tmpSuffix) }.map { ($0, false) }
        doomed += fs.list(Self.releases).filter { !keep.contains($0) }.map { ("\(Self.releases)/\($0)", true) }
        doomed += fs.list(Self.downloads).filter { offer == nil || $0 != "\(offer!).part" }.map { ("\(Self.downloads)/\($0)", false) }
        doomed += fs.list(Self.reports).filter { $0.hasSuffix(Self.tmpSuffix) }.map { ("\(Self.reports)/\($0)", false) }
        var removed: [String] = []
        for (path, tree) in doomed {
            // Leftovers are never used, only wasted space: one that cannot go now goes next time.
            if (try? (tree ? fs.removeTree(path) : fs.remove(path))) != nil { removed.append(path) }
        }
        return removed
    }

    /// Install `release` from its archive `source` (the very bytes that were hashed, kept
    /// open since): every file is extracted into a staging directory, synced and read back
    /// against its signed hash; every directory is synced; only then is the staging
    /// directory renamed to `releases/<id>` and `releases` synced. The caller then saves
    /// the state that points at it; until then, `recover` treats it as an orphan. Throws the
    /// extractor's errors (the signed content is unusable), `LocalTamperingError`, or
    /// `StorageError`; the staging directory is removed on failure. `progress` gets
    /// (bytes written, bytes in all).
    @discardableResult
    public func install(
        _ release: VerifiedRelease, from source: ArchiveSource, progress: @escaping (Int64, Int64) -> Void = { _, _ in }
    ) throws -> String {
        let manifest = release.manifest
        var limits = ArchiveLimits()
        limits.maxFiles = Int(max(1, manifest.archive.fileCount))
        limits.maxTotalBytes = max(1, manifest.archive.uncompressedSize)
        return try stage(release, progress: progress) { sink in
            try Archives.extract(source, expected: manifest.files, sink: sink, limits: limits)
        }
    }

    /// Install `release` by applying `patch` to `base` (an installed bundle), staged exactly as
    /// `install` stages an archive: every produced file is capped at and checked against the
    /// signed manifest (`Patches.apply`), synced and read back. Throws the patch's errors
    /// (`PatchFormatError`, `WrongBaseError`, `TooLargeError`, `HashMismatchError`),
    /// `LocalTamperingError` or `StorageError`; nothing is left behind.
    @discardableResult
    public func install(
        _ release: VerifiedRelease, patch: [UInt8], base: PatchBase, codecs: PatchCodecs,
        progress: @escaping (Int64, Int64) -> Void = { _, _ in }
    ) throws -> String {
        try stage(release, progress: progress) { sink in
            try Patches.apply(patch, base: base, targetId: release.manifestId, targetFiles: release.manifest.files,
                              sink: sink, codecs: codecs)
        }
    }

    /// Installed bundle `manifestId` as a patch base: its signed file list (from its stored
    /// envelope) and its files.
    public func patchBase(_ manifestId: String) throws -> PatchBase {
        let stored = try fs.openRead("\(Self.releaseDir(manifestId))/\(Self.envelope)")
        let envelope = try { defer { stored.close() }; return try stored.readBytes(upTo: Int64(Releases.maxReleaseEnvelopeBytes) + 1) }()
        let files = try Manifests.decode(try Envelopes.decode(envelope, maxBytes: Releases.maxReleaseEnvelopeBytes).payload).files
        let root = filesOf(manifestId)
        return PatchBase(manifestId: manifestId, files: files) { [fs] entry in
            let file = try fs.openRead("\(root)/\(entry.path)")
            defer { file.close() }
            return try file.readBytes(upTo: entry.size + 1)
        }
    }

    /// Stage `release`'s files as `produce` writes them into the sink, then move the bundle into place.
    private func stage(
        _ release: VerifiedRelease, progress: @escaping (Int64, Int64) -> Void, produce: (ExtractSink) throws -> Void
    ) throws -> String {
        let manifest = release.manifest
        let staging = "\(Self.releases)/\(Self.stagingPrefix)\(release.manifestId)"
        let final = Self.releaseDir(release.manifestId)
        try fs.mkdir(Self.releases)
        try fs.removeTree(staging)
        try fs.mkdir(staging)
        do {
            try fs.mkdir("\(staging)/\(Self.files)")
            let sink = DirectorySink(fs, root: "\(staging)/\(Self.files)", total: manifest.archive.uncompressedSize,
                                     progress: progress)
            defer { sink.close() }
            progress(0, manifest.archive.uncompressedSize)
            try produce(sink)
            sink.close()
            let file = try fs.create("\(staging)/\(Self.envelope)")
            defer { file.close() }
            try file.write(release.envelope)
            try file.sync()
            file.close()
            let directories = (sink.directories + [staging]).sorted {
                $0.filter { $0 == "/" }.count > $1.filter { $0 == "/" }.count
            }
            for directory in directories { try fs.syncDirectory(directory) }
            try fs.removeTree(final) // an orphan of an earlier crash, never a referenced bundle
            try fs.replace(staging, final)
            try fs.syncDirectory(Self.releases)
        } catch {
            try? fs.removeTree(staging) // or startup recovery removes it
            throw error
        }
        return final
    }

    /// Check every file of installed bundle `manifestId` against its signed hash and size.
    public func verifyInstalled(_ manifestId: String, _ files: [FileEntry]) throws {
        let root = filesOf(manifestId)
        for entry in files {
            let path = "\(root)/\(entry.path)"
            if fs.size(path) != entry.size {
                throw HotPatchError(.localTampering, "\(entry.path): size differs from the signed manifest")
            }
            let file = try fs.openRead(path)
            defer { file.close() }
            if try file.sha256Hex() != entry.sha256 {
                throw HotPatchError(.localTampering, "\(entry.path): sha256 differs from the signed manifest")
            }
        }
    }
}

/// Writes verified files below `root`: each is synced, read back against its signed hash (A15), closed.
private final class DirectorySink: ExtractSink {
    private let fs: FileSystem
    private let root: String
    private let total: Int64
    private let progress: (Int64, Int64) -> Void
    private(set) var directories: [String]
    private var file: WritableFile?
    private var written: Int64 = 0

    init(_ fs: FileSystem, root: String, total: Int64, progress: @escaping (Int64, Int64) -> Void) {
        self.fs = fs
        self.root = root
        self.total = total
        self.progress = progress
        directories = [root]
    }

    func begin(_ entry: FileEntry) throws {
        let parts = entry.path.unicodeScalars.split(separator: "/", omittingEmptySubsequences: false).map {
            String(String.UnicodeScalarView($0))
        }
        for depth in stride(from: 1, to: parts.count, by: 1) {
            let directory = "\(root)/\(parts[0..<depth].joined(separator: "/"))"
            if !directories.contains(where: { sameScalars($0, directory) }) {
                try fs.mkdir(directory)
                directories.append(directory)
            }
        }
        file = try fs.create("\(root)/\(entry.path)")
    }

    func write(_ data: UnsafeRawBufferPointer) throws {
        guard let file else { throw StorageError("write before begin") }
        try file.write(data)
        written += Int64(data.count)
        progress(written, total)
    }

    func end(_ entry: FileEntry) throws {
        guard let current = file else { throw StorageError("end before begin") }
        file = nil
        defer { current.close() }
        try current.sync()
        current.close()
        let path = "\(root)/\(entry.path)"
        let reread = try fs.openRead(path)
        defer { reread.close() }
        let digest = try reread.sha256Hex()
        if fs.size(path) != entry.size || digest != entry.sha256 {
            throw HotPatchError(.localTampering, "\(entry.path): changed after it was written")
        }
    }

    func close() {
        file?.close()
        file = nil
    }
}

/// The durable queue of installation reports (hotpatch_client.reports): written before the
/// state moves, sent at least once. A report's id comes from (device, release, status,
/// phase), so the same outcome queued twice is one file, and one row on the server
/// (`POST /installations` is idempotent on the id).
public final class ReportQueue {
    public static let maxReasonCharacters = 500
    static let maxReportBytes: Int64 = 16 * 1024

    private let fs: FileSystem
    private let appId: String
    private let deviceId: String
    private let storage: DeviceStorage

    public init(_ fs: FileSystem, appId: String, deviceId: String) {
        self.fs = fs
        self.appId = appId
        self.deviceId = deviceId
        storage = DeviceStorage(fs)
    }

    /// The stable id of `report` from `deviceId`: 32 hex digits of a sha256.
    public static func reportId(_ deviceId: String, _ report: Report) -> String {
        let text = "\(deviceId)\n\(report.manifestId)\n\(report.status.rawValue)\n\(report.phase?.rawValue ?? "")"
        return String(Hex.encode(CryptoBackends.system.sha256(Array(text.utf8))).prefix(32))
    }

    /// Write `report` durably as the JSON body `POST /installations` takes; return its id.
    @discardableResult
    public func put(_ report: Report) throws -> String {
        let id = Self.reportId(deviceId, report)
        var members: [(key: String, value: JSON)] = [
            ("id", .string(id)), ("appId", .string(appId)), ("deviceId", .string(deviceId)),
            ("manifestId", .string(report.manifestId)), ("status", .string(report.status.rawValue)),
        ]
        if let phase = report.phase { members.append(("phase", .string(phase.rawValue))) }
        // The first 500 code points, as the reference truncates.
        members.append(("reason", .string(String(String.UnicodeScalarView(report.reason.unicodeScalars.prefix(Self.maxReasonCharacters))))))
        if let base = report.patchedFrom { members.append(("patchedFrom", .string(base))) }
        try fs.mkdir(DeviceStorage.reports)
        try storage.writeAtomic("\(DeviceStorage.reports)/\(id).json", StrictJSON.canonical(.object(members)))
        return id
    }

    /// The queued reports (path and body), by name; an unreadable one is dropped.
    public func pending() -> [(path: String, body: [UInt8])] {
        fs.list(DeviceStorage.reports).filter { $0.hasSuffix(".json") }.compactMap { name in
            let path = "\(DeviceStorage.reports)/\(name)"
            do {
                let size = fs.size(path) ?? 0
                if size > Self.maxReportBytes { throw HotPatchError(.tooLarge, "report exceeds the limit of \(Self.maxReportBytes)") }
                let file = try fs.openRead(path)
                defer { file.close() }
                let body = try file.bytes(at: 0, Int(size))
                guard case .object = try StrictJSON.parse(body) else { throw HotPatchError.schema("a report is a JSON object", "") }
                return (path, body)
            } catch is HotPatchError {
                try? fs.remove(path)
                return nil
            } catch {
                return nil // the storage failed: try again next time
            }
        }
    }

    /// Remove a report the server answered (taken, or refused for good).
    public func remove(_ path: String) {
        try? fs.remove(path) // sent again next time otherwise: the server keeps one row per id
    }
}
