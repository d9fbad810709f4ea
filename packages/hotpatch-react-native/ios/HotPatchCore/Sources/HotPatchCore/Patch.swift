import Foundation

/// The decompressors a patch needs (the encodings of hotpatch_diff.patch).
/// Each returns at most `limit` bytes of the stream's output (the caller asks
/// for one byte more than it accepts, to see a stream that runs long), and
/// throws a `PatchFormatError` for bytes that do not decode.
public protocol PatchCodecs {
    /// One zstd frame; `dictionary` is a raw-content dictionary (the old file, as `--patch-from`).
    func zstd(_ data: ArraySlice<UInt8>, dictionary: [UInt8]?, limit: Int) throws -> [UInt8]
    /// One bzip2 stream.
    func bzip2(_ data: ArraySlice<UInt8>, limit: Int) throws -> [UInt8]
    /// One raw LZMA2 stream (no container) decoded with a dictionary of `dictionarySize` bytes.
    func lzma2(_ data: ArraySlice<UInt8>, dictionarySize: Int, limit: Int) throws -> [UInt8]
}

/// A release seen by the patcher: its manifest id, its signed file list, and a way to read a file
/// (at most its size + 1 bytes).
public struct PatchBase {
    public let manifestId: String
    public let files: [FileEntry]
    public let read: (FileEntry) throws -> [UInt8]

    public init(manifestId: String, files: [FileEntry], read: @escaping (FileEntry) throws -> [UInt8]) {
        self.manifestId = manifestId
        self.files = files
        self.read = read
    }
}

/// Applies the patch container of hotpatch_diff.patch (format 1), as the
/// reference does: `HPD`, the format byte, the first 4 bytes of the base and
/// target manifest ids, then one operation per target file (KEEP, ADD,
/// BSDIFF, ZSTD, HDIFF) and DELETE for base files the target drops, integers
/// as unsigned LEB128. Every output is capped at the size the signed target
/// manifest declares and checked against its signed SHA-256: a patch needs no
/// signature, and anything wrong fails here (the caller then fetches the
/// archive). The decoders come from `PatchCodecs`; bsdiff's and HDiffPatch's
/// own patch steps are loops over their blocks, written here.
public enum Patches {
    public static let format: UInt8 = 1
    private static let magic = Array("HPD".utf8)
    private static let idBytes = 4
    private static let lzmaDictionaryMax = 64 << 20 // preset 9: the encoder's dictionary

    enum Op: UInt8 { case keep = 0, add, bsdiff, zstd, delete, hdiff }

    struct Produce {
        let op: Op
        let base: Int?
        let payload: ArraySlice<UInt8>
    }

    static func formatError(_ message: String) -> HotPatchError { HotPatchError(.patchFormat, message) }

    /// The (base, target) manifest id prefixes `patch` names.
    public static func readHeader(_ patch: [UInt8]) throws -> ([UInt8], [UInt8]) {
        guard patch.count >= magic.count + 1 + 2 * idBytes, Array(patch[0..<magic.count]) == magic else {
            throw formatError("not a HotPatch patch")
        }
        guard patch[magic.count] == format else { throw formatError("patch format \(patch[magic.count]) is not supported") }
        let start = magic.count + 1
        return (Array(patch[start..<start + idBytes]), Array(patch[start + idBytes..<start + 2 * idBytes]))
    }

