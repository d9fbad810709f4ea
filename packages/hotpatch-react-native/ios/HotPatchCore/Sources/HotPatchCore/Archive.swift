import CZlib
import Foundation

/// Bytes the extractor reads at chosen offsets: a downloaded file, or memory in tests.
public protocol ArchiveSource: AnyObject {
    var size: Int64 { get }
    /// Read up to `count` bytes at `position` into `into`; the count read, 0 at the end.
    func read(at position: Int64, into: UnsafeMutableRawBufferPointer) throws -> Int
}

extension ArchiveSource {
    /// Up to `length` bytes at `position` (fewer at the end of the source).
    func bytes(at position: Int64, _ length: Int) throws -> [UInt8] {
        guard position >= 0, length > 0 else { return [] }
        let count = Int(min(Int64(length), max(size - position, 0)))
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        try buffer.withUnsafeMutableBytes { raw in
            while done < count {
                let got = try read(at: position + Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: raw[done...]))
                if got <= 0 { break }
                done += got
            }
        }
        return done == count ? buffer : Array(buffer[0..<done])
    }

    /// Give `use` the first `length` bytes (all of them by default), a chunk at a time;
    /// return how many there were (fewer than `length` where the source ends first).
    @discardableResult
    public func forEachChunk(upTo length: Int64? = nil, _ use: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        let end = length ?? size
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
        defer { buffer.deallocate() }
        var position: Int64 = 0
        while position < end {
            let want = Int(min(Int64(buffer.count), end - position))
            let got = try read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            if got <= 0 { break }
            try use(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            position += Int64(got)
        }
        return position
    }

    /// The first `length` bytes (all of them by default), fewer where the source ends first.
    public func readBytes(upTo length: Int64? = nil) throws -> [UInt8] {
        var out = [UInt8]()
        try forEachChunk(upTo: min(length ?? size, size)) { out.append(contentsOf: $0) }
        return out
    }

    /// The sha256 (hex) of everything in the source.
    public func sha256Hex(crypto: CryptoBackend = CryptoBackends.system) throws -> String {
        let hasher = crypto.sha256Stream()
        try forEachChunk { hasher.update($0) }
        return Hex.encode(hasher.finish())
    }
}

/// An archive held in memory.
public final class BytesSource: ArchiveSource {
    private let data: [UInt8]

    public init(_ data: [UInt8]) { self.data = data }

    public var size: Int64 { Int64(data.count) }

    public func read(at position: Int64, into: UnsafeMutableRawBufferPointer) -> Int {
        guard position >= 0, position < Int64(data.count) else { return 0 }
        let count = min(into.count, data.count - Int(position))
        data.withUnsafeBytes { raw in
            into.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[Int(position)..<Int(position) + count]))
        }
        return count
    }
}

/// The file as it is on disk: the caller keeps it open from hashing to extraction (A15).
public final class FileSource: ReadableFile {
    private let handle: FileHandle
    public let size: Int64

    public init(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw HotPatchError(.archive, "cannot open \(path)")
        }
        self.handle = handle
        size = Int64(try handle.seekToEnd())
    }

    deinit { try? handle.close() }

    public func close() { try? handle.close() }

    public func read(at position: Int64, into: UnsafeMutableRawBufferPointer) throws -> Int {
        try handle.seek(toOffset: UInt64(position))
        guard let data = try handle.read(upToCount: into.count), !data.isEmpty else { return 0 }
        data.copyBytes(to: into)
        return data.count
    }
}

/// Where the extractor sends each file's bytes as it verifies them.
public protocol ExtractSink: AnyObject {
    func begin(_ entry: FileEntry) throws
    func write(_ data: UnsafeRawBufferPointer) throws
    /// The current entry is complete: its size and sha256 matched the signed ones.
    func end(_ entry: FileEntry) throws
}

/// Validates only (the bytes go nowhere).
public final class NullSink: ExtractSink {
    public init() {}
    public func begin(_ entry: FileEntry) {}
    public func write(_ data: UnsafeRawBufferPointer) {}
    public func end(_ entry: FileEntry) {}
}

