package dev.hotpatch.core

import java.io.File
import java.io.RandomAccessFile
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction
import java.security.MessageDigest
import java.util.zip.CRC32
import java.util.zip.DataFormatException
import java.util.zip.Inflater

/** Bytes the extractor reads at chosen offsets: a downloaded file, or memory in tests. */
interface ArchiveSource {
    val size: Long

    /** Read up to [length] bytes at [position] into [into]; the count read, 0 at the end. */
    fun read(position: Long, into: ByteArray, offset: Int, length: Int): Int

    /** Give [use] the first [length] bytes (all of them by default), a chunk at a time. */
    fun forEachChunk(length: Long = size, use: (ByteArray, Int) -> Unit) {
        val buffer = ByteArray(64 * 1024)
        var position = 0L
        while (position < length) {
            val got = read(position, buffer, 0, minOf(buffer.size.toLong(), length - position).toInt())
            if (got <= 0) break
            use(buffer, got)
            position += got
        }
    }

    /** The first [length] bytes (all of them by default), or fewer if the source ends first. */
    fun readBytes(length: Long = size): ByteArray {
        val out = java.io.ByteArrayOutputStream()
        forEachChunk(minOf(length, size)) { buffer, count -> out.write(buffer, 0, count) }
        return out.toByteArray()
    }

    class Bytes(private val data: ByteArray) : ArchiveSource {
        override val size: Long get() = data.size.toLong()

        override fun read(position: Long, into: ByteArray, offset: Int, length: Int): Int {
            if (position >= data.size) return 0
            val count = minOf(length.toLong(), data.size - position).toInt()
            System.arraycopy(data, position.toInt(), into, offset, count)
            return count
        }
    }

    /** The file as it is on disk: the caller keeps it open from hashing to extraction (A15). */
    class OpenFile(private val file: RandomAccessFile) : ArchiveSource, java.io.Closeable {
        override fun close() = file.close()

        override val size: Long get() = file.length()

        override fun read(position: Long, into: ByteArray, offset: Int, length: Int): Int {
            file.seek(position)
            return maxOf(file.read(into, offset, length), 0)
        }

        companion object {
            fun open(path: File): OpenFile = OpenFile(RandomAccessFile(path, "r"))
        }
    }
}

/** Where the extractor sends each file's bytes as it verifies them. */
interface ExtractSink {
    fun begin(entry: FileEntry)

    fun write(data: ByteArray, offset: Int, length: Int)

    /** The current entry is complete: its size and sha256 matched the signed ones. */
    fun end(entry: FileEntry)

    /** Validates only (the bytes go nowhere). */
    object Null : ExtractSink {
        override fun begin(entry: FileEntry) = Unit

        override fun write(data: ByteArray, offset: Int, length: Int) = Unit

        override fun end(entry: FileEntry) = Unit
    }
}

/**
 * The one strict extractor (hotpatch_core.archive.extract_archive): the
 * whole central directory is checked before a byte is emitted, then each
 * file is streamed to the sink while its size, CRC-32 and sha256 are
 * checked. It refuses, never repairs: unsafe or colliding names, links,
 * devices, directories, encryption, codecs other than stored and deflate,
 * overlapping entries, and any difference from the signed file list.
 * `docs/spec/vectors/archives.json` pins the verdict on hostile archives.
 */
object Archives {
    private const val EOCD_SIZE = 22
    private const val ZIP64_LOCATOR_SIZE = 20
    private const val ZIP64_EOCD_SIZE = 56
    private const val CENTRAL_SIZE = 46
    private const val LOCAL_SIZE = 30
    private const val MAX_EXTRACT_VERSION = 63
    private const val UTF8_FLAG = 0x800
    private const val ENCRYPTED_FLAG = 0x1
    private const val PATCHED_FLAG = 0x20
    private const val STRONG_ENCRYPTION_FLAG = 0x40
    private const val STORED = 0
    private const val DEFLATED = 8
    private const val UNIX = 3
    private const val CHUNK = 64 * 1024
    private const val U32_MAX = 0xFFFF_FFFFL