    /// Produce every file of `targetFiles` (the signed target manifest's) from `base` and `patch`
    /// into `sink`; return the bytes written. Throws `PatchFormatError`, `WrongBaseError`,
    /// `TooLargeError` or `HashMismatchError`; the sink may then hold partial output.
    @discardableResult
    public static func apply(
        _ patch: [UInt8], base: PatchBase, targetId: String, targetFiles: [FileEntry], sink: ExtractSink,
        codecs: PatchCodecs, crypto: CryptoBackend = CryptoBackends.system
    ) throws -> Int64 {
        let (basePrefix, targetPrefix) = try readHeader(patch)
        guard basePrefix == prefix(base.manifestId) else {
            throw HotPatchError(.wrongBase, "the patch was made from another release than the installed one")
        }
        guard targetPrefix == prefix(targetId) else {
            throw HotPatchError(.wrongBase, "the patch produces another release than the one offered")
        }
        var reader = PatchReader(patch, at: magic.count + 1 + 2 * idBytes)
        let produced = try readOps(&reader, baseCount: base.files.count, targetCount: targetFiles.count)
        guard reader.position == patch.count else { throw formatError("bytes follow the last operation") }
        guard produced.count == targetFiles.count else {
            throw formatError("the patch does not produce every file of the release")
        }
        var cache = [Int: [UInt8]]()
        func source(_ index: Int) throws -> [UInt8] {
            if let data = cache[index] { return data }
            let entry = base.files[index]
            let data = try base.read(entry)
            guard Int64(data.count) == entry.size, Hex.encode(crypto.sha256(data)) == entry.sha256 else {
                throw HotPatchError(.wrongBase, "installed \(entry.path) differs from its signed hash")
            }
            cache[index] = data
            return data
        }
        var total: Int64 = 0
        for (index, entry) in targetFiles.enumerated() {
            let step = produced[index]!
            let data: [UInt8]
            if step.op == .keep {
                data = try source(step.base!)
            } else {
                data = try decode(step, source: try step.base.map(source), limit: entry.size, codecs: codecs)
            }
            if Int64(data.count) > entry.size { throw HotPatchError(.tooLarge, "bytes produced for \(entry.path) exceed \(entry.size)") }
            guard Int64(data.count) == entry.size, Hex.encode(crypto.sha256(data)) == entry.sha256 else {
                throw HotPatchError(.hashMismatch, "\(entry.path): the patched file differs from the signed hash")
            }
            try sink.begin(entry)
            try data.withUnsafeBytes { try sink.write($0) }
            try sink.end(entry)
            total += Int64(data.count)
        }
        return total
    }