/// The one strict extractor (hotpatch_core.archive.extract_archive): the whole central
/// directory is checked before a byte is emitted, then each file is streamed to the sink
/// while its size, CRC-32 and sha256 are checked. It refuses, never repairs: unsafe or
/// colliding names, links, devices, directories, encryption, codecs other than stored and
/// deflate, overlapping entries, and any difference from the signed file list.
/// `docs/spec/vectors/archives.json` pins the verdict on hostile archives.
public enum Archives {
    private static let eocdSize = 22
    private static let zip64LocatorSize = 20
    private static let zip64EocdSize = 56
    private static let centralSize = 46
    private static let localSize = 30
    private static let maxExtractVersion = 63
    private static let utf8Flag = 0x800
    private static let encryptedFlag = 0x1
    private static let patchedFlag = 0x20
    private static let strongEncryptionFlag = 0x40
    private static let stored = 0
    private static let deflated = 8
    private static let unix = 3
    private static let chunk = 64 * 1024
    private static let u32Max: Int64 = 0xFFFF_FFFF

    private static let eocdMagic: [UInt8] = [0x50, 0x4B, 0x05, 0x06]
    private static let zip64LocatorMagic: [UInt8] = [0x50, 0x4B, 0x06, 0x07]
    private static let zip64EocdMagic: [UInt8] = [0x50, 0x4B, 0x06, 0x06]
    private static let centralMagic: [UInt8] = [0x50, 0x4B, 0x01, 0x02]
    private static let localMagic: [UInt8] = [0x50, 0x4B, 0x03, 0x04]

    private struct Entry {
        let name: String
        let ascii: Bool
        let flags: Int
        let method: Int
        let createSystem: Int
        let crc: UInt32
        var compressSize: Int64
        var fileSize: Int64
        let externalAttr: Int64
        var headerOffset: Int64
    }

    private static func broken(_ why: String) -> HotPatchError { HotPatchError(.archive, "not a valid zip archive: \(why)") }

    /// Check the archive in `source` against `expected` and stream its files to `sink`;
    /// return the bytes written. Throws `ArchiveError` and its kinds, `TooLargeError` or
    /// `HashMismatchError`; the sink may then hold partial output, which the caller discards.
    @discardableResult
    public static func extract(
        _ source: ArchiveSource, expected: [FileEntry], sink: ExtractSink, limits: ArchiveLimits = .default,
        crypto: CryptoBackend = CryptoBackends.system
    ) throws -> Int64 {
        if expected.count > limits.maxFiles { throw HotPatchError.tooLarge("number of files", limit: limits.maxFiles) }
        let declaredTotal = expected.reduce(Int64(0)) { $0 + $1.size }
        if declaredTotal > limits.maxTotalBytes {
            throw HotPatchError(.tooLarge, "total uncompressed size exceeds the limit of \(limits.maxTotalBytes)")
        }
        if let declared = try declaredEntries(source), declared > Int64(limits.maxFiles) {
            throw HotPatchError.tooLarge("number of archive entries (declared)", limit: limits.maxFiles)
        }
        let (entries, start) = try readDirectory(source)
        if entries.count > limits.maxFiles { throw HotPatchError.tooLarge("number of archive entries", limit: limits.maxFiles) }
        for entry in entries { try checkEntry(entry, limits) }
        try ArchivePaths.checkCollisions(entries.map(\.name))
        func key(_ text: String) -> [UInt32] { text.unicodeScalars.map(\.value) }
        var byPath: [[UInt32]: FileEntry] = [:]
        for file in expected { byPath[key(file.path)] = file }
        if let stray = entries.first(where: { byPath[key($0.name)] == nil }) {
            throw HotPatchError(.archiveMismatch, "entry \(quote(stray.name)) is not in the manifest")
        }
        let names = Set(entries.map { key($0.name) })
        if let absent = expected.map(\.path).filter({ !names.contains(key($0)) }).min(by: scalarOrder) {
            throw HotPatchError(.archiveMismatch, "manifest file \(quote(absent)) is not in the archive")
        }
        for entry in entries where entry.fileSize != byPath[key(entry.name)]!.size {
            throw HotPatchError(.archiveMismatch,
                "entry \(quote(entry.name)) declares \(entry.fileSize) bytes, manifest says \(byPath[key(entry.name)]!.size)")
        }
        try checkLayout(source, entries, start)
        var total: Int64 = 0
        for entry in entries {
            total += try stream(source, entry, byPath[key(entry.name)]!, sink, crypto)
            if total > declaredTotal {
                throw HotPatchError(.tooLarge, "total bytes written exceeds the limit of \(declaredTotal)")
            }
        }
        return total
    }

