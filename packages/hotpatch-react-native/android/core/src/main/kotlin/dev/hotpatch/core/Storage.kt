package dev.hotpatch.core

import java.io.Closeable
import java.io.File
import java.io.FileOutputStream
import java.io.IOException
import java.io.RandomAccessFile
import java.nio.channels.FileChannel
import java.nio.file.StandardCopyOption
import java.nio.file.StandardOpenOption

/** A file being written; nothing in it is durable before [sync]. */
interface WritableFile : Closeable {
    fun write(data: ByteArray, offset: Int = 0, length: Int = data.size)

    fun sync()
}

/** A file opened for reading at chosen offsets. */
interface ReadableFile : ArchiveSource, Closeable

/**
 * The app-private files a device keeps, by relative path (`releases/<id>/files/...`).
 * Real devices use [JvmFileSystem] over the app's files directory; tests use a
 * model that keeps only what was synced, to cut the power at every operation.
 * Every method throws [IOException] when the storage fails.
 */
interface FileSystem {
    /** Create or truncate a file. */
    fun create(path: String): WritableFile

    /** Open an existing file to add at its end (a download being resumed). */
    fun append(path: String): WritableFile

    fun openRead(path: String): ReadableFile

    /** A file's size, or null if there is no such file. */
    fun size(path: String): Long?

    /** The sorted names in a directory; empty if there is none. */
    fun list(path: String): List<String>

    /** Create a directory if missing (its parent must exist). */
    fun mkdir(path: String)

    /** Make a directory's entries (creations, renames, removals) durable. */
    fun syncDirectory(path: String)

    /** Move [source] over [target] atomically. */
    fun replace(source: String, target: String)

    /** Remove a file if present. */
    fun remove(path: String)

    /** Remove a directory tree (or a file) if present. */
    fun removeTree(path: String)
}

/** [FileSystem] over a real directory: fsync through the file descriptor, directories through a read channel. */
class JvmFileSystem(private val root: File) : FileSystem {
    private fun at(path: String) = if (path.isEmpty()) root else File(root, path)

    override fun create(path: String): WritableFile = writable(FileOutputStream(at(path)))

    override fun append(path: String): WritableFile = writable(FileOutputStream(at(path), true))

    private fun writable(stream: FileOutputStream): WritableFile {
        return object : WritableFile {
            override fun write(data: ByteArray, offset: Int, length: Int) = stream.write(data, offset, length)

            override fun sync() = stream.fd.sync()

            override fun close() = stream.close()
        }
    }

    override fun openRead(path: String): ReadableFile {
        val file = RandomAccessFile(at(path), "r")
        val source = ArchiveSource.OpenFile(file)
        return object : ReadableFile, ArchiveSource by source {
            override fun close() = file.close()
        }
    }

    override fun size(path: String): Long? = at(path).takeIf { it.isFile }?.length()

    override fun list(path: String): List<String> = at(path).list()?.sorted() ?: emptyList()

    override fun mkdir(path: String) {
        val dir = at(path)
        if (!dir.isDirectory && !dir.mkdir()) throw IOException("could not create ${dir.path}")
    }

    /** Linux (and Android) make a directory's entries durable by fsyncing the directory itself. */
    override fun syncDirectory(path: String) {
        FileChannel.open(at(path).toPath(), StandardOpenOption.READ).use { it.force(true) }
    }

    override fun replace(source: String, target: String) {
        java.nio.file.Files.move(at(source).toPath(), at(target).toPath(), StandardCopyOption.ATOMIC_MOVE)
    }

    override fun remove(path: String) {
        val file = at(path)
        if (file.isFile && !file.delete()) throw IOException("could not remove ${file.path}")
    }

    override fun removeTree(path: String) {
        val file = at(path)
        if (file.exists() && !file.deleteRecursively()) throw IOException("could not remove ${file.path}")
    }
}

/** A file of an installed bundle changed after it was written and synced: the device's fault, not the release's. */
class LocalTamperingException(message: String) : HashMismatchException(message, "LocalTamperingError")

/** What `state.json` holds: the machine's state and this installation's device id. */
data class StoredState(val deviceId: String, val state: DeviceState)

/**
 * The device's storage layout and its durable operations, as the Python
 * agent's (hotpatch_client.storage and .install), so both read each other's
 * files:
 *
 * ```
 * state.json                    the one pointer (device id + state), replaced atomically
 * releases/<manifest id>/       an installed bundle, never modified once renamed into place
 *     envelope                  the signed release envelope it was installed from
 *     files/...                 the verified files of the archive
 * releases/.staging-<id>/       an install in progress (removed at startup)
 * downloads/<manifest id>.part  the archive being downloaded
 * reports/<report id>.json      installation reports waiting to be sent
 * ```
 *
 * Every durable write is: a temporary file, synced, renamed over the target,
 * the directory synced. Nothing is truncated in place.
 */