    /// The first bytes of a manifest id (64 hex digits), as the header carries them.
    private static func prefix(_ id: String) -> [UInt8] {
        let digits = Array(id.utf8.prefix(2 * idBytes))
        return stride(from: 0, to: digits.count - 1, by: 2).map {
            UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16) ?? 0
        }
    }

    private static func readOps(_ reader: inout PatchReader, baseCount: Int, targetCount: Int) throws -> [Int: Produce] {
        let count = try reader.varint()
        guard count <= UInt64(baseCount + targetCount) else { throw formatError("the patch has more operations than files") }
        var produced = [Int: Produce]()
        for _ in 0..<count {
            guard let op = Op(rawValue: try reader.byte()) else { throw formatError("unknown operation in the patch") }
            if op == .delete {
                guard try reader.varint() < UInt64(baseCount) else { throw formatError("a DELETE names no base file") }
                continue
            }
            let target = try reader.varint()
            guard target < UInt64(targetCount) else { throw formatError("an operation names no target file") }
            var baseIndex: Int?
            if op != .add {
                let index = try reader.varint()
                guard index < UInt64(baseCount) else { throw formatError("an operation names no base file") }
                baseIndex = Int(index)
            }
            let payload = op == .keep ? [] : try reader.take(try reader.varint())
            guard produced.updateValue(Produce(op: op, base: baseIndex, payload: payload), forKey: Int(target)) == nil else {
                throw formatError("two operations produce the same file")
            }
        }
        return produced
    }

    /// Decode one payload, never producing more than `limit` + 1 bytes.
    private static func decode(_ step: Produce, source: [UInt8]?, limit: Int64, codecs: PatchCodecs) throws -> [UInt8] {
        guard limit < Int64(Int32.max) else { throw HotPatchError(.tooLarge, "a patched file exceeds \(Int32.max) bytes") }
        let size = Int(limit)
        switch step.op {
        case .hdiff: return try HDiff.apply(step.payload, old: source!, size: size, codecs: codecs)
        case .bsdiff: return try bsdiff(step.payload, source: source!, size: size, codecs: codecs)
        case .zstd: return try codecs.zstd(step.payload, dictionary: source!, limit: size + 1)
        default: return try codecs.zstd(step.payload, dictionary: nil, limit: size + 1)
        }
    }

    // MARK: bsdiff

    private static func inflated(_ data: [UInt8], cap: Int) throws -> [UInt8] {
        guard data.count <= cap else { throw HotPatchError(.tooLarge, "a bsdiff block exceeds \(cap) bytes") }
        return data
    }

    /// Rebuild a file of exactly `size` bytes; every block is capped before it is inflated.
    private static func bsdiff(_ payload: ArraySlice<UInt8>, source: [UInt8], size: Int, codecs: PatchCodecs) throws -> [UInt8] {
        var reader = PatchReader(payload, at: payload.startIndex)
        let codec = try reader.byte()
        let first = try reader.varint()
        let second = try reader.varint()
        let cap = size + 24 // the control block: no larger than the file plus one triple
        let control: [UInt8], diff: [UInt8], extra: [UInt8]
        switch codec {
        case 0: // three bzip2 streams: control, diff, extra
            control = try inflated(codecs.bzip2(try reader.take(first), limit: cap + 1), cap: cap)
            diff = try inflated(codecs.bzip2(try reader.take(second), limit: size + 1), cap: size)
            extra = try inflated(codecs.bzip2(payload[reader.position...], limit: size + 1), cap: size)
        case 1: // one raw LZMA2 stream of control + diff + extra
            guard first <= UInt64(cap), second <= UInt64(size) else {
                throw HotPatchError(.tooLarge, "a bsdiff block exceeds \(size) bytes")
            }
            let whole = Int(first) + Int(second) + size
            // No match reaches further back than the bytes already produced.
            let dictionary = min(max(whole, 4096), lzmaDictionaryMax)
            let raw = try inflated(codecs.lzma2(payload[reader.position...], dictionarySize: dictionary, limit: whole + 1), cap: whole)
            let a = min(Int(first), raw.count), b = min(a + Int(second), raw.count)
            control = Array(raw[0..<a])
            diff = Array(raw[a..<b])
            extra = Array(raw[b...])
        default:
            throw formatError("unknown bsdiff encoding")
        }
        guard control.count % 24 == 0 else { throw formatError("a bsdiff control block is not whole triples") }
        return try bspatch(source, size: size, control: control, diff: diff, extra: extra)
    }

    /// bsdiff's patch step, refusing anything out of bounds (as bsdiff4's).
    private static func bspatch(_ old: [UInt8], size: Int, control: [UInt8], diff: [UInt8], extra: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        var newPos = 0, diffAt = 0, extraAt = 0
        var oldPos: Int64 = 0
        let corrupt = formatError("a BSDIFF payload does not decode: corrupt patch")
        for at in stride(from: 0, to: control.count, by: 24) {
            let x = int64(control, at), y = int64(control, at + 8), z = int64(control, at + 16)
            guard x >= 0, x <= Int64(size - newPos), x <= Int64(diff.count - diffAt) else { throw corrupt }
            for j in 0..<Int(x) {
                let from = oldPos + Int64(j)
                let add = from >= 0 && from < Int64(old.count) ? old[Int(from)] : 0
                out[newPos + j] = diff[diffAt + j] &+ add
            }
            diffAt += Int(x)
            newPos += Int(x)
            var (sum, overflow) = oldPos.addingReportingOverflow(x)
            guard !overflow else { throw corrupt }
            oldPos = sum
            guard y >= 0, y <= Int64(size - newPos), y <= Int64(extra.count - extraAt) else { throw corrupt }
            out.replaceSubrange(newPos..<newPos + Int(y), with: extra[extraAt..<extraAt + Int(y)])
            extraAt += Int(y)
            newPos += Int(y)
            (sum, overflow) = oldPos.addingReportingOverflow(z)
            guard !overflow else { throw corrupt }
            oldPos = sum
        }
        guard newPos == size, diffAt == diff.count, extraAt == extra.count else { throw corrupt }
        return out
    }

    /// bsdiff's 8-byte integer: little-endian magnitude, the top bit the sign.
    private static func int64(_ block: [UInt8], _ at: Int) -> Int64 {
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(block[at + i]) << (8 * UInt64(i)) }
        let magnitude = Int64(value & UInt64(Int64.max))
        return value >> 63 == 1 ? -magnitude : magnitude
    }
}