    private static func u16(_ data: [UInt8], _ at: Int) -> Int { Int(data[at]) | Int(data[at + 1]) << 8 }

    private static func u32(_ data: [UInt8], _ at: Int) -> Int64 { Int64(u16(data, at)) | Int64(u16(data, at + 2)) << 16 }

    /// A little-endian 64-bit field as Java's signed long: the top bit set reads negative.
    private static func s64(_ data: [UInt8], _ at: Int) -> Int64 {
        Int64(bitPattern: UInt64(u32(data, at)) | UInt64(u32(data, at + 4)) << 32)
    }

    private static func starts(_ data: [UInt8], _ at: Int, _ magic: [UInt8]) -> Bool {
        at >= 0 && at + magic.count <= data.count && data[at..<at + magic.count].elementsEqual(magic)
    }

    private static func lastIndex(_ data: [UInt8], _ magic: [UInt8], before: Int) -> Int {
        var at = min(before, data.count) - 1
        while at >= 0 {
            if starts(data, at, magic) { return at }
            at -= 1
        }
        return -1
    }

    /// The entry count the end record declares (zip64 included), read from the archive's tail only; nil if none.
    public static func declaredEntries(_ source: ArchiveSource) throws -> Int64? {
        let end = source.size
        let tailStart = max(0, end - Int64(eocdSize) - 0xFFFF)
        let tail = try source.bytes(at: tailStart, Int(end - tailStart))
        func commentLength(_ at: Int) -> Int { at + eocdSize <= tail.count ? u16(tail, at + 20) : -1 }
        var at = lastIndex(tail, eocdMagic, before: tail.count)
        while at >= 0 && at + eocdSize + commentLength(at) != tail.count { at = lastIndex(tail, eocdMagic, before: at) }
        if at < 0 { return nil }
        let count = Int64(max(u16(tail, at + 8), u16(tail, at + 10)))
        if count != 0xFFFF || at < zip64LocatorSize { return count }
        let locator = at - zip64LocatorSize
        let offset = s64(tail, locator + 8)
        if !starts(tail, locator, zip64LocatorMagic) || offset < 0 || offset > end - Int64(zip64EocdSize) { return nil }
        let zip64 = try source.bytes(at: offset, zip64EocdSize)
        if zip64.count < zip64EocdSize || !starts(zip64, 0, zip64EocdMagic) { return nil }
        let onDisk = s64(zip64, 24)
        let all = s64(zip64, 32)
        // Unsigned 64-bit counts: one above Int64.max is certainly over any cap.
        if onDisk < 0 || all < 0 { return Int64.max }
        return max(onDisk, all)
    }

    /// The end record as a lenient zip reader finds it (the reference's zipfile), zip64 included:
    /// the central directory's size and offset, and the bytes prepended to the archive.
    private static func endRecord(_ source: ArchiveSource) throws -> (size: Int64, offset: Int64, concat: Int64)? {
        let size = source.size
        if size < Int64(eocdSize) { return nil }
        let last = try source.bytes(at: size - Int64(eocdSize), eocdSize)
        let location: Int64
        let record: [UInt8]
        if starts(last, 0, eocdMagic) && last[20] == 0 && last[21] == 0 {
            location = size - Int64(eocdSize)
            record = last
        } else {
            let searchStart = max(size - (1 << 16) - Int64(eocdSize), 0)
            let data = try source.bytes(at: searchStart, Int(size - searchStart))
            let start = lastIndex(data, eocdMagic, before: data.count)
            if start < 0 || start + eocdSize > data.count { return nil }
            location = searchStart + Int64(start)
            record = Array(data[start..<start + eocdSize])
        }
        var centralSize = u32(record, 12)
        var centralOffset = u32(record, 16)
        var zip64 = false
        if location >= Int64(zip64LocatorSize) {
            let locator = try source.bytes(at: location - Int64(zip64LocatorSize), zip64LocatorSize)
            if locator.count == zip64LocatorSize && starts(locator, 0, zip64LocatorMagic) {
                if u32(locator, 4) != 0 || u32(locator, 16) > 1 {
                    throw broken("zipfiles that span multiple disks are not supported")
                }
                let at = location - Int64(zip64LocatorSize) - Int64(zip64EocdSize)
                if at < 0 { throw broken("File is not a zip file") }
                let record64 = try source.bytes(at: at, zip64EocdSize)
                if record64.count == zip64EocdSize && starts(record64, 0, zip64EocdMagic) {
                    centralSize = s64(record64, 40)
                    centralOffset = s64(record64, 48)
                    zip64 = true
                }
            }
        }
        var concat = location - centralSize - centralOffset
        if zip64 { concat -= Int64(zip64EocdSize + zip64LocatorSize) }
        return (centralSize, centralOffset, concat)
    }

