// The React Native module on iOS: forwards each call to ModuleCore (HotPatchReactNative),
// where the module's behaviour lives and is tested. Swift with @objc cannot be compiled on
// Linux, so this file is built only by Xcode (docs/howto/react-native-sdk.md says what is
// and is not tested here).
import Foundation
import React

@objc(HotPatch)
final class HotPatchModule: RCTEventEmitter {
    private var listening = false
    private lazy var core = ModuleCore { [weak self] name, body in
        guard let self, self.listening else { return }
        self.sendEvent(withName: name, body: body)
    }

    override static func requiresMainQueueSetup() -> Bool { false }

    override func supportedEvents() -> [String]! { [ModuleCore.progressEvent] }

    override func startObserving() { listening = true }

    override func stopObserving() { listening = false }

    private static func forward(_ reject: @escaping RCTPromiseRejectBlock) -> ModuleCore.Reject {
        { error in
            reject(error.code, error.message,
                   NSError(domain: "dev.hotpatch", code: 1, userInfo: [NSLocalizedDescriptionKey: error.message,
                                                                       "reason": error.reason]))
        }
    }

    @objc(configure:resolve:reject:)
    func configure(_ config: NSDictionary, resolve: @escaping RCTPromiseResolveBlock, reject: @escaping RCTPromiseRejectBlock) {
        core.configure(config as? [String: Any] ?? [:], resolve: { resolve($0) }, reject: Self.forward(reject))
    }

    @objc(checkForUpdate:reject:)
    func checkForUpdate(_ resolve: @escaping RCTPromiseResolveBlock, reject: @escaping RCTPromiseRejectBlock) {
        core.checkForUpdate(resolve: { resolve($0) }, reject: Self.forward(reject))
    }

    @objc(downloadUpdate:resolve:reject:)
    func downloadUpdate(_ manifestId: String, resolve: @escaping RCTPromiseResolveBlock,
                        reject: @escaping RCTPromiseRejectBlock) {
        core.downloadUpdate(manifestId, resolve: { resolve($0) }, reject: Self.forward(reject))
    }

    @objc(notifyAppReady:reject:)
    func notifyAppReady(_ resolve: @escaping RCTPromiseResolveBlock, reject: @escaping RCTPromiseRejectBlock) {
        core.notifyAppReady(resolve: { resolve($0) }, reject: Self.forward(reject))
    }

    @objc(getStatus:reject:)
    func getStatus(_ resolve: @escaping RCTPromiseResolveBlock, reject: @escaping RCTPromiseRejectBlock) {
        core.getStatus(resolve: { resolve($0) })
    }

    /// iOS apps do not restart themselves: the JavaScript starts again in this process, on
    /// the staged bundle (a launch, as the crash counter sees it).
    @objc
    func restartApp() {
        DispatchQueue.main.async {
            HotPatch.relaunch()
            RCTTriggerReloadCommandListeners("HotPatch restartApp")
        }
    }
}