/// The container's reader: bytes, LEB128 varints below 2^63, payloads that must lie inside.
struct PatchReader {
    let data: ArraySlice<UInt8>
    var position: Int

    init(_ data: [UInt8], at position: Int) {
        self.data = data[...]
        self.position = position
    }

    init(_ data: ArraySlice<UInt8>, at position: Int) {
        self.data = data
        self.position = position
    }

    mutating func byte() throws -> UInt8 {
        guard position < data.endIndex else { throw Patches.formatError("the patch ends early") }
        defer { position += 1 }
        return data[position]
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try byte()
            if shift == 63 && byte > 0 { throw Patches.formatError("a number in the patch is too long") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            if shift > 63 { throw Patches.formatError("a number in the patch is too long") }
        }
    }

    mutating func take(_ count: UInt64) throws -> ArraySlice<UInt8> {
        guard count <= UInt64(data.endIndex - position) else {
            throw Patches.formatError("a payload runs past the end of the patch")
        }
        defer { position += Int(count) }
        return data[position..<position + Int(count)]
    }
}

/// HDiffPatch's compressed diff ("HDIFF13", as `hdiffpatch.diff` writes it),
/// its sections stored or zstd-compressed: a header of sizes, then the covers,
/// the RLE control and code of the bytes added to old data, and the new bytes
/// no cover holds. Each cover copies old bytes, to which the RLE stream adds
/// its bytes; the gaps between covers come from the new-data section. The
/// declared sizes must be the signed ones, the sections must fill the payload
/// and be consumed exactly, and a cover must lie inside both files.
enum HDiff {
    private static let magic = Array("HDIFF13&".utf8)