    private static func readDirectory(_ source: ArchiveSource) throws -> ([Entry], Int64) {
        guard let (centralSize, centralOffset, concat) = try endRecord(source) else { throw broken("File is not a zip file") }
        let start = centralOffset &+ concat
        if start < 0 || centralSize < 0 { throw broken("Bad offset for central directory") }
        let data = try source.bytes(at: start, Int(min(centralSize, Int64(Int32.max))))
        var entries: [Entry] = []
        var at = 0
        var total: Int64 = 0
        while total < centralSize {
            if at + Self.centralSize > data.count { throw broken("Truncated central directory") }
            if !starts(data, at, centralMagic) { throw broken("Bad magic number for central directory") }
            let nameLength = u16(data, at + 28)
            let extraLength = u16(data, at + 30)
            let commentLength = u16(data, at + 32)
            let flags = u16(data, at + 8)
            let nameStart = at + Self.centralSize
            let rawName = Array(data[min(nameStart, data.count)..<min(nameStart + nameLength, data.count)])
            let extraStart = min(nameStart + nameLength, data.count)
            let extra = Array(data[extraStart..<min(extraStart + extraLength, data.count)])
            let name = try decodeName(rawName, flags)
            let version = Int(data[at + 6])
            if version > maxExtractVersion {
                throw HotPatchError(.unsupportedEntry, "unsupported zip feature: zip file version \(Double(version) / 10)")
            }
            var entry = Entry(
                name: name, ascii: rawName.allSatisfy { $0 < 0x80 }, flags: flags, method: u16(data, at + 10),
                createSystem: Int(data[at + 5]), crc: UInt32(u32(data, at + 16)), compressSize: u32(data, at + 20),
                fileSize: u32(data, at + 24), externalAttr: u32(data, at + 38), headerOffset: u32(data, at + 42)
            )
            try decodeExtra(&entry, extra)
            entry.headerOffset = entry.headerOffset &+ concat
            entries.append(entry)
            let length = Self.centralSize + nameLength + extraLength + commentLength
            at += length
            total += Int64(length)
        }
        return (entries, start)
    }

    /// Zip64 sizes and offset from the extra field, as the reference reads them; a malformed block is refused.
    private static func decodeExtra(_ entry: inout Entry, _ extra: [UInt8]) throws {
        var at = 0
        while extra.count - at >= 4 {
            let kind = u16(extra, at)
            let length = u16(extra, at + 2)
            if length + 4 > extra.count - at {
                throw broken("Corrupt extra field \(String(format: "%04x", kind)) (size=\(length))")
            }
            if kind == 0x0001 {
                var field = at + 4
                let end = at + 4 + length
                func next(_ what: String) throws -> Int64 {
                    if field + 8 > end { throw broken("Corrupt zip64 extra field. \(what) not found.") }
                    defer { field += 8 }
                    return s64(extra, field)
                }
                if entry.fileSize == u32Max { entry.fileSize = try next("File size") }
                if entry.compressSize == u32Max { entry.compressSize = try next("Compress size") }
                if entry.headerOffset == u32Max { entry.headerOffset = try next("Header offset") }
            }
            at += length + 4
        }
    }