    private class Entry(
        val name: String,
        val ascii: Boolean,
        val flags: Int,
        val method: Int,
        val createSystem: Int,
        val crc: Long,
        var compressSize: Long,
        var fileSize: Long,
        val externalAttr: Long,
        var headerOffset: Long,
    )

    private class Directory(val entries: List<Entry>, val start: Long)

    /**
     * Check the archive in [source] against [expected] and stream its files to
     * [sink]; return the bytes written. Throws an [ArchiveException],
     * [TooLargeException] or [HashMismatchException]; the sink may then hold
     * partial output, which the caller discards.
     */
    fun extract(source: ArchiveSource, expected: List<FileEntry>, sink: ExtractSink, limits: ArchiveLimits = ArchiveLimits.DEFAULT): Long {
        if (expected.size > limits.maxFiles) throw TooLargeException("number of files", limits.maxFiles.toLong())
        val declaredTotal = expected.sumOf { it.size }
        if (declaredTotal > limits.maxTotalBytes) throw TooLargeException("total uncompressed size", limits.maxTotalBytes)
        val declared = declaredEntries(source)
        if (declared != null && declared > limits.maxFiles) {
            throw TooLargeException("number of archive entries (declared)", limits.maxFiles.toLong())
        }
        val directory = readDirectory(source)
        val entries = directory.entries
        if (entries.size > limits.maxFiles) throw TooLargeException("number of archive entries", limits.maxFiles.toLong())
        entries.forEach { checkEntry(it, limits) }
        ArchivePaths.checkCollisions(entries.map { it.name })
        val byPath = expected.associateBy { it.path }
        entries.firstOrNull { it.name !in byPath }?.let { throw ArchiveMismatchException("entry ${quote(it.name)} is not in the manifest") }
        val names = entries.map { it.name }.toSet()
        byPath.keys.filter { it !in names }.minWithOrNull(ArchivePaths::compareCodePoints)?.let {
            throw ArchiveMismatchException("manifest file ${quote(it)} is not in the archive")
        }
        for (entry in entries) {
            val signed = byPath.getValue(entry.name).size
            if (entry.fileSize != signed) {
                throw ArchiveMismatchException("entry ${quote(entry.name)} declares ${entry.fileSize} bytes, manifest says $signed")
            }
        }
        checkLayout(source, entries, directory.start)
        var total = 0L
        for (entry in entries) {
            total += stream(source, entry, byPath.getValue(entry.name), sink)
            if (total > declaredTotal) throw TooLargeException("total bytes written", declaredTotal)
        }
        return total
    }

    /** The entry count the end record declares (zip64 included), read from the archive's tail only; null if none. */
    fun declaredEntries(source: ArchiveSource): Long? {
        val end = source.size
        val tailStart = maxOf(0L, end - EOCD_SIZE - 0xFFFF)
        val tail = readAt(source, tailStart, (end - tailStart).toInt())
        var at = lastIndexOf(tail, EOCD_MAGIC, tail.size)
        while (at >= 0 && at + EOCD_SIZE + commentLength(tail, at) != tail.size) at = lastIndexOf(tail, EOCD_MAGIC, at)
        if (at < 0) return null
        val record = le(tail, at)
        val count = maxOf(record.getShort(8).toInt() and 0xFFFF, record.getShort(10).toInt() and 0xFFFF).toLong()
        if (count != 0xFFFFL || at < ZIP64_LOCATOR_SIZE) return count
        val locator = le(tail, at - ZIP64_LOCATOR_SIZE)
        val offset = locator.getLong(8)
        if (!(tail.startsAt(at - ZIP64_LOCATOR_SIZE, ZIP64_LOCATOR_MAGIC)) || offset < 0 || offset > end - ZIP64_EOCD_SIZE) return null
        val zip64 = readAt(source, offset, ZIP64_EOCD_SIZE)
        if (zip64.size < ZIP64_EOCD_SIZE || !zip64.startsAt(0, ZIP64_EOCD_MAGIC)) return null
        val fields = le(zip64, 0)
        val onDisk = fields.getLong(24)
        val all = fields.getLong(32)
        // Unsigned 64-bit counts: one above Long.MAX_VALUE is certainly over any cap.
        if (onDisk < 0 || all < 0) return Long.MAX_VALUE
        return maxOf(onDisk, all)
    }

