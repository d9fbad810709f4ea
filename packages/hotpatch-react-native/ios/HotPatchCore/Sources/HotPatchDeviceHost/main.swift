// One process of an app, as far as HotPatch is concerned, for
// tests/e2e/test_sdk_app_hermes.py: `HotPatch.onLaunch` as the app delegate calls it,
// then `ModuleCore` answering the calls the app's JavaScript makes in a Hermes VM,
// which the test relays here. The module, the core, the disk and the network are
// real; only React Native's bridge is left out (it only forwards, HotPatchModule.swift).
//
//     HotPatchDeviceHost DIR TRUST_ROOT BINARY_URL REACHABLE_URL APP_ID NATIVE_VERSION NOW APK_ASSETS
//
// APK_ASSETS is the folder holding the bundle in the binary (index.android.bundle), which
// the first update may be patched from.
// BINARY_URL is the server URL of the binary's HotPatchSettings (as configure() must
// say it); the phone's network takes it to REACHABLE_URL. NOW is the harness's clock
// (seconds since 1970), which a moved clock does not bring into the chroot. The fixture
// app's builds are Android bundles, so the device asks for Android releases.
// Prints one JSON object per line: {"kind":"launched","bundle":…} (the file React
// Native is to load, null for the app's own), then for each call read from stdin
// ({"id":N,"method":"…","args":[…]}) the events it emitted ({"kind":"event",…}), its
// settlement ({"kind":"settle","id","error","value"}), {"kind":"restart"} for
// restartApp, and {"kind":"done","id"} once all the call's work, reports included, is over.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HotPatchCore
import HotPatchReactNative

/// The phone's network: requests to `from` go to `to`.
final class Rerouted: Http {
    private let http: Http
    private let from: String
    private let to: String

    init(_ http: Http, from: String, to: String) {
        self.http = http
        self.from = from
        self.to = to
    }

    private func route(_ url: String) -> String { url.hasPrefix(from) ? to + url.dropFirst(from.count) : url }

    func get(_ url: String, headers: [String: String]) throws -> HttpResponse { try http.get(route(url), headers: headers) }

    func postJson(_ url: String, _ body: [UInt8]) throws -> Int { try http.postJson(route(url), body) }
}

let output = NSLock()

func send(_ kind: String, _ members: [String: Any] = [:]) {
    var message = members
    message["kind"] = kind
    guard let data = try? JSONSerialization.data(withJSONObject: message, options: [.sortedKeys]) else {
        fatalError("no JSON for \(message)")
    }
    output.lock()
    FileHandle.standardOutput.write(data + Data("\n".utf8))
    output.unlock()
}

let arguments = CommandLine.arguments
guard arguments.count == 9, let now = Int64(arguments[7]) else {
    FileHandle.standardError.write(Data("HotPatchDeviceHost DIR TRUST_ROOT BINARY_URL REACHABLE_URL APP_ID NATIVE_VERSION NOW APK_ASSETS\n".utf8))
    exit(2)
}
let directory = URL(fileURLWithPath: arguments[1])
let root = try [UInt8](Data(contentsOf: URL(fileURLWithPath: arguments[2])))
var settings = HotPatchSettings(serverUrl: arguments[3], appId: arguments[5])
settings.embeddedFiles = ["index.android.bundle"] // the fixture's releases are Android's
let offset = now - Int64(Date().timeIntervalSince1970)
let bundle = HotPatch.onLaunch(
    settings, trustRoot: root, nativeVersion: arguments[6], directory: directory,
    embeddedFolder: URL(fileURLWithPath: arguments[8]),
    http: Rerouted(URLSessionHttp(), from: arguments[3], to: arguments[4]),
    clock: { UTCSeconds(Int64(Date().timeIntervalSince1970) + offset) }, platform: .android
)
send("launched", ["bundle": bundle?.path ?? NSNull()])

let queue = DispatchQueue(label: "dev.hotpatch.module")
let module = ModuleCore(queue: queue) { name, body in send("event", ["name": name, "body": body]) }
while let line = readLine() {
    guard let call = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
          let id = call["id"] as? Int, let method = call["method"] as? String, let args = call["args"] as? [Any]
    else { fatalError("not a call: \(line)") }
    let resolve: ModuleCore.Resolve = { value in send("settle", ["id": id, "error": NSNull(), "value": value ?? NSNull()]) }
    let reject: ModuleCore.Reject = { error in
        let body: [String: Any] = ["code": error.code, "message": error.message, "userInfo": ["reason": error.reason]]
        send("settle", ["id": id, "error": body, "value": NSNull()])
    }
    switch method {
    case "configure": module.configure(args.first as? [String: Any] ?? [:], resolve: resolve, reject: reject)
    case "checkForUpdate": module.checkForUpdate(resolve: resolve, reject: reject)
    case "downloadUpdate": module.downloadUpdate(args.first as? String ?? "", resolve: resolve, reject: reject)
    case "notifyAppReady": module.notifyAppReady(resolve: resolve, reject: reject)
    case "getStatus": module.getStatus(resolve: resolve)
    case "restartApp": send("restart") // the bridge would relaunch; this process ends instead
    case "addListener", "removeListeners": break
    default: fatalError("the JavaScript called an unknown method \(method)")
    }
    queue.sync {} // the call's work, and what it does after settling, is over
    send("done", ["id": id])
}
