package dev.hotpatch.core

import com.github.luben.zstd.ZstdInputStream
import org.apache.commons.compress.compressors.bzip2.BZip2CompressorInputStream
import org.tukaani.xz.LZMA2InputStream
import java.io.ByteArrayInputStream
import java.io.IOException
import java.io.InputStream

/** A release seen by the patcher: its manifest id, its signed file list, and a way to read a file (at most size + 1 bytes). */
class PatchBase(val manifestId: String, val files: List<FileEntry>, val read: (FileEntry) -> ByteArray)

/**
 * Applies the patch container of hotpatch_diff.patch (format 1), byte for
 * byte as the reference does: `b"HPD"`, the format byte, the first 4 bytes of
 * the base and target manifest ids, then one operation per target file
 * (KEEP, ADD, BSDIFF, ZSTD, HDIFF) and DELETE for base files the target drops;
 * integers are unsigned LEB128. Every output is capped at the size the signed
 * target manifest declares and checked against its signed SHA-256, so a patch
 * needs no signature: anything wrong fails here, and the caller fetches the
 * archive instead. The decoders are well-kept libraries (zstd-jni,
 * commons-compress for bzip2, xz-java for raw LZMA2); bsdiff's and
 * HDiffPatch's own steps are a few loops over their blocks, written here.
 * A whole file is held in memory while it is produced, as in the reference.
 */
object Patches {
    const val FORMAT = 1
    private val MAGIC = "HPD".toByteArray(Charsets.US_ASCII)
    private const val ID_BYTES = 4
    private const val MAX_WINDOW_LOG = 27 // 128 MiB, the reference's max_window_size
    private const val LZMA_DICT_MAX = 64 shl 20 // preset 9: a dictionary of 64 MiB at most
    private const val MAX_FILE = Int.MAX_VALUE - 8L

    private enum class Op { KEEP, ADD, BSDIFF, ZSTD, DELETE, HDIFF }

    private class Produce(val op: Op, val base: Int?, val payload: ByteArray)

    /** The (base, target) manifest id prefixes [patch] names; [PatchFormatException] if it is no patch of this format. */
    fun readHeader(patch: ByteArray): Pair<ByteArray, ByteArray> {
        if (patch.size < MAGIC.size + 1 + 2 * ID_BYTES || !patch.copyOfRange(0, MAGIC.size).contentEquals(MAGIC)) {
            throw PatchFormatException("not a HotPatch patch")
        }
        val format = patch[MAGIC.size].toInt() and 0xFF
        if (format != FORMAT) throw PatchFormatException("patch format $format is not supported")
        val start = MAGIC.size + 1
        return patch.copyOfRange(start, start + ID_BYTES) to patch.copyOfRange(start + ID_BYTES, start + 2 * ID_BYTES)
    }

    /**
     * Produce every file of [targetFiles] (the signed target manifest's) from [base] and [patch] into
     * [sink]; return the bytes written. Throws [PatchFormatException], [WrongBaseException],
     * [TooLargeException] or [HashMismatchException]; the sink may then hold partial output, which
     * the caller discards.
     */
    fun apply(patch: ByteArray, base: PatchBase, targetId: String, targetFiles: List<FileEntry>, sink: ExtractSink): Long {
        val (basePrefix, targetPrefix) = readHeader(patch)
        if (!basePrefix.contentEquals(idPrefix(base.manifestId))) {
            throw WrongBaseException("the patch was made from another release than the installed one")
        }
        if (!targetPrefix.contentEquals(idPrefix(targetId))) {
            throw WrongBaseException("the patch produces another release than the one offered")
        }
        val reader = Reader(patch, MAGIC.size + 1 + 2 * ID_BYTES)
        val produced = readOps(reader, base.files.size, targetFiles.size)
        if (reader.position != patch.size) throw PatchFormatException("bytes follow the last operation")
        if (produced.size != targetFiles.size) throw PatchFormatException("the patch does not produce every file of the release")
        val cache = HashMap<Int, ByteArray>()
        fun source(index: Int): ByteArray = cache.getOrPut(index) {
            val entry = base.files[index]
            val data = base.read(entry)
            if (data.size.toLong() != entry.size || sha256Hex(data) != entry.sha256) {
                throw WrongBaseException("installed ${entry.path} differs from its signed hash")
            }
            data
        }
        var total = 0L
        for ((index, entry) in targetFiles.withIndex()) {
            val step = produced.getValue(index)
            val data = if (step.op == Op.KEEP) source(step.base!!) else decode(step, step.base?.let(::source), entry.size)
            if (data.size > entry.size) throw TooLargeException("bytes produced for ${entry.path}", entry.size)
            if (data.size.toLong() != entry.size || sha256Hex(data) != entry.sha256) {
                throw HashMismatchException("${entry.path}: the patched file differs from the signed hash")
            }
            sink.begin(entry)
            sink.write(data, 0, data.size)
            sink.end(entry)
            total += data.size
        }
        return total
    }

