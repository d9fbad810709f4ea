import Foundation
import XCTest
@testable import HotPatchCore

/// Replays every conformance scenario (docs/spec/conformance.md) through `Machine.step`.
final class ConformanceTests: XCTestCase {
    private var folder: URL { Vectors.spec.appendingPathComponent("conformance") }

    private func scenarios() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    private func scenario(_ url: URL) throws -> JSON { try StrictJSON.parse([UInt8](try Data(contentsOf: url))) }

    func testEveryScenarioReplaysExactly() throws {
        let files = try scenarios()
        XCTAssertGreaterThanOrEqual(files.count, 19, "found \(files.count) scenarios in \(folder.path)")
        for file in files {
            let mismatches = try Replay.run(try scenario(file))
            XCTAssertTrue(mismatches.isEmpty, mismatches.joined(separator: "\n"))
        }
    }

    func testTheScenariosUseEveryEventAndAction() throws {
        var events = Set<String>()
        var actions = Set<String>()
        for file in try scenarios() {
            for step in try scenario(file).at("steps").items {
                events.insert(step.at("event").at("type").text)
                step.at("actions").items.forEach { actions.insert($0.at("type").text) }
            }
        }
        XCTAssertEqual(events, Set(Replay.eventNames))
        XCTAssertEqual(actions, Set(Replay.actionNames))
        XCTAssertEqual(events.count, 14)
        XCTAssertEqual(actions.count, 11)
    }

    func testAWrongAnswerIsCaughtOnceAndTheReplayGoesOn() throws {
        guard case let .object(members) = try scenario(folder.appendingPathComponent("corrupt-download.json")) else {
            return XCTFail("not a scenario")
        }
        let changed = JSON.object(members.map { member in
            guard member.key == "steps", case var .array(steps) = member.value, case let .object(first) = steps[0] else { return member }
            steps[0] = .object(first.map { $0.key == "actions" ? ($0.key, .array([])) : $0 })
            return (member.key, .array(steps))
        })
        let mismatches = try Replay.run(changed)
        XCTAssertEqual(mismatches.map { String($0.split(separator: "\n")[0]) }, ["corrupt-download step 0: actions differ"])
    }

    func testAnEventThePhaseCannotTakeChangesNothingAndSaysSo() throws {
        let document = try scenario(folder.appendingPathComponent("no-update.json"))
        let config = try Replay.config(document.at("config"))
        let idle = try StateCodec.decode(document.at("initial"))
        assertRefused(.illegalTransition) { try Machine.step(idle, .installFinished, config) }
        assertRefused(.illegalTransition) { try Machine.step(idle, .ready, config) } // before a launch
    }
}

/// The reference replayer (hotpatch_core.conformance.replay), for the Swift core.
enum Replay {
    static let eventNames = ["Launched", "Ready", "CheckStarted", "RootAnswered", "CheckAnswered", "CheckFailed",
                             "DownloadFinished", "DownloadFailed", "InstallFinished", "InstallFailed", "ApplyRequested",
                             "Interrupted", "PatchInstalled", "PatchFailed"]
    static let actionNames = ["RunBundle", "FetchRoot", "RequestCheck", "Download", "FetchPatch", "Install",
                              "DiscardDownload", "DeleteBundle", "Report", "RestartApp", "Reject"]

    static func run(_ document: JSON) throws -> [String] {
        XCTAssertEqual(document.at("format").number, 1)
        let name = document.at("name").text
        let config = try self.config(document.at("config"))
        var state = try StateCodec.decode(document.at("initial"))
        var mismatches: [String] = []
        for (index, step) in document.at("steps").items.enumerated() {
            let event = try self.event(step.at("event"))
            XCTAssertEqual(event.name, step.at("event").at("type").text)
            let result = try Machine.step(state, event, config)
            state = result.state
            let produced = result.actions.map { comparable(encode($0)) }
            let recorded = step.at("actions").items.map(comparable)
            if produced.map(StrictJSON.canonical) != recorded.map(StrictJSON.canonical) {
                mismatches.append("\(name) step \(index): actions differ\n  expected \(recorded)\n  actual   \(produced)")
            }
            let encoded = StateCodec.encode(state)
            if StrictJSON.canonical(encoded) != StrictJSON.canonical(step.at("state")) {
                mismatches.append("\(name) step \(index): states differ\n  expected \(step.at("state"))\n  actual   \(encoded)")
                state = try StateCodec.decode(step.at("state"))
            }
            // The state survives its own persistence.
            XCTAssertEqual(StrictJSON.canonical(StateCodec.encode(try StateCodec.decode(encoded))), StrictJSON.canonical(encoded))
        }
        return mismatches
    }

