import Foundation

/// The device state as it is persisted: the same JSON as the Python agent's `state.json`
/// `state` member and the conformance scenarios (camelCase, bytes as base64, times as
/// RFC 3339 UTC with second precision, nil fields left out).
public enum StateCodec {
    public static func encode(_ state: DeviceState) -> JSON {
        var members: [(key: String, value: JSON)] = [("phase", .string(state.phase.rawValue))]
        if let native = state.nativeVersion { members.append(("nativeVersion", .string(native))) }
        if let confirmed = state.confirmed { members.append(("confirmed", bundle(confirmed))) }
        if let pending = state.pending { members.append(("pending", bundle(pending))) }
        if let trial = state.trial { members.append(("trial", bundle(trial))) }
        members.append(("trialLaunches", .integer(Int64(state.trialLaunches))))
        if let running = state.running { members.append(("running", bundle(running))) }
        members.append(("launched", .bool(state.launched)))
        if let offer = state.offer {
            members.append(("offer", .object([
                ("bundle", bundle(offer.bundle)), ("envelope", bytes(offer.envelope)), ("acceptedAt", time(offer.acceptedAt)),
            ])))
        }
        members.append(("highWater", .object(state.highWater.sorted { scalarOrder($0.key, $1.key) }.map { scope, mark in
            (scope, .object([("epoch", .integer(mark.epoch)), ("sequence", .integer(mark.sequence)),
                             ("manifestId", .string(mark.manifestId))]))
        })))
        members.append(("failed", .array(state.failed.map(JSON.string))))
        if let root = state.trustRoot { members.append(("trustRoot", bytes(root))) }
        members.append(("rootSteps", .integer(Int64(state.rootSteps))))
        if let trusted = state.trustedTime { members.append(("trustedTime", time(trusted))) }
        members.append(("headSeen", .object(state.headSeen.sorted { scalarOrder($0.key, $1.key) }.map { ($0.key, time($0.value)) })))
        return .object(members)
    }

    /// Read a persisted state; a `SchemaError` naming the field when it is not one.
    public static func decode(_ document: JSON) throws -> DeviceState {
        let fields = try Fields.of(document, at: "")
        var state = DeviceState()
        state.phase = try Phase.of(try fields.string("phase"))
        state.nativeVersion = try fields.optional("nativeVersion").map { _ in try fields.string("nativeVersion") }
        state.confirmed = try fields.optional("confirmed").map { try bundle($0, "confirmed") }
        state.pending = try fields.optional("pending").map { try bundle($0, "pending") }
        state.trial = try fields.optional("trial").map { try bundle($0, "trial") }
        state.trialLaunches = Int(try fields.between("trialLaunches", 0, Int64(Int32.max), default: 0))
        state.running = try fields.optional("running").map { try bundle($0, "running") }
        state.launched = try fields.bool("launched", default: false)
        state.offer = try fields.optional("offer").map(offer)
        for (scope, value) in try fields.object("highWater", default: []) {
            state.highWater[scope] = try mark(value, "highWater.\(scope)")
        }
        state.failed = try fields.list("failed", default: []).enumerated().map { index, item in
            guard case let .string(text) = item else { throw HotPatchError.schema("expected a str", "failed[\(index)]") }
            return text
        }
        state.trustRoot = try fields.optional("trustRoot").map { try bytes($0, "trustRoot") }
        state.rootSteps = Int(try fields.between("rootSteps", 0, Int64(Int32.max), default: 0))
        state.trustedTime = try fields.time("trustedTime")
        let seen = try fields.object("headSeen", default: [])
        let times = Fields(.object(seen), "headSeen")
        for (scope, _) in seen {
            guard let at = try times.time(scope) else { throw HotPatchError.schema("expected a time", "headSeen.\(scope)") }
            state.headSeen[scope] = at
        }
        return state
    }

    public static func bundle(_ bundle: BundleInfo) -> JSON {
        var members: [(key: String, value: JSON)] = [
            ("manifestId", .string(bundle.manifestId)), ("version", .string(bundle.version)),
            ("epoch", .integer(bundle.epoch)), ("sequence", .integer(bundle.sequence)), ("mandatory", .bool(bundle.mandatory)),
        ]
        if let base = bundle.patchedFrom { members.append(("patchedFrom", .string(base))) }
        return .object(members)
    }

    static func bundle(_ value: JSON, _ at: String) throws -> BundleInfo {
        let fields = try Fields.of(value, at: at)
        return BundleInfo(
            manifestId: try fields.string("manifestId"), version: try fields.string("version"),
            epoch: try fields.integer("epoch"), sequence: try fields.integer("sequence"),
            mandatory: try fields.bool("mandatory", default: false),
            patchedFrom: try fields.optional("patchedFrom").map { _ in try fields.string("patchedFrom") }
        )
    }

    private static func offer(_ value: JSON) throws -> Offer {
        let fields = try Fields.of(value, at: "offer")
        guard let acceptedAt = try fields.time("acceptedAt") else {
            throw HotPatchError.schema("required field is missing", "offer.acceptedAt")
        }
        return Offer(bundle: try bundle(try fields.require("bundle"), "offer.bundle"),
                     envelope: try bytes(try fields.require("envelope"), "offer.envelope"), acceptedAt: acceptedAt)
    }

    private static func mark(_ value: JSON, _ at: String) throws -> HighWaterMark {
        let fields = try Fields.of(value, at: at)
        return HighWaterMark(epoch: try fields.integer("epoch"), sequence: try fields.integer("sequence"),
                             manifestId: try fields.string("manifestId"))
    }

    /// A time in the wire format: RFC 3339 UTC, whole seconds.
    public static func time(_ at: UTCSeconds) -> JSON { .string(at.rfc3339) }

    public static func bytes(_ data: [UInt8]) -> JSON { .string(Data(data).base64EncodedString()) }

    static func bytes(_ value: JSON, _ at: String) throws -> [UInt8] {
        guard case let .string(text) = value else { throw HotPatchError.schema("expected base64 text", at) }
        guard let data = try? Base64Strict.decode(text, field: at) else { throw HotPatchError.schema("not valid base64", at) }
        return data
    }
}
