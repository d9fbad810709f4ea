package dev.hotpatch.core

import java.io.ByteArrayInputStream
import java.io.ByteArrayOutputStream
import java.io.Closeable
import java.io.IOException
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.URI
import java.net.URL
import java.net.URLEncoder
import java.security.MessageDigest
import java.security.SecureRandom
import java.time.Instant
import java.util.Base64

/** The server could not be reached or answered outside the protocol; [retryable] when a later try may work. */
class NetworkException(message: String, val retryable: Boolean = true) : HotPatchException(message) {
    override val reason: String get() = "NetworkError"
}

/** The device's storage failed (full, read-only): nothing was installed. */
class StorageException(message: String) : HotPatchException(message) {
    override val reason: String get() = "StorageError"
}

/** One HTTP answer: its status, headers (names in lower case) and body, read once. */
class HttpResponse(val status: Int, val headers: Map<String, String>, val body: InputStream) : Closeable {
    override fun close() = body.close()
}

/** The agent's HTTP: GET with headers, and a JSON POST. */
interface Http {
    fun get(url: String, headers: Map<String, String> = emptyMap()): HttpResponse

    /** POST [body] as JSON; return the status code. */
    fun postJson(url: String, body: ByteArray): Int
}

/** [Http] over `HttpURLConnection` (the JVM's and Android's own), with connect and read timeouts. */
class UrlConnectionHttp(private val connectTimeoutMillis: Int = 15_000, private val readTimeoutMillis: Int = 30_000) : Http {
    private fun open(url: String): HttpURLConnection = (URL(url).openConnection() as HttpURLConnection).apply {
        connectTimeout = connectTimeoutMillis
        readTimeout = readTimeoutMillis
        instanceFollowRedirects = true
        setRequestProperty("Accept-Encoding", "identity")
    }

    override fun get(url: String, headers: Map<String, String>): HttpResponse {
        val connection = open(url)
        headers.forEach { (name, value) -> connection.setRequestProperty(name, value) }
        val status = connection.responseCode
        val names = connection.headerFields.filterKeys { it != null }.mapKeys { it.key.lowercase() }.mapValues { it.value.last() }
        val body = (if (status >= 400) connection.errorStream else connection.inputStream) ?: ByteArrayInputStream(ByteArray(0))
        return HttpResponse(status, names, body)
    }

    override fun postJson(url: String, body: ByteArray): Int {
        val connection = open(url)
        connection.requestMethod = "POST"
        connection.doOutput = true
        connection.setRequestProperty("Content-Type", "application/json")
        connection.setFixedLengthStreamingMode(body.size)
        connection.outputStream.use { it.write(body) }
        val status = connection.responseCode
        ((if (status >= 400) connection.errorStream else connection.inputStream) ?: ByteArrayInputStream(ByteArray(0))).use { it.readBytes() }
        return status
    }
}

/** What the app build fixes for its updates (the integration guide shows where each comes from). */
data class AgentConfig(
    val serverUrl: String,
    val appId: String,
    val platform: Platform,
    val nativeVersion: String,
    /** The trust root envelope the binary embeds. */
    val trustRoot: ByteArray,
    val channel: String = "production",
    val crashThreshold: Int = 2,
    /** The archive path of the bundle the JS engine loads (null: the platform's). */
    val bundleFile: String? = null,
    /** A fixed device id (tests); null: a random one, kept in `state.json`. */
    val deviceId: String? = null,
    /** Limits on each download (deadline, minimum throughput, retries). */
    val download: DownloadPolicy = DownloadPolicy(),
    /**
     * The bundle shipped in the binary, read back byte for byte, as registered with
     * `hotpatch embedded register`: a device still on it may take its first update as a
     * patch from it. Null: the first update is always the whole archive.
     */
    val embedded: EmbeddedBundle? = null,
)