    static func config(_ document: JSON) throws -> DeviceConfig {
        let identity = DeviceIdentity(
            appId: document.at("appId").text, platform: try Platform.of(document.at("platform").text),
            channel: document.at("channel").text, nativeVersion: try Version.parseNative(document.at("nativeVersion").text)
        )
        return DeviceConfig(
            identity: identity, trustRoot: try TrustRoots.load(bytes(document["trustRoot"])!),
            crashThreshold: Int(document.at("crashThreshold").number),
            bundleFile: document["bundleFile"].flatMap { $0 == .null ? nil : $0.text },
            embeddedBase: document["embeddedBase"].flatMap { $0 == .null ? nil : $0.text }
        )
    }

    private static func bytes(_ value: JSON?) -> [UInt8]? {
        guard case let .string(text)? = value else { return nil }
        return [UInt8](Data(base64Encoded: text)!)
    }

    static func event(_ value: JSON) throws -> Event {
        let type = value.at("type").text
        switch type {
        case "Launched": return .launched(nativeVersion: try Version.parseNative(value.at("nativeVersion").text))
        case "Ready": return .ready
        case "CheckStarted": return .checkStarted
        case "RootAnswered": return .rootAnswered(envelope: bytes(value["envelope"]))
        case "CheckAnswered":
            var patch: PatchHint?
            if case .object? = value["patch"] {
                patch = PatchHint(baseManifestId: value.at("patch").at("baseManifestId").text, size: value.at("patch").at("size").number)
            }
            return .checkAnswered(CheckAnswer(
                envelope: bytes(value["envelope"]), now: UTCSeconds.parse(value.at("now").text)!, head: bytes(value["head"]),
                deviceId: value["deviceId"].flatMap { $0 == .null ? nil : $0.text } ?? "", patch: patch
            ))
        case "CheckFailed": return .checkFailed(reason: value.at("reason").text)
        case "DownloadFinished": return .downloadFinished(sha256: value.at("sha256").text, length: value.at("length").number)
        case "DownloadFailed": return .downloadFailed(reason: value.at("reason").text)
        case "InstallFinished": return .installFinished
        case "InstallFailed": return .installFailed(reason: value.at("reason").text, permanent: value.at("permanent").flag)
        case "ApplyRequested": return .applyRequested
        case "Interrupted": return .interrupted
        case "PatchInstalled": return .patchInstalled(baseManifestId: value.at("baseManifestId").text)
        case "PatchFailed": return .patchFailed(reason: value.at("reason").text, phase: try ReportPhase.of(value.at("phase").text))
        default: fatalError("unknown event type \(type)")
        }
    }

    private static func bundle(_ bundle: BundleInfo?) -> JSON { bundle.map(StateCodec.bundle) ?? .null }

    static func encode(_ action: Action) -> JSON {
        var members: [(key: String, value: JSON)] = [("type", .string(action.name))]
        switch action {
        case let .runBundle(bundle): members.append(("bundle", self.bundle(bundle)))
        case let .fetchRoot(version): members.append(("version", .integer(version)))
        case let .requestCheck(current, native):
            members += [("current", bundle(current)), ("nativeVersion", .string(native))]
        case let .download(release), let .install(release): members.append(("manifestId", .string(release.manifestId)))
        case let .fetchPatch(release, hint):
            members += [("manifestId", .string(release.manifestId)),
                        ("hint", .object([("baseManifestId", .string(hint.baseManifestId)), ("size", .integer(hint.size))]))]
        case let .discardDownload(id), let .deleteBundle(id): members.append(("manifestId", .string(id)))
        case let .report(report):
            members += [("manifestId", .string(report.manifestId)), ("status", .string(report.status.rawValue)),
                        ("phase", report.phase.map { .string($0.rawValue) } ?? .null), ("reason", .string(report.reason)),
                        ("patchedFrom", report.patchedFrom.map(JSON.string) ?? .null)]
        case .restartApp: break
        case let .reject(error): members.append(("error", .string(error.reason.rawValue)))
        }
        return .object(members)
    }

    /// An action as a replayer compares it: without a report's reason (text for people).
    static func comparable(_ action: JSON) -> JSON {
        guard case let .object(members) = action else { return action }
        return .object(members.filter { $0.key != "reason" })
    }
}