class DeviceStorage(private val fs: FileSystem) {
    companion object {
        const val STATE = "state.json"
        const val RELEASES = "releases"
        const val DOWNLOADS = "downloads"
        const val REPORTS = "reports"
        const val ENVELOPE = "envelope"
        const val FILES = "files"
        const val STAGING_PREFIX = ".staging-"
        const val TMP_SUFFIX = ".tmp"
        const val STATE_FORMAT = 1L
        const val MAX_STATE_BYTES = 4L * 1024 * 1024

        fun releaseDir(manifestId: String) = "$RELEASES/$manifestId"

        fun downloadPath(manifestId: String) = "$DOWNLOADS/$manifestId.part"
    }

    /** Where the files of installed bundle [manifestId] are (the JS engine's bundle is below it). */
    fun filesOf(manifestId: String) = "${releaseDir(manifestId)}/$FILES"

    /** Replace [path] with [data] durably. */
    fun writeAtomic(path: String, data: ByteArray) {
        val temporary = path + TMP_SUFFIX
        fs.create(temporary).use { file ->
            file.write(data)
            file.sync()
        }
        fs.replace(temporary, path)
        fs.syncDirectory(path.substringBeforeLast('/', ""))
    }

    /** Persist [stored] atomically, in the canonical JSON the Python agent writes. */
    fun saveState(stored: StoredState) {
        val document = Json.Obj(
            mapOf("format" to Json.Int(STATE_FORMAT), "deviceId" to Json.Str(stored.deviceId), "state" to StateCodec.encode(stored.state)),
        )
        writeAtomic(STATE, StrictJson.canonical(document))
    }

    /**
     * Read `state.json`; null if there is none. One that cannot be read (it is
     * never written in place, so the storage itself was damaged) is moved aside
     * to `state.json.corrupt` and the device starts over on its embedded bundle:
     * an app that cannot read its update state must still start.
     */
    fun loadState(): StoredState? {
        val size = fs.size(STATE) ?: return null
        return try {
            if (size > MAX_STATE_BYTES) throw TooLargeException("state.json", MAX_STATE_BYTES)
            val data = fs.openRead(STATE).use { it.readBytes() }
            val document = StrictJson.parse(data) as? Json.Obj ?: throw SchemaException("state.json is not an object", "")
            if ((document.members["format"] as? Json.Int)?.value != STATE_FORMAT) throw UnsupportedFormatException("state.json has an unknown format")
            val deviceId = (document.members["deviceId"] as? Json.Str)?.value ?: throw SchemaException("state.json has no device id", "deviceId")
            val stored = StoredState(deviceId, StateCodec.decode(document.members["state"] ?: Json.Null))
            try {
                // A process killed before its directory sync leaves a state the next one sees but a power cut would undo.
                fs.syncDirectory("")
            } catch (e: IOException) {
                // a read-only disk: the next write fails loudly instead
            }
            stored
        } catch (e: HotPatchException) {
            fs.replace(STATE, "$STATE.corrupt")
            fs.syncDirectory("")
            null
        }
    }

    /**
     * Remove what a crash left behind; return what was removed. Idempotent.
     * Only what [state] does not reference goes: temporary files, staging
     * directories, release directories of no installed bundle (a crash after
     * the rename, before the state was saved), and downloads other than the
     * current offer's. A removal that fails is retried at the next start.
     */
    fun recover(state: DeviceState): List<String> {
        val keep = state.installed().map { it.manifestId }.toSet()
        val offer = state.offer?.bundle?.manifestId
        val doomed = fs.list("").filter { it.endsWith(TMP_SUFFIX) }.map { it to false } +
            fs.list(RELEASES).filter { it !in keep }.map { "$RELEASES/$it" to true } +
            fs.list(DOWNLOADS).filter { offer == null || it != "$offer.part" }.map { "$DOWNLOADS/$it" to false } +
            fs.list(REPORTS).filter { it.endsWith(TMP_SUFFIX) }.map { "$REPORTS/$it" to false }
        val removed = mutableListOf<String>()
        for ((path, tree) in doomed) {
            try {
                if (tree) fs.removeTree(path) else fs.remove(path)
                removed.add(path)
            } catch (e: IOException) {
                continue // leftovers are never used, only wasted space
            }
        }
        return removed
    }

    /**
     * Install [release] from its archive [source] (the very bytes that were
     * hashed, kept open since): every file is extracted into a staging
     * directory, synced and read back against its signed hash; every
     * directory is synced; only then is the staging directory renamed to
     * `releases/<id>` and `releases` synced. The caller then saves the state
     * that points at it; until then, [recover] treats it as an orphan.
     * Throws the extractor's errors (the signed content is unusable),
     * [LocalTamperingException], or [IOException]; the staging directory is
     * removed on failure. [progress] gets (bytes written, bytes in all).
     */
    fun install(release: VerifiedRelease, source: ArchiveSource, progress: (Long, Long) -> Unit = { _, _ -> }): String {
        val manifest = release.manifest
        val limits = ArchiveLimits(
            maxFiles = maxOf(1L, manifest.archive.fileCount).toInt(),
            maxTotalBytes = maxOf(1L, manifest.archive.uncompressedSize),
        )
        return stage(release, progress) { sink -> Archives.extract(source, manifest.files, sink, limits) }
    }