    private static func decodeName(_ raw: [UInt8], _ flags: Int) throws -> String {
        if flags & utf8Flag == 0 {
            // Code page 437: ASCII below 0x80. A name with other bytes is refused once checked,
            // so their exact characters never matter; ISO-8859-1 keeps them non-ASCII.
            return String(String.UnicodeScalarView(raw.map { Unicode.Scalar($0) }))
        }
        guard let name = UTF8Strict.decode(raw) else { throw broken("an entry name is not valid UTF-8") }
        return name
    }

    private static func checkEntry(_ entry: Entry, _ limits: ArchiveLimits) throws {
        let name = entry.name
        if name.unicodeScalars.last == "/" || entry.externalAttr & 0x10 != 0 {
            throw HotPatchError(.unsupportedEntry, "directory entry \(quote(name)): archives hold files only")
        }
        try ArchivePaths.check(name, limits: limits)
        if !entry.ascii && entry.flags & utf8Flag == 0 {
            throw HotPatchError(.unsafePath, "non-ASCII entry name \(quote(name)) without the UTF-8 flag")
        }
        if entry.flags & encryptedFlag != 0 { throw HotPatchError(.unsupportedEntry, "encrypted entry \(quote(name))") }
        if entry.method != stored && entry.method != deflated {
            throw HotPatchError(.unsupportedEntry, "entry \(quote(name)) uses compression method \(entry.method)")
        }
        if entry.createSystem == unix {
            let type = (entry.externalAttr >> 16) & 0xF000
            if type != 0 && type != 0x8000 {
                throw HotPatchError(.unsupportedEntry, "entry \(quote(name)) is a \(type == 0xA000 ? "symlink" : "special file")")
            }
        }
    }

    /// Refuse entries whose bytes overlap each other or the central directory.
    private static func checkLayout(_ source: ArchiveSource, _ entries: [Entry], _ start: Int64) throws {
        var spans: [(start: Int64, end: Int64, name: String)] = []
        for entry in entries {
            if entry.headerOffset < 0 || entry.headerOffset >= start {
                throw HotPatchError(.archive, "entry \(quote(entry.name)) points outside the archive")
            }
            let header = try source.bytes(at: entry.headerOffset, localSize)
            if header.count != localSize || !starts(header, 0, localMagic) {
                throw HotPatchError(.archive, "entry \(quote(entry.name)) has no local header")
            }
            let end = entry.headerOffset + Int64(localSize + u16(header, 26) + u16(header, 28)) &+ entry.compressSize
            spans.append((entry.headerOffset, end, entry.name))
        }
        spans.sort { a, b in
            if a.start != b.start { return a.start < b.start }
            if a.end != b.end { return a.end < b.end }
            return scalarOrder(a.name, b.name)
        }
        for (earlier, later) in zip(spans, spans.dropFirst()) where earlier.end > later.start {
            throw HotPatchError(.overlappingEntries, "entries \(quote(earlier.name)) and \(quote(later.name)) overlap")
        }
        if let last = spans.last, last.end > start {
            throw HotPatchError(.overlappingEntries, "an entry overlaps the central directory")
        }
    }