    private fun commentLength(tail: ByteArray, at: Int): Int =
        if (at + EOCD_SIZE <= tail.size) le(tail, at).getShort(20).toInt() and 0xFFFF else -1

    /** The end record as a lenient zip reader finds it (the reference's zipfile), zip64 included. */
    private fun endRecord(source: ArchiveSource): Pair<LongArray, Long>? {
        val size = source.size
        if (size < EOCD_SIZE) return null
        val last = readAt(source, size - EOCD_SIZE, EOCD_SIZE)
        val location: Long
        val record: ByteArray
        if (last.startsAt(0, EOCD_MAGIC) && last[20] == 0.toByte() && last[21] == 0.toByte()) {
            location = size - EOCD_SIZE
            record = last
        } else {
            val searchStart = maxOf(size - (1 shl 16) - EOCD_SIZE, 0L)
            val data = readAt(source, searchStart, (size - searchStart).toInt())
            val start = lastIndexOf(data, EOCD_MAGIC, data.size)
            if (start < 0 || start + EOCD_SIZE > data.size) return null
            location = searchStart + start
            record = data.copyOfRange(start, start + EOCD_SIZE)
        }
        val eocd = le(record, 0)
        var centralSize = eocd.getInt(12).toLong() and U32_MAX
        var centralOffset = eocd.getInt(16).toLong() and U32_MAX
        var zip64 = false
        if (location >= ZIP64_LOCATOR_SIZE) {
            val locator = readAt(source, location - ZIP64_LOCATOR_SIZE, ZIP64_LOCATOR_SIZE)
            if (locator.size == ZIP64_LOCATOR_SIZE && locator.startsAt(0, ZIP64_LOCATOR_MAGIC)) {
                val fields = le(locator, 0)
                if (fields.getInt(4) != 0 || (fields.getInt(16).toLong() and U32_MAX) > 1) {
                    throw ArchiveException("not a valid zip archive: zipfiles that span multiple disks are not supported")
                }
                val at = location - ZIP64_LOCATOR_SIZE - ZIP64_EOCD_SIZE
                if (at < 0) throw ArchiveException("not a valid zip archive: File is not a zip file")
                val record64 = readAt(source, at, ZIP64_EOCD_SIZE)
                if (record64.size == ZIP64_EOCD_SIZE && record64.startsAt(0, ZIP64_EOCD_MAGIC)) {
                    val fields64 = le(record64, 0)
                    centralSize = fields64.getLong(40)
                    centralOffset = fields64.getLong(48)
                    zip64 = true
                }
            }
        }
        var concat = location - centralSize - centralOffset
        if (zip64) concat -= ZIP64_EOCD_SIZE + ZIP64_LOCATOR_SIZE
        return longArrayOf(centralSize, centralOffset) to concat
    }