    /**
     * Install [release] by applying [patch] to [base] (an installed bundle or the embedded one),
     * staged exactly as [install] stages an archive: every produced file is capped at and checked
     * against the signed manifest ([Patches.apply]), synced and read back. Throws the patch's
     * errors ([PatchFormatException], [WrongBaseException], [TooLargeException],
     * [HashMismatchException]), [LocalTamperingException] or [IOException]; nothing is left behind.
     */
    fun installFromPatch(release: VerifiedRelease, patch: ByteArray, base: PatchBase, progress: (Long, Long) -> Unit = { _, _ -> }): String =
        stage(release, progress) { sink -> Patches.apply(patch, base, release.manifestId, release.manifest.files, sink) }

    /** Installed bundle [manifestId] as a patch base: its signed file list (from its stored envelope) and its files. */
    fun patchBase(manifestId: String): PatchBase {
        val envelope = fs.openRead("${releaseDir(manifestId)}/$ENVELOPE").use { it.readBytes(Releases.MAX_RELEASE_ENVELOPE_BYTES + 1L) }
        val files = Manifests.decode(Envelopes.decode(envelope, Releases.MAX_RELEASE_ENVELOPE_BYTES).payload).files
        val root = filesOf(manifestId)
        return PatchBase(manifestId, files) { entry -> fs.openRead("$root/${entry.path}").use { it.readBytes(entry.size + 1) } }
    }

    /** Stage [release]'s files as [produce] writes them into the sink, then move the bundle into place. */
    private fun stage(release: VerifiedRelease, progress: (Long, Long) -> Unit, produce: (ExtractSink) -> Unit): String {
        val manifest = release.manifest
        val staging = "$RELEASES/$STAGING_PREFIX${release.manifestId}"
        val final = releaseDir(release.manifestId)
        fs.mkdir(RELEASES)
        fs.removeTree(staging)
        fs.mkdir(staging)
        try {
            fs.mkdir("$staging/$FILES")
            val sink = DirectorySink("$staging/$FILES", manifest.archive.uncompressedSize, progress)
            try {
                progress(0, manifest.archive.uncompressedSize)
                produce(sink)
            } finally {
                sink.close()
            }
            fs.create("$staging/$ENVELOPE").use { file ->
                file.write(release.envelope)
                file.sync()
            }
            (sink.directories + staging).sortedByDescending { it.count { c -> c == '/' } }.forEach { fs.syncDirectory(it) }
            fs.removeTree(final) // an orphan of an earlier crash, never a referenced bundle
            fs.replace(staging, final)
            fs.syncDirectory(RELEASES)
        } catch (e: Throwable) {
            try {
                fs.removeTree(staging)
            } catch (ignored: IOException) {
                // startup recovery removes it
            }
            throw e
        }
        return final
    }

    /** Check every file of installed bundle [manifestId] against its signed hash and size. */
    fun verifyInstalled(manifestId: String, files: List<FileEntry>) {
        val root = filesOf(manifestId)
        for (entry in files) {
            val path = "$root/${entry.path}"
            if (fs.size(path) != entry.size) throw LocalTamperingException("${entry.path}: size differs from the signed manifest")
            if (fs.openRead(path).use { digest(it) } != entry.sha256) {
                throw LocalTamperingException("${entry.path}: sha256 differs from the signed manifest")
            }
        }
    }

    /** Writes verified files below [root]: each is synced, read back against its signed hash (A15), closed. */
    private inner class DirectorySink(private val root: String, private val total: Long, private val progress: (Long, Long) -> Unit) : ExtractSink, Closeable {
        val directories = mutableListOf(root)
        private var file: WritableFile? = null
        private var written = 0L

        override fun begin(entry: FileEntry) {
            val parts = entry.path.split("/")
            for (depth in 1 until parts.size) {
                val directory = "$root/${parts.subList(0, depth).joinToString("/")}"
                if (directory !in directories) {
                    fs.mkdir(directory)
                    directories.add(directory)
                }
            }
            file = fs.create("$root/${entry.path}")
        }

        override fun write(data: ByteArray, offset: Int, length: Int) {
            (file ?: error("begin() comes first")).write(data, offset, length)
            written += length
            progress(written, total)
        }

        override fun end(entry: FileEntry) {
            val current = file ?: error("begin() comes first")
            file = null
            current.use { it.sync() }
            val path = "$root/${entry.path}"
            if (fs.size(path) != entry.size || fs.openRead(path).use { digest(it) } != entry.sha256) {
                throw LocalTamperingException("${entry.path}: changed after it was written")
            }
        }

        override fun close() {
            file?.close()
            file = null
        }
    }

    private fun digest(source: ArchiveSource): String = sha256Of(source)
}