    /** The first [ID_BYTES] bytes of a manifest id (64 hex digits), as the header carries them. */
    private fun idPrefix(id: String): ByteArray {
        require(id.length >= 2 * ID_BYTES) { "not a manifest id: $id" }
        return ByteArray(ID_BYTES) { i -> id.substring(2 * i, 2 * i + 2).toInt(16).toByte() }
    }

    private fun readOps(reader: Reader, baseCount: Int, targetCount: Int): Map<Int, Produce> {
        val count = reader.varint()
        if (count > baseCount.toLong() + targetCount) throw PatchFormatException("the patch has more operations than files")
        val produced = HashMap<Int, Produce>()
        repeat(count.toInt()) {
            val op = Op.entries.getOrNull(reader.byte()) ?: throw PatchFormatException("unknown operation in the patch")
            if (op == Op.DELETE) {
                if (reader.varint() >= baseCount) throw PatchFormatException("a DELETE names no base file")
                return@repeat
            }
            val target = reader.varint()
            if (target >= targetCount) throw PatchFormatException("an operation names no target file")
            var baseIndex: Int? = null
            if (op != Op.ADD) {
                val index = reader.varint()
                if (index >= baseCount) throw PatchFormatException("an operation names no base file")
                baseIndex = index.toInt()
            }
            val payload = if (op == Op.KEEP) ByteArray(0) else reader.take(reader.varint())
            if (produced.put(target.toInt(), Produce(op, baseIndex, payload)) != null) {
                throw PatchFormatException("two operations produce the same file")
            }
        }
        return produced
    }

    /** Decode one payload, never producing more than [limit] + 1 bytes. */
    private fun decode(step: Produce, source: ByteArray?, limit: Long): ByteArray {
        if (limit > MAX_FILE) throw TooLargeException("a patched file", MAX_FILE)
        try {
            return when (step.op) {
                Op.HDIFF -> HDiff.apply(step.payload, source!!, limit)
                Op.BSDIFF -> bsdiff(step.payload, source!!, limit.toInt())
                else -> ZstdInputStream(ByteArrayInputStream(step.payload)).use { stream ->
                    stream.setLongMax(MAX_WINDOW_LOG)
                    if (step.op == Op.ZSTD) stream.setDict(source!!)
                    readCapped(stream, limit + 1)
                }
            }
        } catch (e: IOException) {
            throw PatchFormatException("a ${step.op} payload does not decode: ${e.message}")
        } catch (e: RuntimeException) {
            if (e is HotPatchException) throw e
            throw PatchFormatException("a ${step.op} payload does not decode: ${e.message}")
        } catch (e: OutOfMemoryError) {
            throw PatchFormatException("a ${step.op} payload does not decode: out of memory")
        }
    }

    // --- bsdiff ---------------------------------------------------------------------------------------------

    /** bsdiff's control block may be no larger than the file plus one 24-byte triple (the reference's cap). */
    private fun controlCap(size: Int): Long = size + 24L

    /** Rebuild a file of exactly [size] bytes; every block is capped before it is inflated. */
    private fun bsdiff(payload: ByteArray, source: ByteArray, size: Int): ByteArray {
        val reader = Reader(payload, 0)
        val codec = reader.byte()
        val first = reader.varint()
        val second = reader.varint()
        val cap = controlCap(size)
        val control: ByteArray
        val diff: ByteArray
        val extra: ByteArray
        when (codec) {
            0 -> { // three bzip2 streams: control, diff, extra
                control = inflate(BZip2CompressorInputStream(ByteArrayInputStream(reader.take(first))), cap)
                diff = inflate(BZip2CompressorInputStream(ByteArrayInputStream(reader.take(second))), size.toLong())
                extra = inflate(BZip2CompressorInputStream(ByteArrayInputStream(payload, reader.position, payload.size - reader.position)), size.toLong())
            }
            1 -> { // one raw LZMA2 stream of control + diff + extra
                if (first > cap || second > size) throw TooLargeException("a bsdiff block", size.toLong())
                val whole = first + second + size
                // No match reaches further back than the bytes already produced: a dictionary of the
                // output's size decodes the stream (the encoder's is 64 MiB).
                val dictionary = whole.coerceIn(4096L, LZMA_DICT_MAX.toLong()).toInt()
                val raw = inflate(LZMA2InputStream(ByteArrayInputStream(payload, reader.position, payload.size - reader.position), dictionary), whole)
                val a = minOf(first.toInt(), raw.size)
                val b = minOf(a + second.toInt(), raw.size)
                control = raw.copyOfRange(0, a)
                diff = raw.copyOfRange(a, b)
                extra = raw.copyOfRange(b, raw.size)
            }
            else -> throw PatchFormatException("unknown bsdiff encoding")
        }
        if (control.size % 24 != 0) throw PatchFormatException("a bsdiff control block is not whole triples")
        return bspatch(source, size, control, diff, extra)
    }