    private fun readDirectory(source: ArchiveSource): Directory {
        val (record, concat) = endRecord(source) ?: throw ArchiveException("not a valid zip archive: File is not a zip file")
        val (centralSize, centralOffset) = record.let { it[0] to it[1] }
        val start = centralOffset + concat
        if (start < 0 || centralSize < 0) throw ArchiveException("not a valid zip archive: Bad offset for central directory")
        val data = readAt(source, start, minOf(centralSize, Int.MAX_VALUE.toLong()).toInt())
        val entries = ArrayList<Entry>()
        var at = 0
        var total = 0L
        while (total < centralSize) {
            if (at + CENTRAL_SIZE > data.size) throw ArchiveException("not a valid zip archive: Truncated central directory")
            if (!data.startsAt(at, CENTRAL_MAGIC)) throw ArchiveException("not a valid zip archive: Bad magic number for central directory")
            val header = le(data, at)
            val nameLength = header.getShort(28).toInt() and 0xFFFF
            val extraLength = header.getShort(30).toInt() and 0xFFFF
            val commentLength = header.getShort(32).toInt() and 0xFFFF
            val flags = header.getShort(8).toInt() and 0xFFFF
            val rawName = data.copyOfRange(at + CENTRAL_SIZE, minOf(at + CENTRAL_SIZE + nameLength, data.size))
            val extraStart = minOf(at + CENTRAL_SIZE + nameLength, data.size)
            val extra = data.copyOfRange(extraStart, minOf(extraStart + extraLength, data.size))
            val name = decodeName(rawName, flags)
            if ((header.get(6).toInt() and 0xFF) > MAX_EXTRACT_VERSION) {
                throw UnsupportedEntryException("unsupported zip feature: zip file version ${(header.get(6).toInt() and 0xFF) / 10.0}")
            }
            val entry = Entry(
                name = name,
                ascii = rawName.all { it >= 0 },
                flags = flags,
                method = header.getShort(10).toInt() and 0xFFFF,
                createSystem = header.get(5).toInt() and 0xFF,
                crc = header.getInt(16).toLong() and U32_MAX,
                compressSize = header.getInt(20).toLong() and U32_MAX,
                fileSize = header.getInt(24).toLong() and U32_MAX,
                externalAttr = header.getInt(38).toLong() and U32_MAX,
                headerOffset = header.getInt(42).toLong() and U32_MAX,
            )
            decodeExtra(entry, extra)
            entry.headerOffset += concat
            entries.add(entry)
            val length = CENTRAL_SIZE + nameLength + extraLength + commentLength
            at += length
            total += length
        }
        return Directory(entries, start)
    }

    /** Zip64 sizes and offset from the extra field, as the reference reads them; a malformed block is refused. */
    private fun decodeExtra(entry: Entry, extra: ByteArray) {
        var at = 0
        while (extra.size - at >= 4) {
            val kind = le(extra, at).getShort(0).toInt() and 0xFFFF
            val length = le(extra, at).getShort(2).toInt() and 0xFFFF
            if (length + 4 > extra.size - at) throw ArchiveException("not a valid zip archive: Corrupt extra field %04x (size=%d)".format(kind, length))
            if (kind == 0x0001) {
                var field = at + 4
                val end = at + 4 + length
                fun next(what: String): Long {
                    if (field + 8 > end) throw ArchiveException("not a valid zip archive: Corrupt zip64 extra field. $what not found.")
                    return le(extra, field).getLong(0).also { field += 8 }
                }
                if (entry.fileSize == U32_MAX) entry.fileSize = next("File size")
                if (entry.compressSize == U32_MAX) entry.compressSize = next("Compress size")
                if (entry.headerOffset == U32_MAX) entry.headerOffset = next("Header offset")
            }
            at += length + 4
        }
    }

