package dev.hotpatch.core

import java.security.MessageDigest
import java.time.Instant

/** The platforms a React Native bundle is built for, and the bundle file each starts. */
enum class Platform(val wire: String, val entryFile: String) {
    ANDROID("android", "index.android.bundle"),
    IOS("ios", "main.jsbundle"),
    ;

    companion object {
        fun of(text: String): Platform =
            entries.firstOrNull { it.wire == text } ?: throw SchemaException("'${text.take(40)}' is not one of 'android', 'ios'", "platform")
    }
}

/** One file of a release: its relative path, sha256 (hex) and size in bytes. */
data class FileEntry(val path: String, val sha256: String, val size: Long)

/** The archive a manifest signs: its sha256, byte length, uncompressed size and file count. */
data class ArchiveInfo(val sha256: String, val length: Long, val uncompressedSize: Long, val fileCount: Long)

/** What a publisher signs for one release (docs/spec/manifest.md), as hotpatch_core.manifest. */
data class ReleaseManifest(
    val appId: String,
    val platform: Platform,
    val channel: String,
    val binaryRange: BinaryRange,
    val version: String,
    val epoch: Long,
    val sequence: Long,
    val archive: ArchiveInfo,
    val files: List<FileEntry>,
    val createdAt: Instant,
    val mandatory: Boolean,
    val rollbackOf: String?,
    val expiresAt: Instant?,
)

/** Decoding release manifests strictly; every rule of the reference, every error its class. */
object Manifests {
    const val PAYLOAD_TYPE = "application/vnd.hotpatch.release+json"
    const val FORMAT = 1L
    const val MAX_MANIFEST_BYTES = 4 * 1024 * 1024
    private val APP_ID = Regex("[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
    private val CHANNEL = Regex("[a-z0-9][a-z0-9._-]{0,63}")
    internal val SHA256 = Regex("[0-9a-f]{64}")

    /** A manifest's id: the sha256 (hex) of its exact signed bytes. */
    fun manifestId(body: ByteArray): String = sha256Hex(body)

    /** Parse manifest bytes strictly. Call only on bytes whose signature verified. */
    fun decode(body: ByteArray): ReleaseManifest {
        if (body.size > MAX_MANIFEST_BYTES) throw TooLargeException("manifest bytes", MAX_MANIFEST_BYTES.toLong())
        val fields = Fields.ofDocument(body, FORMAT, "manifest")
        val limits = ArchiveLimits.DEFAULT
        val manifest = ReleaseManifest(
            appId = fields.matching("appId", APP_ID, "an app id like com.acme.shop"),
            platform = Platform.of(fields.string("platform")),
            channel = fields.matching("channel", CHANNEL, "a channel like production"),
            binaryRange = fields.string("binaryRange").let { text ->
                try {
                    BinaryRange.parse(text)
                } catch (e: VersionSyntaxException) {
                    throw SchemaException(e.message ?: "not a binary range", "binaryRange")
                }
            },
            version = fields.string("version").also { text ->
                try {
                    Version.parse(text)
                } catch (e: VersionSyntaxException) {
                    throw SchemaException(e.message ?: "not a version", "version")
                }
            },
            epoch = fields.between("epoch", 1, Long.MAX_VALUE),
            sequence = fields.between("sequence", 1, Long.MAX_VALUE),
            archive = archive(Fields(fields.obj("archive"), "archive"), limits),
            files = fields.list("files").mapIndexed { i, item -> file(item, "files[$i]", limits) },
            createdAt = fields.time("createdAt") ?: throw SchemaException("required field is missing", "createdAt"),
            mandatory = fields.bool("mandatory", false),
            rollbackOf = fields.optional("rollbackOf")?.let { fields.matching("rollbackOf", SHA256, "64 lowercase hex digits") },
            expiresAt = fields.time("expiresAt"),
        )
        consistent(manifest)
        return manifest
    }

    private fun archive(fields: Fields, limits: ArchiveLimits) = ArchiveInfo(
        sha256 = fields.matching("sha256", SHA256, "64 lowercase hex digits"),
        length = fields.between("length", 22, limits.maxTotalBytes),
        uncompressedSize = fields.between("uncompressedSize", 0, limits.maxTotalBytes),
        fileCount = fields.between("fileCount", 1, limits.maxFiles.toLong()),
    )

    private fun file(value: Json, at: String, limits: ArchiveLimits): FileEntry {
        val fields = Fields((value as? Json.Obj)?.members ?: throw SchemaException("expected an object", at), at)
        val path = fields.string("path")
        try {
            ArchivePaths.check(path, limits)
        } catch (e: UnsafePathException) {
            throw SchemaException(e.message ?: "unsafe path", at)
        }
        return FileEntry(
            path = path,
            sha256 = fields.matching("sha256", SHA256, "64 lowercase hex digits"),
            size = fields.between("size", 0, limits.maxTotalBytes),
        )
    }

    private fun consistent(manifest: ReleaseManifest) {
        val paths = manifest.files.map { it.path }
        if (paths != paths.sortedWith(ArchivePaths::compareCodePoints)) throw SchemaException("files must be sorted by path", "files")
        try {
            ArchivePaths.checkCollisions(paths)
        } catch (e: DuplicateEntryException) {
            throw SchemaException(e.message ?: "colliding paths", "files")
        }
        if (paths.size.toLong() != manifest.archive.fileCount) {
            throw SchemaException("declares ${manifest.archive.fileCount} files, lists ${paths.size}", "archive.fileCount")
        }
        val total = manifest.files.sumOf { it.size }
        if (total != manifest.archive.uncompressedSize) {
            throw SchemaException("declares ${manifest.archive.uncompressedSize} bytes, files sum to $total", "archive.uncompressedSize")
        }
    }
}

internal fun sha256Hex(data: ByteArray): String =
    MessageDigest.getInstance("SHA-256").digest(data).joinToString("") { "%02x".format(it) }