    /** bsdiff's patch step over its three blocks, refusing anything out of bounds (as bsdiff4's). */
    private fun bspatch(old: ByteArray, size: Int, control: ByteArray, diff: ByteArray, extra: ByteArray): ByteArray {
        val out = ByteArray(size)
        var newPos = 0
        var oldPos = 0L
        var diffAt = 0
        var extraAt = 0
        fun corrupt(): Nothing = throw PatchFormatException("a BSDIFF payload does not decode: corrupt patch")
        for (at in control.indices step 24) {
            val x = int64(control, at)
            val y = int64(control, at + 8)
            val z = int64(control, at + 16)
            if (x < 0 || x > size - newPos || x > diff.size - diffAt) corrupt()
            for (j in 0 until x.toInt()) {
                val from = oldPos + j
                val add = if (from >= 0 && from < old.size) old[from.toInt()].toInt() else 0
                out[newPos + j] = (diff[diffAt + j] + add).toByte()
            }
            diffAt += x.toInt()
            newPos += x.toInt()
            oldPos = try { Math.addExact(oldPos, x) } catch (e: ArithmeticException) { corrupt() }
            if (y < 0 || y > size - newPos || y > extra.size - extraAt) corrupt()
            System.arraycopy(extra, extraAt, out, newPos, y.toInt())
            extraAt += y.toInt()
            newPos += y.toInt()
            oldPos = try { Math.addExact(oldPos, z) } catch (e: ArithmeticException) { corrupt() }
        }
        if (newPos != size || diffAt != diff.size || extraAt != extra.size) corrupt()
        return out
    }

    /** bsdiff's 8-byte integer: little-endian magnitude, the top bit the sign. */
    private fun int64(block: ByteArray, at: Int): Long {
        var value = 0L
        for (i in 0 until 8) value = value or ((block[at + i].toLong() and 0xFF) shl (8 * i))
        val magnitude = value and Long.MAX_VALUE
        return if (value < 0) -magnitude else magnitude
    }

    /** Everything [stream] gives; [TooLargeException] past [cap] bytes. */
    private fun inflate(stream: InputStream, cap: Long): ByteArray = stream.use {
        val out = readCapped(it, cap + 1)
        if (out.size > cap) throw TooLargeException("a bsdiff block", cap)
        out
    }

    /** At most [count] bytes of [stream] (fewer if it ends first). */
    internal fun readCapped(stream: InputStream, count: Long): ByteArray {
        val out = java.io.ByteArrayOutputStream()
        val buffer = ByteArray(64 * 1024)
        var left = count
        while (left > 0) {
            val got = stream.read(buffer, 0, minOf(buffer.size.toLong(), left).toInt())
            if (got < 0) break
            out.write(buffer, 0, got)
            left -= got
        }
        return out.toByteArray()
    }

    /** The container's reader: bytes, LEB128 varints below 2^63, and payloads that must lie inside. */
    private class Reader(val data: ByteArray, var position: Int) {
        fun byte(): Int {
            if (position >= data.size) throw PatchFormatException("the patch ends early")
            return data[position++].toInt() and 0xFF
        }

        fun varint(): Long {
            var value = 0L
            var shift = 0
            while (true) {
                val byte = byte()
                if (shift == 63 && byte > 0) throw PatchFormatException("a number in the patch is too long")
                value = value or ((byte and 0x7F).toLong() shl shift)
                if (byte and 0x80 == 0) return value
                shift += 7
                if (shift > 63) throw PatchFormatException("a number in the patch is too long")
            }
        }