/** At most [limit] bytes of this stream (`readNBytes` is Android API 33 and newer). */
internal fun InputStream.readAtMost(limit: Long): ByteArray {
    val out = ByteArrayOutputStream()
    val buffer = ByteArray(64 * 1024)
    while (out.size() < limit) {
        val got = read(buffer, 0, minOf(buffer.size.toLong(), limit - out.size()).toInt())
        if (got < 0) break
        out.write(buffer, 0, got)
    }
    return out.toByteArray()
}

/**
 * The bundle shipped in the app binary, as files the app can read back exactly as they were
 * registered (on Android, files in the APK's `assets/`, which the build does not rewrite).
 */
interface EmbeddedBundle {
    /** Its files, named by their paths in a release (`index.android.bundle`). */
    val paths: List<String>

    /** Open one of [paths]; an [IOException] when it cannot be read. */
    fun open(path: String): InputStream
}

/**
 * Limits on one archive download (times in milliseconds), as the reference's
 * `DownloadPolicy`: [deadlineMillis] bounds every attempt together; a server
 * sending less than [minBytesPerSecond] over a [throughputWindowMillis] is
 * abandoned; a retryable failure is tried again up to [retries] times in a
 * row, after a backoff that doubles from [backoffMillis] up to [maxBackoffMillis].
 */
data class DownloadPolicy(
    val deadlineMillis: Long = 600_000,
    val minBytesPerSecond: Long = 1024,
    val throughputWindowMillis: Long = 30_000,
    val retries: Int = 4,
    val backoffMillis: Long = 1_000,
    val maxBackoffMillis: Long = 60_000,
)

/** Monotonic time and sleeping, injectable for tests. */
interface Timer {
    fun monotonicMillis(): Long

    fun sleep(millis: Long)

    object System : Timer {
        override fun monotonicMillis(): Long = java.lang.System.nanoTime() / 1_000_000

        override fun sleep(millis: Long) = Thread.sleep(millis)
    }
}

enum class SyncStatus { UP_TO_DATE, STAGED, RESTART_REQUESTED, FAILED }

/** What a sync did: its outcome, the release it took (if any), the refusal or failure, and the reports sent. */
data class SyncResult(
    val status: SyncStatus,
    val manifestId: String? = null,
    val version: String? = null,
    val error: HotPatchException? = null,
    val reportsSent: Int = 0,
)

/**
 * Drives one device's updates, as the Python agent (hotpatch_client.Agent)
 * does: it feeds events to [Machine.step], saves the state durably, and
 * only then performs the actions (fetch a root, ask for an update, download,
 * install, report). The native adapter calls [onLaunch] before React Native
 * starts, gives React Native [bundlePath], and [notifyReady] after the first
 * render; [sync] runs on a background thread. When the server offers a patch
 * from a bundle this device has installed, the machine may ask for it
 * ([Action.FetchPatch]): the agent downloads it (capped at its offered size)
 * and builds the release from it, every file checked against the signed
 * manifest; any failure is reported and the archive is downloaded instead.
 * A device still on the bundle in its binary takes a patch from it when
 * [AgentConfig.embedded] reads that bundle and its id (hashed when an offer
 * first names a base, [EmbeddedBundles.id]) is the offer's base.
 */
