package dev.hotpatch.core

import java.io.IOException

/**
 * The durable queue of installation reports (hotpatch_client.reports):
 * written before the state moves, sent at least once. A report's id comes
 * from (device, release, status, phase), so the same outcome queued twice is
 * one file, and one row on the server (`POST /installations` is idempotent
 * on the id).
 */
class ReportQueue(private val fs: FileSystem, private val appId: String, private val deviceId: String) {
    companion object {
        const val MAX_REASON_CHARS = 500
        const val MAX_REPORT_BYTES = 16L * 1024

        /** The stable id of [report] from [deviceId]: 32 hex digits of a sha256. */
        fun reportId(deviceId: String, report: Action.Report): String =
            sha256Hex("$deviceId\n${report.manifestId}\n${report.status.wire}\n${report.phase?.wire ?: ""}".toByteArray(Charsets.UTF_8)).take(32)
    }

    private val storage = DeviceStorage(fs)

    /** Write [report] durably as the JSON body `POST /installations` takes; return its id. */
    fun put(report: Action.Report): String {
        val id = reportId(deviceId, report)
        val members = linkedMapOf<String, Json>(
            "id" to Json.Str(id),
            "appId" to Json.Str(appId),
            "deviceId" to Json.Str(deviceId),
            "manifestId" to Json.Str(report.manifestId),
            "status" to Json.Str(report.status.wire),
        )
        report.phase?.let { members["phase"] = Json.Str(it.wire) }
        members["reason"] = Json.Str(truncate(report.reason))
        report.patchedFrom?.let { members["patchedFrom"] = Json.Str(it) }
        fs.mkdir(DeviceStorage.REPORTS)
        storage.writeAtomic("${DeviceStorage.REPORTS}/$id.json", StrictJson.canonical(Json.Obj(members)))
        return id
    }

    /** The queued reports (path and body), by name; an unreadable one is dropped. */
    fun pending(): List<Pair<String, ByteArray>> = fs.list(DeviceStorage.REPORTS).filter { it.endsWith(".json") }.mapNotNull { name ->
        val path = "${DeviceStorage.REPORTS}/$name"
        try {
            if ((fs.size(path) ?: 0) > MAX_REPORT_BYTES) throw TooLargeException("report", MAX_REPORT_BYTES)
            val body = fs.openRead(path).use { file ->
                ByteArray(file.size.toInt()).also { file.read(0, it, 0, it.size) }
            }
            StrictJson.parse(body) as? Json.Obj ?: throw SchemaException("a report is a JSON object", "")
            path to body
        } catch (e: HotPatchException) {
            fs.remove(path)
            null
        }
    }

    /** Remove a report the server answered (taken, or refused for good). */
    fun remove(path: String) {
        try {
            fs.remove(path)
        } catch (e: IOException) {
            // sent again next time: the server keeps one row per id
        }
    }

    /** The first [MAX_REASON_CHARS] code points, never half a surrogate pair. */
    private fun truncate(reason: String): String {
        if (reason.codePointCount(0, reason.length) <= MAX_REASON_CHARS) return reason
        return reason.substring(0, reason.offsetByCodePoints(0, MAX_REASON_CHARS))
    }
}