    static func apply(_ payload: ArraySlice<UInt8>, old: [UInt8], size: Int, codecs: PatchCodecs) throws -> [UInt8] {
        let start = payload.startIndex
        let window = payload[start..<min(payload.endIndex, start + 64)]
        guard payload.count >= magic.count, Array(payload[start..<start + magic.count]) == magic,
              let nul = window[(start + magic.count)...].firstIndex(of: 0)
        else { throw Patches.formatError("an HDiffPatch payload has no valid header") }
        let compression = String(decoding: payload[(start + magic.count)..<nul], as: UTF8.self)
        var head = Section(payload[(nul + 1)...])
        let newSize = try head.uint(0), oldSize = try head.uint(0)
        guard newSize == UInt64(size), oldSize == UInt64(old.count) else {
            throw HotPatchError(.tooLarge, "HDiffPatch output size exceeds \(size)")
        }
        let coverCount = try head.uint(0)
        var sizes = [UInt64]()
        for _ in 0..<8 { sizes.append(try head.uint(0)) } // (size, compressed size) of the four sections
        var at = head.position
        var sections = [Section]()
        // A section holds no more than its cover, control or byte per byte of output, bounded well above.
        let bound = UInt64(size) * 8 + 4096
        for i in 0..<4 {
            let plain = sizes[2 * i], packed = sizes[2 * i + 1]
            let stored = packed == 0 ? plain : packed
            guard stored <= UInt64(payload.endIndex - at) else {
                throw Patches.formatError("an HDiffPatch section runs past the payload")
            }
            let bytes = payload[at..<at + Int(stored)]
            at += Int(stored)
            if packed == 0 {
                sections.append(Section(bytes))
            } else {
                guard compression == "zstd" else {
                    throw Patches.formatError("HDiffPatch compression '\(compression)' is not supported")
                }
                guard plain <= bound else { throw Patches.formatError("an HDIFF section is larger than its file allows") }
                let data = try codecs.zstd(bytes, dictionary: nil, limit: Int(plain) + 1)
                guard data.count == Int(plain) else { throw Patches.formatError("an HDIFF section is not its declared size") }
                sections.append(Section(data[...]))
            }
        }
        guard at == payload.endIndex else { throw Patches.formatError("bytes follow the HDiffPatch sections") }
        var covers = sections[0], newData = sections[3]
        var rle = Rle(control: sections[1], code: sections[2])
        var out = [UInt8](repeating: 0, count: size)
        var written = 0
        var oldBack: Int64 = 0, newBack: Int64 = 0
        let outside = Patches.formatError("an HDIFF payload does not decode: a cover lies outside the files")
        for _ in 0..<coverCount {
            let negative = try covers.peek() >> 7 != 0
            let delta = try covers.uint(1), gap = try covers.uint(0), length = try covers.uint(0)
            guard delta < UInt64(Int64.max), gap <= UInt64(size), length <= UInt64(size) else { throw outside }
            let oldPos = negative ? oldBack - Int64(delta) : oldBack + Int64(delta)
            let newPos = newBack + Int64(gap)
            guard newPos >= Int64(written), newPos <= Int64(size), Int64(length) <= Int64(size) - newPos,
                  oldPos >= 0, oldPos <= Int64(old.count), Int64(length) <= Int64(old.count) - oldPos
            else { throw outside }
            let between = Int(newPos) - written
            try newData.copy(into: &out, at: written, count: between)
            try rle.skip(between)
            out.replaceSubrange(Int(newPos)..<Int(newPos) + Int(length), with: old[Int(oldPos)..<Int(oldPos) + Int(length)])
            try rle.add(into: &out, at: Int(newPos), count: Int(length))
            oldBack = oldPos + Int64(length)
            newBack = newPos + Int64(length)
            written = Int(newBack)
        }
        try newData.copy(into: &out, at: written, count: size - written)
        try rle.skip(size - written)
        guard covers.done, newData.done, rle.done else {
            throw Patches.formatError("an HDIFF payload has bytes left over")
        }
        return out
    }

    /// One section's bytes, read as bytes or as HDiffPatch's tagged integers.
    struct Section {
        let bytes: ArraySlice<UInt8>
        var position: Int

        init(_ bytes: ArraySlice<UInt8>) {
            self.bytes = bytes
            position = bytes.startIndex
        }

        var done: Bool { position == bytes.endIndex }

        func peek() throws -> UInt8 {
            guard position < bytes.endIndex else { throw Patches.formatError("an HDIFF section ends early") }
            return bytes[position]
        }

        mutating func byte() throws -> UInt8 {
            let value = try peek()
            position += 1
            return value
        }

        mutating func copy(into out: inout [UInt8], at offset: Int, count: Int) throws {
            guard count <= bytes.endIndex - position else { throw Patches.formatError("an HDIFF section ends early") }
            out.replaceSubrange(offset..<offset + count, with: bytes[position..<position + count])
            position += count
        }

        /// An unsigned integer after `tagBits` tag bits: 7 - tagBits bits, then 7 per byte
        /// while the top bit is set (big-endian).
        mutating func uint(_ tagBits: Int) throws -> UInt64 {
            var code = try byte()
            var value = UInt64(code & UInt8((1 << (7 - tagBits)) - 1))
            if code & UInt8(1 << (7 - tagBits)) != 0 {
                repeat {
                    guard value >> (64 - 7) == 0 else { throw Patches.formatError("an HDIFF number is too long") }
                    code = try byte()
                    value = (value << 7) | UInt64(code & 0x7F)
                } while code & 0x80 != 0
            }
            return value
        }
    }