    /// Stream one entry: at most its signed size, then its CRC-32, size and sha256 are checked.
    private static func stream(
        _ source: ArchiveSource, _ entry: Entry, _ signed: FileEntry, _ sink: ExtractSink, _ crypto: CryptoBackend
    ) throws -> Int64 {
        let header = try source.bytes(at: entry.headerOffset, localSize)
        if header.count != localSize { throw broken("Truncated file header") }
        if !starts(header, 0, localMagic) { throw broken("Bad magic number for file header") }
        let nameLength = u16(header, 26)
        let extraLength = u16(header, 28)
        let localName = try source.bytes(at: entry.headerOffset + Int64(localSize), nameLength)
        if entry.flags & patchedFlag != 0 {
            throw HotPatchError(.unsupportedEntry, "unsupported zip feature: compressed patched data (flag bit 5)")
        }
        if entry.flags & strongEncryptionFlag != 0 {
            throw HotPatchError(.unsupportedEntry, "unsupported zip feature: strong encryption (flag bit 6)")
        }
        if !sameScalars(try decodeName(localName, u16(header, 6)), entry.name) {
            throw broken("File name in directory and header differ")
        }
        var position = entry.headerOffset + Int64(localSize + localName.count + extraLength)
        var compressLeft = entry.compressSize
        var left = entry.fileSize
        var crc: uLong = crc32(0, nil, 0)
        let digest = crypto.sha256Stream()
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 1)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 1)
        defer {
            input.deallocate()
            output.deallocate()
        }
        var inflater: Inflater?
        if entry.method == deflated { inflater = try Inflater() }
        defer { inflater?.end() }
        var written: Int64 = 0
        try sink.begin(signed)
        var eof = left <= 0 && compressLeft <= 0
        while !eof {
            let produced: Int
            if let inflater {
                if inflater.needsInput && compressLeft > 0 {
                    let want = Int(min(compressLeft, Int64(chunk)))
                    let got = try source.read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: input[0..<want]))
                    if got == 0 { throw broken("the entry's data ends early") }
                    position += Int64(got)
                    compressLeft -= Int64(got)
                    inflater.setInput(UnsafeMutableRawBufferPointer(rebasing: input[0..<got]))
                }
                let room = max(Int(min(left, Int64(chunk))), 1)
                produced = try inflater.inflate(into: UnsafeMutableRawBufferPointer(rebasing: output[0..<room]))
                // All input read and nothing more comes out: what zlib held back is flushed (it was).
                eof = inflater.finished || (compressLeft <= 0 && inflater.needsInput && produced == 0)
            } else {
                let want = Int(min(left, compressLeft, Int64(chunk)))
                let got = want > 0 ? try source.read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: output[0..<want])) : 0
                if want > 0 && got == 0 { throw broken("the entry's data ends early") }
                position += Int64(got)
                compressLeft -= Int64(got)
                produced = got
                eof = compressLeft <= 0
            }
            let kept = Int(min(Int64(produced), left))
            left -= Int64(kept)
            if left <= 0 { eof = true }
            let part = UnsafeRawBufferPointer(rebasing: output[0..<kept])
            crc = crc32(crc, part.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(kept))
            digest.update(part)
            written += Int64(kept)
            if written > signed.size {
                throw HotPatchError(.tooLarge, "bytes written for \(signed.path) exceeds the limit of \(signed.size)")
            }
            try sink.write(part)
        }
        if UInt32(truncatingIfNeeded: crc) != entry.crc { throw broken("Bad CRC-32 for file \(quote(entry.name))") }
        if written != signed.size {
            throw HotPatchError(.hashMismatch, "\(signed.path): \(written) bytes, manifest says \(signed.size)")
        }
        if Hex.encode(digest.finish()) != signed.sha256 {
            throw HotPatchError(.hashMismatch, "\(signed.path): sha256 differs from the signed manifest")
        }
        try sink.end(signed)
        return written
    }

    private static func quote(_ name: String) -> String {
        "'\(String(String.UnicodeScalarView(name.unicodeScalars.prefix(80))))'"
    }
}

/// Raw deflate (no zlib header) with zlib, as `java.util.zip.Inflater(nowrap = true)` reads it.
private final class Inflater {
    private var stream = z_stream()
    private(set) var finished = false

    init() throws {
        let status = inflateInit2_(&stream, -MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        if status != Z_OK { throw HotPatchError(.archive, "zlib could not start (\(status))") }
    }

    /// Whether every byte given so far was consumed.
    var needsInput: Bool { stream.avail_in == 0 }

    /// Give the next compressed bytes; they must stay valid until consumed.
    func setInput(_ data: UnsafeMutableRawBufferPointer) {
        stream.next_in = data.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_in = uInt(data.count)
    }

    /// Inflate into `into`; the count produced (0 when zlib needs more input).
    func inflate(into: UnsafeMutableRawBufferPointer) throws -> Int {
        if finished { return 0 }
        stream.next_out = into.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(into.count)
        let status = CZlib.inflate(&stream, Z_NO_FLUSH)
        let produced = into.count - Int(stream.avail_out)
        switch status {
        case Z_OK, Z_BUF_ERROR: return produced
        case Z_STREAM_END:
            finished = true
            return produced
        case Z_NEED_DICT: throw HotPatchError(.archive, "not a valid zip archive: a preset dictionary")
        default:
            let message = stream.msg.map { String(cString: $0) } ?? "error \(status)"
            throw HotPatchError(.archive, "not a valid zip archive: \(message)")
        }
    }

    func end() { inflateEnd(&stream) }
}