class Agent(
    private val config: AgentConfig,
    private val fs: FileSystem,
    private val http: Http = UrlConnectionHttp(),
    private val clock: () -> Instant = Instant::now,
    private val restart: () -> Unit = {},
    private val timer: Timer = Timer.System,
) {
    private val random = SecureRandom()
    private var device = DeviceConfig(
        identity = DeviceIdentity(config.appId, config.platform, config.channel, Version.parseNative(config.nativeVersion)),
        trustRoot = TrustRoots.load(config.trustRoot),
        crashThreshold = config.crashThreshold,
        bundleFile = config.bundleFile,
    )
    private val storage = DeviceStorage(fs)
    private val lock = Any()
    private val updating = Any()
    private var state = DeviceState()
    private var deviceId = ""
    private var reports: ReportQueue? = null
    private var loaded = false

    /** The last saved state (diagnostics and tests). */
    val currentState: DeviceState get() = synchronized(lock) { state }

    /** This installation's id, as reported to the server. */
    val id: String get() = synchronized(lock) { ensureLoaded(); deviceId }

    /**
     * Count this launch and pick its bundle; return the path (below the
     * storage root) of the file the JS engine loads, or null for the bundle
     * embedded in the binary. Call it before React Native starts. If it
     * throws, start the embedded bundle.
     */
    fun onLaunch(): String? = synchronized(lock) {
        ensureLoaded()
        feed(Event.Launched(Version.parseNative(config.nativeVersion)))
        bundlePath()
    }

    /** The file of the bundle [onLaunch] chose, or null for the embedded one (also when its file has gone). */
    fun bundlePath(): String? = synchronized(lock) {
        if (!state.launched) throw IllegalTransitionException("bundlePath() before onLaunch()")
        val running = state.running ?: return null
        val path = "${storage.filesOf(running.manifestId)}/${device.entryFile}"
        if (fs.size(path) == null) null else path
    }

    /** Confirm the running bundle: call it once the app has rendered its first screen. */
    fun notifyReady() {
        synchronized(lock) {
            ensureLoaded()
            feed(Event.Ready)
        }
    }

    /** Check, download and stage an update, then send queued reports. Never throws for a failed update. */
    fun sync(progress: (stage: String, done: Long, total: Long) -> Unit = { _, _, _ -> }): SyncResult = synchronized(updating) {
        var result = try {
            val release = checkForUpdate()
            if (release == null) {
                SyncResult(SyncStatus.UP_TO_DATE)
            } else {
                val restarted = downloadUpdate(release.manifestId, progress)
                SyncResult(if (restarted) SyncStatus.RESTART_REQUESTED else SyncStatus.STAGED, release.manifestId, release.manifest.version)
            }
        } catch (e: HotPatchException) {
            SyncResult(SyncStatus.FAILED, error = e)
        }
        result = result.copy(reportsSent = flushReports())
        result
    }

    /** Send queued installation reports; return how many the server took. */
    fun flushReports(): Int {
        val queue = synchronized(lock) { ensureLoaded(); reports!! }
        var sent = 0
        for ((path, body) in queue.pending()) {
            val status = try {
                http.postJson(url("/installations"), body)
            } catch (e: IOException) {
                break // unreachable: keep the rest for later too
            }
            if (status >= 500 || status == 408 || status == 429) break
            if (status in 200..299) sent++
            queue.remove(path) // taken, or refused for good (a 4xx)
        }
        return sent
    }

    // --- the update ---------------------------------------------------------------------------------------

    /** An answer's patch offer (§4b) and the URL it names, resolved. */
    private class PatchOffer(val hint: PatchHint, val url: String)

    private class Answer(val envelope: ByteArray?, val bundleUrl: String?, val head: ByteArray?, val patch: PatchOffer? = null)

    /** What the last check offered: the archive's URL, and the patch when the machine chose one. */
    private class Offered(val release: VerifiedRelease, val archiveUrl: String, val patch: PatchOffer?)

    /**
     * Walk the trust root forward and ask for an update; return the verified
     * release offered (not fetched yet), or null when the device is up to
     * date. Throws the refusal (its [HotPatchException.reason] names the
     * defence), [NetworkException] or [StorageException].
     */
    fun checkForUpdate(): VerifiedRelease? = synchronized(updating) { check() }

    private fun check(): VerifiedRelease? {
        offered = null
        var work = synchronized(lock) {
            ensureLoaded()
            feed(Event.CheckStarted)
        }
        while (true) {
            val fetch = work.filterIsInstance<Action.FetchRoot>().firstOrNull() ?: break
            val envelope = try {
                get("/apps/${config.appId}/roots/${fetch.version}", TrustRoots.MAX_ROOT_BYTES.toLong(), "trust root v${fetch.version}")
            } catch (e: NetworkException) {
                synchronized(lock) { feed(Event.CheckFailed(e.message ?: "network")) }
                throw e
            }
            work = synchronized(lock) { feed(Event.RootAnswered(envelope)) }
            work.filterIsInstance<Action.Reject>().firstOrNull()?.let { throw it.error }
        }
        val request = work.filterIsInstance<Action.RequestCheck>().first()
        val answer = try {
            ask(request)
        } catch (e: NetworkException) {
            synchronized(lock) { feed(Event.CheckFailed(e.message ?: "network")) }
            throw e
        }
        if (answer.patch != null) knowEmbedded()
        val actions = synchronized(lock) {
            feed(Event.CheckAnswered(answer.envelope, clock(), answer.head, deviceId, answer.patch?.hint))
        }
        actions.filterIsInstance<Action.Reject>().firstOrNull()?.let { throw it.error }
        val archiveUrl = answer.bundleUrl ?: return null
        for (action in actions) {
            if (action is Action.FetchPatch) {
                offered = Offered(action.release, archiveUrl, answer.patch)
                return action.release
            }
            if (action is Action.Download) {
                offered = Offered(action.release, archiveUrl, null)
                return action.release
            }
        }
        return null
    }

    private var offered: Offered? = null

    /** The bundle in the binary as a patch base, once hashed. */
    private var embeddedBase: PatchBase? = null

    /**
     * Tell the machine the embedded bundle's id, hashing its files once. A file that cannot
     * be read leaves it unknown (a patch from it is then never chosen) and is tried again
     * at the next offer.
     */
    private fun knowEmbedded() {
        val bundle = config.embedded ?: return
        if (embeddedBase != null) return
        val files = try {
            bundle.paths.map { path ->
                val digest = MessageDigest.getInstance("SHA-256")
                var size = 0L
                bundle.open(path).use { input ->
                    val buffer = ByteArray(64 * 1024)
                    while (true) {
                        val got = input.read(buffer)
                        if (got < 0) break
                        digest.update(buffer, 0, got)
                        size += got
                    }
                }
                FileEntry(path, digest.digest().joinToString("") { "%02x".format(it) }, size)
            }
        } catch (e: IOException) {
            return
        }
        val id = EmbeddedBundles.id(config.appId, config.platform.wire, config.nativeVersion, files)
        embeddedBase = PatchBase(id, files) { entry -> bundle.open(entry.path).use { it.readAtMost(entry.size + 1) } }
        synchronized(lock) { device = device.copy(embeddedBase = id) }
    }

    /** The size of the patch the last check chose to fetch instead of the archive, or null. */
    val offeredPatchSize: Long? get() = synchronized(updating) { offered?.patch?.hint?.size }

    /**
     * Download, verify and install the release [checkForUpdate] offered
     * (named by [manifestId]); it runs at the next launch. Returns whether
     * the app was asked to restart (a mandatory release). Throws the
     * refusal, [NetworkException], [StorageException], or
     * [IllegalTransitionException] when that release was not just offered.
     */
    fun downloadUpdate(manifestId: String, progress: (stage: String, done: Long, total: Long) -> Unit = { _, _, _ -> }): Boolean =
        synchronized(updating) { download(manifestId, progress) }

    private fun download(manifestId: String, progress: (String, Long, Long) -> Unit): Boolean {
        val offer = offered?.takeIf { it.release.manifestId == manifestId }
            ?: throw IllegalTransitionException("downloadUpdate($manifestId) needs the release checkForUpdate() offered")
        offered = null
        if (offer.patch != null) {
            val work = patch(offer.release, offer.patch, progress)
            if (work.none { it is Action.Download }) return restartIfAsked(work)
        }
        return downloadArchive(offer.release, offer.archiveUrl, progress)
    }

    /**
     * Build [release] from [offer]'s patch: download it (capped at its offered size), apply it to
     * the installed base, every file checked, staged as an archive would be. Returns what the
     * machine asks next: after [Event.PatchInstalled], perhaps a restart; after [Event.PatchFailed]
     * (any failure, reported), the archive's download.
     */
    private fun patch(release: VerifiedRelease, offer: PatchOffer, progress: (String, Long, Long) -> Unit): List<Action> {
        val hint = offer.hint
        val path = "${DeviceStorage.DOWNLOADS}/${release.manifestId}.patch"
        var phase = ReportPhase.DOWNLOAD
        val failure = try {
            tidy { fs.remove(path) } // a patch is small: never resumed
            fetchArchive(offer.url, path, hint.size) { done, total -> progress("download", done, total) }
            val patch = fs.openRead(path).use { it.readBytes(hint.size) }
            phase = ReportPhase.APPLY
            val base = embeddedBase?.takeIf { it.manifestId == hint.baseManifestId } ?: storage.patchBase(hint.baseManifestId)
            storage.installFromPatch(release, patch, base) { done, total -> progress("install", done, total) }
            null
        } catch (e: HotPatchException) {
            "${e.reason}: ${e.message}"
        } catch (e: IOException) {
            "StorageError: ${e.message}"
        } finally {
            tidy { fs.remove(path) }
        }
        val event = if (failure == null) {
            Event.PatchInstalled(hint.baseManifestId)
        } else {
            Event.PatchFailed("patch from ${hint.baseManifestId.take(12)} failed ($failure)", phase)
        }
        return synchronized(lock) { feed(event) }
    }

    private fun restartIfAsked(work: List<Action>): Boolean {
        if (work.any { it is Action.RestartApp }) {
            restart()
            return true
        }
        return false
    }

    /** Download, verify and install [release]'s archive from [url]; whether the app was asked to restart. */
    private fun downloadArchive(release: VerifiedRelease, url: String, progress: (String, Long, Long) -> Unit): Boolean {
        val part = DeviceStorage.downloadPath(release.manifestId)
        val (sha256, length) = try {
            fetchArchive(url, part, release.manifest.archive.length) { done, total -> progress("download", done, total) }
        } catch (e: HotPatchException) {
            synchronized(lock) { feedQuietly(Event.DownloadFailed("${e.reason}: ${e.message}")) }
            throw e
        } catch (e: IOException) {
            synchronized(lock) { feedQuietly(Event.DownloadFailed("StorageError: ${e.message}")) }
            throw StorageException("the download could not be written: ${e.message}")
        }
        var work = synchronized(lock) { feed(Event.DownloadFinished(sha256, length)) }
        work.filterIsInstance<Action.Reject>().firstOrNull()?.let { throw it.error }
        val install = work.filterIsInstance<Action.Install>().firstOrNull() ?: return false
        try {
            fs.openRead(part).use { source -> storage.install(install.release, source) { done, total -> progress("install", done, total) } }
        } catch (e: LocalTamperingException) {
            synchronized(lock) { feedQuietly(Event.InstallFailed(e.message ?: "tampered", permanent = false)) }
            throw e
        } catch (e: HotPatchException) {
            // Still the signed bytes: the signed content itself is unusable, for good. Otherwise the
            // archive changed on this device after it was hashed (A15): not the release's fault.
            val intact = try {
                fs.openRead(part).use { sha256Of(it) } == install.release.manifest.archive.sha256
            } catch (io: IOException) {
                false
            }
            synchronized(lock) { feedQuietly(Event.InstallFailed("${e.reason}: ${e.message}", permanent = intact)) }
            throw e
        } catch (e: IOException) {
            synchronized(lock) { feedQuietly(Event.InstallFailed("StorageError: ${e.message}", permanent = false)) }
            throw StorageException("the bundle could not be installed: ${e.message}")
        }
        work = synchronized(lock) { feed(Event.InstallFinished) }
        return restartIfAsked(work)
    }

    private fun ask(request: Action.RequestCheck): Answer {
        val query = linkedMapOf(
            "appId" to config.appId,
            "platform" to config.platform.wire,
            "deviceId" to deviceId,
            "nativeVersion" to request.nativeVersion.ifEmpty { config.nativeVersion },
            "channel" to config.channel,
        )
        request.current?.let { query["currentManifestId"] = it.manifestId }
        val text = query.entries.joinToString("&") { (k, v) -> "$k=${URLEncoder.encode(v, "UTF-8")}" }
        val body = get("/update/check?$text", MAX_ANSWER_BYTES, "update check")
            ?: throw NetworkException("update check got HTTP 404", retryable = false)
        val document = try {
            StrictJson.parse(body) as? Json.Obj ?: throw NetworkException("update check answer is not a JSON object", retryable = false)
        } catch (e: FormatException) {
            throw NetworkException("update check answer is not JSON: ${e.message}", retryable = false)
        }
        val members = document.members
        val available = (members["updateAvailable"] as? Json.Bool)?.value
            ?: throw NetworkException("update check answer breaks the protocol: updateAvailable", retryable = false)
        val head = signedBytes(members["head"])
        val manifest = signedBytes(members["manifest"])
        val bundleUrl = (members["bundleUrl"] as? Json.Str)?.value
        if (!available || manifest == null || bundleUrl == null) return Answer(null, null, head)
        return Answer(manifest, resolve(bundleUrl), head, patchOffer(members["patch"]))
    }

    private fun resolve(reference: String): String = try {
        URI(url("/")).resolve(reference).toString()
    } catch (e: IllegalArgumentException) {
        throw NetworkException("update check answer names a URL that is not one: ${e.message}", retryable = false)
    }

    /**
     * The answer's unsigned patch offer (§4b) and its URL, or null: a malformed offer is dropped
     * (the archive is fetched instead), as the reference's read_check_answer does.
     */
    private fun patchOffer(value: Json?): PatchOffer? {
        val members = (value as? Json.Obj)?.members ?: return null
        if (members.keys != setOf("url", "size", "baseManifestId")) return null
        val url = (members["url"] as? Json.Str)?.value ?: return null
        val size = (members["size"] as? Json.Int)?.value?.takeIf { it >= 1 } ?: return null
        val base = (members["baseManifestId"] as? Json.Str)?.value?.takeIf { MANIFEST_ID.matches(it) } ?: return null
        return try {
            PatchOffer(PatchHint(base, size), URI(url("/")).resolve(url).toString())
        } catch (e: IllegalArgumentException) {
            null
        }
    }

    /** A base64 signed document of the answer; garbage is passed on to be refused by verification. */
    private fun signedBytes(value: Json?): ByteArray? {
        val text = (value as? Json.Str)?.value ?: return null
        return try {
            Base64Strict.decode(text, "signed document")
        } catch (e: FormatException) {
            text.toByteArray()
        }
    }

    /** GET [path]; its body (at most [cap] bytes), or null for a 404. */
    private fun get(path: String, cap: Long, what: String): ByteArray? {
        try {
            http.get(url(path)).use { response ->
                if (response.status == 404) return null
                if (response.status != 200) {
                    throw NetworkException("$what got HTTP ${response.status}", retryable = response.status >= 500 || response.status == 429)
                }
                val out = java.io.ByteArrayOutputStream()
                val buffer = ByteArray(CHUNK)
                while (true) {
                    val got = response.body.read(buffer)
                    if (got < 0) break
                    out.write(buffer, 0, got)
                    if (out.size() > cap) throw NetworkException("$what answer exceeds $cap bytes", retryable = false)
                }
                return out.toByteArray()
            }
        } catch (e: IOException) {
            throw NetworkException("$what failed: ${e.message}")
        }
    }

    /**
     * Download [url] into [path] (resuming a partial file with a Range request),
     * never past [length] bytes; return the sha256 and length of the whole file.
     * Retryable failures are tried again with exponential backoff and jitter,
     * resuming each time; the whole download must end within the policy's
     * deadline, and a server slower than its minimum throughput is abandoned
     * (A9). More bytes than signed is [TooLargeException] (the partial file is
     * removed); otherwise the partial file is kept for the next sync.
     */
    private fun fetchArchive(url: String, path: String, length: Long, progress: (Long, Long) -> Unit): Pair<String, Long> {
        fs.mkdir(DeviceStorage.DOWNLOADS)
        val policy = config.download
        val partial = Partial(path, length)
        val meter = Meter(policy)
        var failures = 0
        try {
            while (partial.have < length) {
                val before = partial.have
                val error = try {
                    attempt(url, partial, length, meter, progress)
                    if (partial.have >= length) break
                    NetworkException("the body ended after ${partial.have} of $length bytes")
                } catch (e: NetworkException) {
                    e
                }
                if (partial.have > before) failures = 0 // progress was made: only consecutive failures count
                failures++
                if (!error.retryable || failures > policy.retries) throw error
                val delay = minOf(policy.maxBackoffMillis, policy.backoffMillis shl minOf(failures - 1, 20))
                timer.sleep((delay * (0.5 + random.nextDouble() / 2)).toLong())
                meter.tick(0)
            }
        } catch (e: TooLargeException) {
            tidy { fs.remove(path) }
            throw e
        }
        return partial.digest.digest().joinToString("") { "%02x".format(it) } to partial.have
    }

    /** The file being downloaded: the hash of its bytes so far, and their count. */
    private inner class Partial(val path: String, length: Long) {
        val digest: MessageDigest = MessageDigest.getInstance("SHA-256")
        var have = fs.size(path)?.takeIf { it <= length } ?: 0L

        init {
            if (have > 0) fs.openRead(path).use { file -> file.forEachChunk(have) { buffer, count -> digest.update(buffer, 0, count) } }
        }

        fun restart() {
            have = 0
            digest.reset()
        }
    }

    /** The download's deadline and minimum throughput (A9). */
    private inner class Meter(private val policy: DownloadPolicy) {
        private val started = timer.monotonicMillis()
        private var windowStart = started
        private var windowBytes = 0L

        fun tick(received: Int) {
            val now = timer.monotonicMillis()
            if (now - started > policy.deadlineMillis) {
                throw NetworkException("download ran past its ${policy.deadlineMillis / 1000} s deadline", retryable = false)
            }
            windowBytes += received
            val window = now - windowStart
            if (window >= policy.throughputWindowMillis) {
                val rate = windowBytes * 1000 / window
                if (rate < policy.minBytesPerSecond) {
                    throw NetworkException("download slowed to $rate B/s, below the minimum ${policy.minBytesPerSecond} B/s", retryable = false)
                }
                windowStart = now
                windowBytes = 0
            }
        }
    }

    /** One request of a download: resume from the partial file, append what arrives, synced. */
    private fun attempt(url: String, partial: Partial, length: Long, meter: Meter, progress: (Long, Long) -> Unit) {
        val headers = if (partial.have > 0) mapOf("Range" to "bytes=${partial.have}-") else emptyMap()
        val response = try {
            http.get(url, headers)
        } catch (e: IOException) {
            throw NetworkException("archive download failed: ${e.message}")
        }
        response.use {
            if (response.status == 416 && partial.have > 0) {
                partial.restart() // our partial file is not a prefix the server knows
                throw NetworkException("the server refused to resume; starting over")
            }
            val resumed = response.status == 206 &&
                RANGE.matchEntire(response.headers["content-range"] ?: "")?.groupValues?.get(1)?.toLongOrNull() == partial.have
            if (response.status == 206 && !resumed) throw NetworkException("the server answered a range request with another range")
            if (response.status != 200 && response.status != 206) {
                val retryable = response.status >= 500 || response.status == 429 || response.status == 408
                throw NetworkException("archive download got HTTP ${response.status}", retryable)
            }
            if (!resumed) partial.restart() // the server ignored the range and sends it all
            val declared = response.headers["content-length"]?.takeIf { DIGITS.matches(it) }?.toLongOrNull()
            if (declared != null && partial.have + declared > length) throw TooLargeException("archive download (Content-Length)", length)
            (if (partial.have > 0) fs.append(partial.path) else fs.create(partial.path)).use { out ->
                val buffer = ByteArray(CHUNK)
                try {
                    while (true) {
                        val got = try {
                            response.body.read(buffer)
                        } catch (e: IOException) {
                            throw NetworkException("archive download failed after ${partial.have} bytes: ${e.message}")
                        }
                        if (got < 0) break
                        if (partial.have + got > length) throw TooLargeException("archive download", length)
                        out.write(buffer, 0, got)
                        partial.digest.update(buffer, 0, got)
                        partial.have += got
                        meter.tick(got)
                        progress(partial.have, length)
                    }
                } finally {
                    out.sync() // keep what arrived: the next attempt resumes from it
                }
            }
        }
    }

    private fun url(path: String) = config.serverUrl.trimEnd('/') + path

    // --- the state ----------------------------------------------------------------------------------------

    private fun ensureLoaded() {
        if (loaded) return
        try {
            var stored = storage.loadState()
            if (stored == null || (config.deviceId != null && stored.deviceId != config.deviceId)) {
                val id = config.deviceId ?: stored?.deviceId ?: randomId()
                stored = StoredState(id, stored?.state ?: DeviceState())
                storage.saveState(stored)
            }
            // launched and running describe this process, never a previous one.
            var loadedState = stored.state.copy(launched = state.launched, running = state.running)
            storage.recover(loadedState)
            loadedState = usableRoot(loadedState)
            deviceId = stored.deviceId
            reports = ReportQueue(fs, config.appId, deviceId)
            state = loadedState
            loaded = true
            if (state.phase != Phase.IDLE) feed(Event.Interrupted)
        } catch (e: IOException) {
            loaded = false
            throw StorageException("the update state could not be read: ${e.message}")
        }
    }

    /** Forget a stored trust root that no longer loads (damaged storage): walk again from the embedded one. */
    private fun usableRoot(state: DeviceState): DeviceState = try {
        Machine.trustedRoot(state, device)
        state
    } catch (e: HotPatchException) {
        state.copy(trustRoot = null)
    }

    /** Step the machine, queue its reports, save its state; tidy storage; return the remaining work. */
    private fun feed(event: Event): List<Action> {
        val (next, actions) = Machine.step(state, event, device)
        try {
            actions.filterIsInstance<Action.Report>().forEach { reports!!.put(it) }
            if (durable(next) != durable(state)) storage.saveState(StoredState(deviceId, next))
        } catch (e: IOException) {
            loaded = false
            throw StorageException("could not save the update state: ${e.message}")
        }
        state = next
        val work = mutableListOf<Action>()
        for (action in actions) {
            when (action) {
                is Action.DiscardDownload -> tidy { fs.remove(DeviceStorage.downloadPath(action.manifestId)) }
                is Action.DeleteBundle -> if (state.running?.manifestId != action.manifestId) {
                    tidy { fs.removeTree(DeviceStorage.releaseDir(action.manifestId)) }
                }
                is Action.Report, is Action.RunBundle -> Unit
                else -> work.add(action)
            }
        }
        return work
    }

    /** Record a failure; if even that cannot be saved, the next load redoes it. */
    private fun feedQuietly(event: Event) {
        try {
            feed(event)
        } catch (e: StorageException) {
            // the reload interrupts the unfinished work
        }
    }

    private fun tidy(remove: () -> Unit) {
        try {
            remove()
        } catch (e: IOException) {
            // startup recovery removes what is left
        }
    }

    /** The part of a state worth a disk write: launched and running describe this process only. */
    private fun durable(state: DeviceState) = StateCodec.encode(state.copy(phase = Phase.IDLE, launched = false, running = null))

    private companion object {
        const val CHUNK = 64 * 1024
        /** The envelope base64-encoded in JSON, plus 64 KiB for the other fields (the reference's cap). */
        const val MAX_ANSWER_BYTES = (Releases.MAX_RELEASE_ENVELOPE_BYTES + 2L) / 3 * 4 + 64 * 1024
        val RANGE = Regex("bytes ([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18}|\\*)")
        val DIGITS = Regex("[0-9]{1,18}")
        val MANIFEST_ID = Regex("[0-9a-f]{64}")

        fun randomId(): String = ByteArray(16).also { SecureRandom().nextBytes(it) }.joinToString("") { "%02x".format(it) }
    }
}