    /// The bytes added to old data: runs of 0, of 255, of one byte, or literal bytes.
    struct Rle {
        var control: Section
        var code: Section
        var setLeft = 0, setValue: UInt8 = 0, copyLeft = 0

        var done: Bool { setLeft == 0 && copyLeft == 0 && control.done && code.done }

        mutating func skip(_ count: Int) throws {
            var ignored = [UInt8]()
            try decode(into: &ignored, at: 0, count: count, apply: false)
        }

        mutating func add(into out: inout [UInt8], at offset: Int, count: Int) throws {
            try decode(into: &out, at: offset, count: count, apply: true)
        }

        private mutating func decode(into out: inout [UInt8], at offset: Int, count: Int, apply: Bool) throws {
            var at = offset, left = count
            while left > 0 {
                if setLeft == 0 && copyLeft == 0 {
                    let kind = try control.peek() >> 6
                    let length = try control.uint(2)
                    guard length < UInt64(Int32.max) else { throw Patches.formatError("an HDIFF run is too long") }
                    switch kind {
                    case 0: setValue = 0; setLeft = Int(length) + 1
                    case 1: setValue = 255; setLeft = Int(length) + 1
                    case 2: setValue = try code.byte(); setLeft = Int(length) + 1
                    default: copyLeft = Int(length) + 1
                    }
                }
                if setLeft > 0 {
                    let step = min(setLeft, left)
                    if apply && setValue != 0 { for i in at..<at + step { out[i] &+= setValue } }
                    at += step; left -= step; setLeft -= step
                } else {
                    let step = min(copyLeft, left)
                    for i in at..<at + step {
                        let value = try code.byte()
                        if apply { out[i] &+= value }
                    }
                    at += step; left -= step; copyLeft -= step
                }
            }
        }
    }
}

/// The bundle shipped in the app binary, as files the app can read back exactly as they were
/// registered with `hotpatch embedded register` (on iOS, files of the app bundle such as
/// `main.jsbundle`; on Android, files of the APK's `assets/`).
public protocol EmbeddedBundle {
    /// Its files, named by their paths in a release (`main.jsbundle`).
    var paths: [String] { get }

    /// The bytes of one of `paths`; throws when it cannot be read.
    func read(_ path: String) throws -> [UInt8]
}

/// The bundle shipped inside the app binary, as a patch base (hotpatch_diff.embedded).
public enum EmbeddedBundles {
    /// The id (64 hex digits) of the bundle embedded in one native version of an app: the
    /// SHA-256 of the canonical JSON of its app, platform, native version and every file's
    /// path, size and SHA-256, sorted by path. The server names the registered bundle alike.
    public static func id(appId: String, platform: Platform, nativeVersion: String, files: [FileEntry],
                          crypto: CryptoBackend = CryptoBackends.system) -> String {
        let listed = files.sorted { scalarOrder($0.path, $1.path) }.map {
            JSON.object([("path", .string($0.path)), ("sha256", .string($0.sha256)), ("size", .integer($0.size))])
        }
        let document = JSON.object([("embedded", .object([
            ("appId", .string(appId)), ("platform", .string(platform.rawValue)),
            ("nativeVersion", .string(nativeVersion)), ("files", .array(listed)),
        ]))])
        return Hex.encode(crypto.sha256(StrictJSON.canonical(document)))
    }

    /// Describe `bundle` as a patch base: each file hashed (read once here, again when patched).
    public static func base(_ bundle: EmbeddedBundle, appId: String, platform: Platform, nativeVersion: String,
                            crypto: CryptoBackend = CryptoBackends.system) throws -> PatchBase {
        let files = try bundle.paths.map { path -> FileEntry in
            let data = try bundle.read(path)
            return FileEntry(path: path, sha256: Hex.encode(crypto.sha256(data)), size: Int64(data.count))
        }
        let id = id(appId: appId, platform: platform, nativeVersion: nativeVersion, files: files, crypto: crypto)
        return PatchBase(manifestId: id, files: files) { try bundle.read($0.path) }
    }
}