        fun take(count: Long): ByteArray {
            if (count > data.size - position) throw PatchFormatException("a payload runs past the end of the patch")
            val chunk = data.copyOfRange(position, position + count.toInt())
            position += count.toInt()
            return chunk
        }
    }
}

/**
 * HDiffPatch's compressed diff ("HDIFF13", the format `hdiffpatch.diff`
 * writes), with its sections stored or zstd-compressed: a header of sizes,
 * then four sections (covers, the RLE control and code of the bytes added to
 * old data, and the new bytes no cover holds). Each cover copies old bytes,
 * to which the RLE stream adds its bytes; the gaps between covers come from
 * the new-data section. Every size and position is checked: the declared
 * sizes must be the signed ones, the sections must fill the payload exactly
 * and be consumed exactly, and a cover must lie inside both files.
 */
internal object HDiff {
    private val MAGIC = "HDIFF13&".toByteArray(Charsets.US_ASCII)
    private const val KIND_RLE0 = 0
    private const val KIND_RLE255 = 1
    private const val KIND_RLE = 2

    fun apply(payload: ByteArray, old: ByteArray, size: Long): ByteArray {
        val nul = (MAGIC.size until minOf(payload.size, 64)).firstOrNull { payload[it].toInt() == 0 }
        if (payload.size < MAGIC.size || !payload.copyOfRange(0, MAGIC.size).contentEquals(MAGIC) || nul == null) {
            throw PatchFormatException("an HDiffPatch payload has no valid header")
        }
        val compression = String(payload, MAGIC.size, nul - MAGIC.size, Charsets.US_ASCII)
        val head = Section(ByteArrayInputStream(payload, nul + 1, payload.size - nul - 1), Long.MAX_VALUE)
        val newSize = head.uint(0)
        val oldSize = head.uint(0)
        if (newSize != size || oldSize != old.size.toLong()) throw TooLargeException("HDiffPatch output size", size)
        val coverCount = head.uint(0)
        val sizes = LongArray(8) { head.uint(0) } // (size, compressed size) of covers, rle control, rle code, new data
        var at = nul + 1 + head.consumed
        val sections = (0 until 4).map { i ->
            val plain = sizes[2 * i]
            val packed = sizes[2 * i + 1]
            val stored = if (packed == 0L) plain else packed
            if (stored > payload.size - at) throw PatchFormatException("an HDiffPatch section runs past the payload")
            val bytes = ByteArrayInputStream(payload, at, stored.toInt())
            at += stored.toInt()
            if (packed == 0L) {
                Section(bytes, plain)
            } else {
                if (compression != "zstd") throw PatchFormatException("HDiffPatch compression '$compression' is not supported")
                Section(ZstdInputStream(bytes).also { it.setLongMax(27) }, plain)
            }
        }
        if (at != payload.size) throw PatchFormatException("bytes follow the HDiffPatch sections")
        val (covers, rleControl, rleCode, newData) = sections
        val rle = Rle(rleControl, rleCode)
        val out = ByteArray(size.toInt())
        var written = 0L
        var oldBack = 0L
        var newBack = 0L
        fun corrupt(): Nothing = throw PatchFormatException("an HDIFF payload does not decode: a cover lies outside the files")
        for (n in 0 until coverCount) {
            val negative = covers.peek() shr 7 != 0
            val delta = covers.uint(1)
            val oldPos = if (negative) oldBack - delta else oldBack + delta
            val newPos = newBack + covers.uint(0)
            val length = covers.uint(0)
            if (newPos < written || newPos > size || length > size - newPos) corrupt()
            if (oldPos < 0 || oldPos > old.size || length > old.size - oldPos) corrupt()
            val gap = (newPos - written).toInt()
            newData.read(out, written.toInt(), gap)
            rle.skip(gap.toLong())
            System.arraycopy(old, oldPos.toInt(), out, newPos.toInt(), length.toInt())
            rle.add(out, newPos.toInt(), length.toInt())
            oldBack = oldPos + length
            newBack = newPos + length
            written = newPos + length
        }
        val tail = (size - written).toInt()
        newData.read(out, written.toInt(), tail)
        rle.skip(tail.toLong())
        if (!covers.done() || !newData.done() || !rle.done()) throw PatchFormatException("an HDIFF payload has bytes left over")
        return out
    }

    /** One section: exactly [size] bytes from [stream], read as bytes or HDiffPatch's tagged integers. */
    private class Section(private val stream: InputStream, private var left: Long) {
        var consumed = 0
        private var peeked = -1