    private fun decodeName(raw: ByteArray, flags: Int): String {
        if (flags and UTF8_FLAG == 0) {
            // Code page 437: ASCII below 0x80. A name with other bytes is refused once checked,
            // so their exact characters never matter; ISO-8859-1 keeps them non-ASCII.
            return String(raw, Charsets.ISO_8859_1)
        }
        return try {
            Charsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(raw)).toString()
        } catch (e: CharacterCodingException) {
            throw ArchiveException("not a valid zip archive: an entry name is not valid UTF-8")
        }
    }

    private fun checkEntry(entry: Entry, limits: ArchiveLimits) {
        val name = entry.name
        if (name.endsWith("/") || entry.externalAttr and 0x10L != 0L) {
            throw UnsupportedEntryException("directory entry ${quote(name)}: archives hold files only")
        }
        ArchivePaths.check(name, limits)
        if (!entry.ascii && entry.flags and UTF8_FLAG == 0) throw UnsafePathException("non-ASCII entry name ${quote(name)} without the UTF-8 flag")
        if (entry.flags and ENCRYPTED_FLAG != 0) throw UnsupportedEntryException("encrypted entry ${quote(name)}")
        if (entry.method != STORED && entry.method != DEFLATED) {
            throw UnsupportedEntryException("entry ${quote(name)} uses compression method ${entry.method}")
        }
        if (entry.createSystem == UNIX) {
            val type = (entry.externalAttr ushr 16) and 0xF000L
            if (type != 0L && type != 0x8000L) {
                val kind = if (type == 0xA000L) "symlink" else "special file"
                throw UnsupportedEntryException("entry ${quote(name)} is a $kind")
            }
        }
    }

    /** Refuse entries whose bytes overlap each other or the central directory. */
    private fun checkLayout(source: ArchiveSource, entries: List<Entry>, start: Long) {
        val spans = entries.map { entry ->
            if (entry.headerOffset !in 0 until start) throw ArchiveException("entry ${quote(entry.name)} points outside the archive")
            val header = readAt(source, entry.headerOffset, LOCAL_SIZE)
            if (header.size != LOCAL_SIZE || !header.startsAt(0, LOCAL_MAGIC)) {
                throw ArchiveException("entry ${quote(entry.name)} has no local header")
            }
            val fields = le(header, 0)
            val end = entry.headerOffset + LOCAL_SIZE + (fields.getShort(26).toInt() and 0xFFFF) +
                (fields.getShort(28).toInt() and 0xFFFF) + entry.compressSize
            Triple(entry.headerOffset, end, entry.name)
        }.sortedWith(compareBy<Triple<Long, Long, String>>({ it.first }, { it.second }).thenComparator { a, b -> ArchivePaths.compareCodePoints(a.third, b.third) })
        for ((earlier, later) in spans.zipWithNext()) {
            if (earlier.second > later.first) {
                throw OverlappingEntriesException("entries ${quote(earlier.third)} and ${quote(later.third)} overlap")
            }
        }
        if (spans.isNotEmpty() && spans.last().second > start) throw OverlappingEntriesException("an entry overlaps the central directory")
    }

    /** Stream one entry: at most its signed size, then its CRC-32, size and sha256 are checked. */
    private fun stream(source: ArchiveSource, entry: Entry, signed: FileEntry, sink: ExtractSink): Long {
        val header = readAt(source, entry.headerOffset, LOCAL_SIZE)
        if (header.size != LOCAL_SIZE) throw ArchiveException("not a valid zip archive: Truncated file header")
        if (!header.startsAt(0, LOCAL_MAGIC)) throw ArchiveException("not a valid zip archive: Bad magic number for file header")
        val fields = le(header, 0)
        val nameLength = fields.getShort(26).toInt() and 0xFFFF
        val extraLength = fields.getShort(28).toInt() and 0xFFFF
        val localName = readAt(source, entry.headerOffset + LOCAL_SIZE, nameLength)
        if (entry.flags and PATCHED_FLAG != 0) throw UnsupportedEntryException("unsupported zip feature: compressed patched data (flag bit 5)")
        if (entry.flags and STRONG_ENCRYPTION_FLAG != 0) throw UnsupportedEntryException("unsupported zip feature: strong encryption (flag bit 6)")
        if (decodeName(localName, fields.getShort(6).toInt() and 0xFFFF) != entry.name) {
            throw ArchiveException("not a valid zip archive: File name in directory and header differ")
        }
        var position = entry.headerOffset + LOCAL_SIZE + localName.size + extraLength
        var compressLeft = entry.compressSize
        var left = entry.fileSize
        val crc = CRC32()
        val digest = MessageDigest.getInstance("SHA-256")
        val inflater = if (entry.method == DEFLATED) Inflater(true) else null
        val input = ByteArray(CHUNK)
        val output = ByteArray(CHUNK)
        var written = 0L
        sink.begin(signed)
        try {
            var eof = left <= 0 && compressLeft <= 0
            while (!eof) {
                val produced: Int
                if (inflater == null) {
                    val want = minOf(left, compressLeft, CHUNK.toLong()).toInt()
                    val got = if (want > 0) source.read(position, output, 0, want) else 0
                    if (want > 0 && got == 0) throw ArchiveException("not a valid zip archive: the entry's data ends early")
                    position += got
                    compressLeft -= got
                    produced = got
                    eof = compressLeft <= 0
                } else {
                    if (inflater.needsInput() && compressLeft > 0) {
                        val got = source.read(position, input, 0, minOf(compressLeft, CHUNK.toLong()).toInt())
                        if (got == 0) throw ArchiveException("not a valid zip archive: the entry's data ends early")
                        position += got
                        compressLeft -= got
                        inflater.setInput(input, 0, got)
                    }
                    produced = try {
                        inflater.inflate(output, 0, minOf(left, CHUNK.toLong()).toInt().coerceAtLeast(1))
                    } catch (e: DataFormatException) {
                        throw ArchiveException("not a valid zip archive: ${e.message}")
                    }
                    if (inflater.needsDictionary()) throw ArchiveException("not a valid zip archive: a preset dictionary")
                    // All input read and nothing more comes out: what zlib held back is flushed (it was).
                    eof = inflater.finished() || (compressLeft <= 0 && inflater.needsInput() && produced == 0)
                }
                val kept = minOf(produced.toLong(), left).toInt()
                left -= kept
                if (left <= 0) eof = true
                crc.update(output, 0, kept)
                digest.update(output, 0, kept)
                written += kept
                if (written > signed.size) throw TooLargeException("bytes written for ${signed.path}", signed.size)
                sink.write(output, 0, kept)
            }
        } finally {
            inflater?.end()
        }
        if (crc.value != entry.crc) throw ArchiveException("not a valid zip archive: Bad CRC-32 for file ${quote(entry.name)}")
        if (written != signed.size) throw HashMismatchException("${signed.path}: $written bytes, manifest says ${signed.size}")
        val hex = digest.digest().joinToString("") { "%02x".format(it) }
        if (hex != signed.sha256) throw HashMismatchException("${signed.path}: sha256 differs from the signed manifest")
        sink.end(signed)
        return written
    }

    private val EOCD_MAGIC = byteArrayOf(0x50, 0x4B, 0x05, 0x06)
    private val ZIP64_LOCATOR_MAGIC = byteArrayOf(0x50, 0x4B, 0x06, 0x07)
    private val ZIP64_EOCD_MAGIC = byteArrayOf(0x50, 0x4B, 0x06, 0x06)
    private val CENTRAL_MAGIC = byteArrayOf(0x50, 0x4B, 0x01, 0x02)
    private val LOCAL_MAGIC = byteArrayOf(0x50, 0x4B, 0x03, 0x04)

    private fun quote(name: String) = "'${name.take(80)}'"

    private fun le(data: ByteArray, at: Int): ByteBuffer = ByteBuffer.wrap(data, at, data.size - at).slice().order(ByteOrder.LITTLE_ENDIAN)

    private fun ByteArray.startsAt(at: Int, magic: ByteArray): Boolean =
        at >= 0 && at + magic.size <= size && magic.indices.all { this[at + it] == magic[it] }

    private fun lastIndexOf(data: ByteArray, magic: ByteArray, before: Int): Int {
        var at = minOf(before, data.size) - 1
        while (at >= 0) {
            if (data.startsAt(at, magic)) return at
            at--
        }
        return -1
    }

    /** Up to [length] bytes at [position] (fewer at the end of the source). */
    private fun readAt(source: ArchiveSource, position: Long, length: Int): ByteArray {
        if (position < 0 || length <= 0) return ByteArray(0)
        val buffer = ByteArray(minOf(length.toLong(), maxOf(source.size - position, 0)).toInt())
        var done = 0
        while (done < buffer.size) {
            val got = source.read(position + done, buffer, done, buffer.size - done)
            if (got <= 0) break
            done += got
        }
        return if (done == buffer.size) buffer else buffer.copyOf(done)
    }
}

/** The sha256 (hex) of everything in [source]. */
fun sha256Of(source: ArchiveSource): String {
    val digest = MessageDigest.getInstance("SHA-256")
    source.forEachChunk { buffer, count -> digest.update(buffer, 0, count) }
    return digest.digest().joinToString("") { "%02x".format(it) }
}
