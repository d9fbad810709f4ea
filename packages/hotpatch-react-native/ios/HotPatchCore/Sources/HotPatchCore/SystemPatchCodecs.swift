#if canImport(CZstd) && canImport(CBzip2) && canImport(CLzma)
import CBzip2
import CLzma
import CZstd

/// `PatchCodecs` over the system's libzstd, libbz2 and liblzma: what the
/// Linux build links (Debian's libzstd-dev, libbz2-dev, liblzma-dev). iOS has
/// no zstd library, so the pod does not build this yet, and an iOS device
/// downloads whole archives.
public struct SystemPatchCodecs: PatchCodecs {
    private static let chunk = 64 * 1024
    private static let maxWindowLog: Int32 = 27 // 128 MiB, the reference's max_window_size

    public init() {}

    private static func failed(_ what: String, _ detail: String) -> HotPatchError {
        HotPatchError(.patchFormat, "a \(what) payload does not decode: \(detail)")
    }

    public func zstd(_ data: ArraySlice<UInt8>, dictionary: [UInt8]?, limit: Int) throws -> [UInt8] {
        guard let context = ZSTD_createDCtx() else { throw HotPatchError(.storage, "zstd: out of memory") }
        defer { ZSTD_freeDCtx(context) }
        _ = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, Self.maxWindowLog)
        let prefix = dictionary ?? []
        return try prefix.withUnsafeBytes { dictionaryBytes in
            if dictionary != nil {
                // The old file as history before the frame: zstd's --patch-from, as a raw-content dictionary.
                let status = ZSTD_DCtx_refPrefix(context, dictionaryBytes.baseAddress, dictionaryBytes.count)
                if ZSTD_isError(status) != 0 { throw Self.failed("zstd", String(cString: ZSTD_getErrorName(status))) }
            }
            return try data.withUnsafeBytes { input in
                var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
                var out = [UInt8]()
                var buffer = [UInt8](repeating: 0, count: Self.chunk)
                while out.count < limit {
                    let room = min(buffer.count, limit - out.count)
                    let (status, produced) = buffer.withUnsafeMutableBytes { chunk -> (Int, Int) in
                        var target = ZSTD_outBuffer(dst: chunk.baseAddress, size: room, pos: 0)
                        let status = ZSTD_decompressStream(context, &target, &source)
                        return (status, target.pos)
                    }
                    if ZSTD_isError(status) != 0 { throw Self.failed("zstd", String(cString: ZSTD_getErrorName(status))) }
                    out.append(contentsOf: buffer[0..<produced])
                    if status == 0 { break } // the frame is complete
                    if produced == 0 && source.pos == source.size { throw Self.failed("zstd", "the frame ends early") }
                }
                return out
            }
        }
    }

    public func bzip2(_ data: ArraySlice<UInt8>, limit: Int) throws -> [UInt8] {
        var stream = bz_stream()
        guard BZ2_bzDecompressInit(&stream, 0, 0) == BZ_OK else { throw HotPatchError(.storage, "bzip2: out of memory") }
        defer { BZ2_bzDecompressEnd(&stream) }
        var input = Array(data)
        var out = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: Self.chunk)
        return try input.withUnsafeMutableBufferPointer { source in
            stream.next_in = UnsafeMutableRawPointer(source.baseAddress)?.assumingMemoryBound(to: CChar.self)
            stream.avail_in = UInt32(source.count)
            while out.count < limit {
                let room = min(buffer.count, limit - out.count)
                let (status, produced) = buffer.withUnsafeMutableBytes { chunk -> (Int32, Int) in
                    stream.next_out = chunk.baseAddress?.assumingMemoryBound(to: CChar.self)
                    stream.avail_out = UInt32(room)
                    let status = BZ2_bzDecompress(&stream)
                    return (status, room - Int(stream.avail_out))
                }
                guard status == BZ_OK || status == BZ_STREAM_END else { throw Self.failed("bzip2", "error \(status)") }
                out.append(contentsOf: buffer[0..<produced])
                if status == BZ_STREAM_END { break }
                if produced == 0 && stream.avail_in == 0 { break } // the stream ends early: what came is all
            }
            return out
        }
    }

    public func lzma2(_ data: ArraySlice<UInt8>, dictionarySize: Int, limit: Int) throws -> [UInt8] {
        var options = lzma_options_lzma()
        _ = lzma_lzma_preset(&options, 9)
        options.dict_size = UInt32(dictionarySize)
        var stream = lzma_stream()
        defer { lzma_end(&stream) }
        let started = withUnsafeMutablePointer(to: &options) { pointer -> lzma_ret in
            var filters = [
                lzma_filter(id: 0x21, options: UnsafeMutableRawPointer(pointer)), // LZMA_FILTER_LZMA2
                lzma_filter(id: UInt64.max, options: nil), // LZMA_VLI_UNKNOWN: the end of the list
            ]
            return lzma_raw_decoder(&stream, &filters)
        }
        guard started == LZMA_OK else { throw HotPatchError(.storage, "lzma: the decoder did not start (\(started.rawValue))") }
        var out = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: Self.chunk)
        return try data.withUnsafeBytes { input in
            stream.next_in = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
            stream.avail_in = input.count
            while out.count < limit {
                let room = min(buffer.count, limit - out.count)
                let (status, produced) = buffer.withUnsafeMutableBytes { chunk -> (lzma_ret, Int) in
                    stream.next_out = chunk.baseAddress?.assumingMemoryBound(to: UInt8.self)
                    stream.avail_out = room
                    let status = lzma_code(&stream, LZMA_FINISH)
                    return (status, room - stream.avail_out)
                }
                guard status == LZMA_OK || status == LZMA_STREAM_END || status == LZMA_BUF_ERROR else {
                    throw Self.failed("LZMA2", "error \(status.rawValue)")
                }
                out.append(contentsOf: buffer[0..<produced])
                if status == LZMA_STREAM_END || status == LZMA_BUF_ERROR { break } // done, or ended early
            }
            return out
        }
    }
}
#endif
