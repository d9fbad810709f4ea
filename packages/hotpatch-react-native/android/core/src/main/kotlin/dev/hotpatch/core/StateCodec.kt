package dev.hotpatch.core

import java.time.Instant
import java.time.format.DateTimeFormatter
import java.time.temporal.ChronoUnit
import java.util.Base64

/**
 * The device state as it is persisted: the same JSON as the Python agent's
 * `state.json` `state` member and the conformance scenarios (camelCase, bytes
 * as base64, times as RFC 3339 UTC with second precision, null fields left out).
 */
object StateCodec {
    fun encode(state: DeviceState): Json.Obj {
        val members = LinkedHashMap<String, Json>()
        members["phase"] = Json.Str(state.phase.wire)
        state.nativeVersion?.let { members["nativeVersion"] = Json.Str(it) }
        state.confirmed?.let { members["confirmed"] = bundle(it) }
        state.pending?.let { members["pending"] = bundle(it) }
        state.trial?.let { members["trial"] = bundle(it) }
        members["trialLaunches"] = Json.Int(state.trialLaunches.toLong())
        state.running?.let { members["running"] = bundle(it) }
        members["launched"] = Json.Bool(state.launched)
        state.offer?.let {
            members["offer"] = Json.Obj(
                linkedMapOf("bundle" to bundle(it.bundle), "envelope" to bytes(it.envelope), "acceptedAt" to time(it.acceptedAt)),
            )
        }
        members["highWater"] = Json.Obj(
            state.highWater.mapValues { (_, mark) ->
                Json.Obj(
                    linkedMapOf("epoch" to Json.Int(mark.epoch), "sequence" to Json.Int(mark.sequence), "manifestId" to Json.Str(mark.manifestId)),
                )
            },
        )
        members["failed"] = Json.Arr(state.failed.map { Json.Str(it) })
        state.trustRoot?.let { members["trustRoot"] = bytes(it) }
        members["rootSteps"] = Json.Int(state.rootSteps.toLong())
        state.trustedTime?.let { members["trustedTime"] = time(it) }
        members["headSeen"] = Json.Obj(state.headSeen.mapValues { (_, at) -> time(at) })
        return Json.Obj(members)
    }

    /** Read a persisted state; [SchemaException] naming the field when it is not one. */
    fun decode(document: Json): DeviceState {
        val fields = Fields((document as? Json.Obj)?.members ?: throw SchemaException("a device state is a JSON object", ""), "")
        return DeviceState(
            phase = Phase.of(fields.string("phase")),
            nativeVersion = fields.optional("nativeVersion")?.let { fields.string("nativeVersion") },
            confirmed = fields.optional("confirmed")?.let { bundle(it, "confirmed") },
            pending = fields.optional("pending")?.let { bundle(it, "pending") },
            trial = fields.optional("trial")?.let { bundle(it, "trial") },
            trialLaunches = fields.between("trialLaunches", 0, Int.MAX_VALUE.toLong(), 0).toInt(),
            running = fields.optional("running")?.let { bundle(it, "running") },
            launched = fields.bool("launched", false),
            offer = fields.optional("offer")?.let { offer(it) },
            highWater = fields.obj("highWater", emptyMap()).mapValues { (scope, value) -> mark(value, "highWater.$scope") },
            failed = fields.list("failed", emptyList()).mapIndexed { i, item ->
                (item as? Json.Str)?.value ?: throw SchemaException("expected a str", "failed[$i]")
            },
            trustRoot = fields.optional("trustRoot")?.let { bytes(it, "trustRoot") },
            rootSteps = fields.between("rootSteps", 0, Int.MAX_VALUE.toLong(), 0).toInt(),
            trustedTime = fields.time("trustedTime"),
            headSeen = fields.obj("headSeen", emptyMap()).let { seen ->
                val times = Fields(seen, "headSeen")
                seen.keys.associateWith { scope -> times.time(scope) ?: throw SchemaException("expected a time", "headSeen.$scope") }
            },
        )
    }

    fun bundle(bundle: Bundle): Json.Obj {
        val members = linkedMapOf<String, Json>(
            "manifestId" to Json.Str(bundle.manifestId),
            "version" to Json.Str(bundle.version),
            "epoch" to Json.Int(bundle.epoch),
            "sequence" to Json.Int(bundle.sequence),
            "mandatory" to Json.Bool(bundle.mandatory),
        )
        bundle.patchedFrom?.let { members["patchedFrom"] = Json.Str(it) }
        return Json.Obj(members)
    }

    fun bundle(value: Json, at: String): Bundle {
        val fields = Fields((value as? Json.Obj)?.members ?: throw SchemaException("expected an object", at), at)
        return Bundle(
            manifestId = fields.string("manifestId"),
            version = fields.string("version"),
            epoch = fields.long("epoch"),
            sequence = fields.long("sequence"),
            mandatory = fields.bool("mandatory", false),
            patchedFrom = fields.optional("patchedFrom")?.let { fields.string("patchedFrom") },
        )
    }

    private fun offer(value: Json): Offer {
        val fields = Fields((value as? Json.Obj)?.members ?: throw SchemaException("expected an object", "offer"), "offer")
        return Offer(
            bundle = bundle(fields.require("bundle"), "offer.bundle"),
            envelope = bytes(fields.require("envelope"), "offer.envelope"),
            acceptedAt = fields.time("acceptedAt") ?: throw SchemaException("required field is missing", "offer.acceptedAt"),
        )
    }

    private fun mark(value: Json, at: String): HighWaterMark {
        val fields = Fields((value as? Json.Obj)?.members ?: throw SchemaException("expected an object", at), at)
        return HighWaterMark(fields.long("epoch"), fields.long("sequence"), fields.string("manifestId"))
    }

    /** A time in the wire format: RFC 3339 UTC, second precision (finer parts are dropped, as the reference does). */
    fun time(at: Instant): Json.Str = Json.Str(DateTimeFormatter.ISO_INSTANT.format(at.truncatedTo(ChronoUnit.SECONDS)))

    fun bytes(data: ByteArray): Json.Str = Json.Str(Base64.getEncoder().encodeToString(data))

    fun bytes(value: Json, at: String): ByteArray {
        val text = (value as? Json.Str)?.value ?: throw SchemaException("expected base64 text", at)
        return try {
            Base64Strict.decode(text, at)
        } catch (e: FormatException) {
            throw SchemaException("not valid base64", at)
        }
    }
}