        fun done(): Boolean = left == 0L && peeked < 0 && stream.read() < 0

        fun peek(): Int {
            if (peeked < 0) peeked = next()
            return peeked
        }

        fun byte(): Int {
            val value = peek()
            peeked = -1
            return value
        }

        private fun next(): Int {
            if (left <= 0) throw PatchFormatException("an HDIFF section ends early")
            val value = stream.read()
            if (value < 0) throw PatchFormatException("an HDIFF section ends early")
            left--
            consumed++
            return value
        }

        fun read(into: ByteArray, offset: Int, count: Int) {
            var at = offset
            if (count > 0 && peeked >= 0) {
                into[at++] = peeked.toByte()
                peeked = -1
            }
            var want = offset + count - at
            if (want > left) throw PatchFormatException("an HDIFF section ends early")
            while (want > 0) {
                val got = stream.read(into, at, want)
                if (got < 0) throw PatchFormatException("an HDIFF section ends early")
                at += got
                want -= got
                left -= got
                consumed += got
            }
        }

        /** An unsigned integer after [tagBits] tag bits: 7 - tagBits bits, then 7 per byte while the top bit is set (big-endian). */
        fun uint(tagBits: Int): Long {
            var code = byte()
            var value = (code and ((1 shl (7 - tagBits)) - 1)).toLong()
            if (code and (1 shl (7 - tagBits)) != 0) {
                do {
                    if (value ushr (64 - 7) != 0L) throw PatchFormatException("an HDIFF number is too long")
                    code = byte()
                    value = (value shl 7) or (code and 0x7F).toLong()
                } while (code and 0x80 != 0)
            }
            if (value < 0) throw PatchFormatException("an HDIFF number is too long")
            return value
        }
    }

    /** The bytes added to old data: runs of 0, of 255, of one byte, or literal bytes. */
    private class Rle(private val control: Section, private val code: Section) {
        private var setLeft = 0L
        private var setValue = 0
        private var copyLeft = 0L

        fun done(): Boolean = setLeft == 0L && copyLeft == 0L && control.done() && code.done()

        fun skip(count: Long) = decode(null, 0, count)

        fun add(out: ByteArray, offset: Int, count: Int) = decode(out, offset, count.toLong())

        private fun decode(out: ByteArray?, offset: Int, count: Long) {
            var at = offset
            var left = count
            while (left > 0) {
                if (setLeft == 0L && copyLeft == 0L) {
                    val kind = control.peek() shr 6
                    val length = control.uint(2) + 1
                    when (kind) {
                        KIND_RLE0 -> { setValue = 0; setLeft = length }
                        KIND_RLE255 -> { setValue = 255; setLeft = length }
                        KIND_RLE -> { setValue = code.byte(); setLeft = length }
                        else -> copyLeft = length
                    }
                }
                if (setLeft > 0) {
                    val step = minOf(setLeft, left).toInt()
                    if (out != null && setValue != 0) for (i in at until at + step) out[i] = (out[i] + setValue).toByte()
                    at += step
                    left -= step
                    setLeft -= step
                } else {
                    val step = minOf(copyLeft, left).toInt()
                    for (i in at until at + step) {
                        val value = code.byte()
                        if (out != null) out[i] = (out[i] + value).toByte()
                    }
                    at += step
                    left -= step
                    copyLeft -= step
                }
            }
        }
    }
}

/** The bundle shipped inside the app binary, as a patch base (hotpatch_diff.embedded). */
object EmbeddedBundles {
    /**
     * The id (64 hex digits) of the bundle embedded in one native version of an app: the SHA-256 of
     * the canonical JSON of its app, platform, native version and every file's path, size and
     * SHA-256, sorted by path. The server names the registered embedded bundle by the same id.
     */
    fun id(appId: String, platform: String, nativeVersion: String, files: List<FileEntry>): String {
        val listed = files.sortedWith(compareBy(StrictJson.CODE_POINT_ORDER) { it.path }).map {
            Json.Obj(mapOf("path" to Json.Str(it.path), "sha256" to Json.Str(it.sha256), "size" to Json.Int(it.size)))
        }
        val document = Json.Obj(
            mapOf(
                "embedded" to Json.Obj(
                    mapOf(
                        "appId" to Json.Str(appId),
                        "platform" to Json.Str(platform),
                        "nativeVersion" to Json.Str(nativeVersion),
                        "files" to Json.Arr(listed),
                    ),
                ),
            ),
        )
        return sha256Hex(StrictJson.canonical(document))
    }
}
