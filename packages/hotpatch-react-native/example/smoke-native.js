// The native side of the smoke test, installed before the bundle runs in the
// Hermes VM: React Native's module registry is answered from here. `HotPatch`
// is a scripted native module that records each call; every other native
// module React Native asks for at start is an inert stand-in.
(function () {
  var fake = { calls: [], failNext: null, listeners: 0 };
  globalThis.__hotpatchFake = fake;
  function settle(name, value) {
    fake.calls.push(name);
    var failure = fake.failNext;
    fake.failNext = null;
    return failure ? Promise.reject(failure) : Promise.resolve(value);
  }
  var update = {
    manifestId: 'a'.repeat(64), version: '1.0.1', epoch: 1, sequence: 2,
    mandatory: false, downloadSize: 1200, isPatch: true,
  };
  var bundle = { manifestId: 'a'.repeat(64), version: '1.0.1', epoch: 1, sequence: 2 };
  var hotpatch = {
    configure: function (config) { return settle('configure:' + config.appId + '@' + config.channel, null); },
    checkForUpdate: function () { return settle('checkForUpdate', update); },
    downloadUpdate: function (id) {
      emit('HotPatchProgress', { stage: 'download', done: 600, total: 1200 });
      emit('HotPatchProgress', { stage: 'install', done: 2, total: 2 });
      return settle('downloadUpdate', bundle);
    },
    notifyAppReady: function () { return settle('notifyAppReady', null); },
    getStatus: function () {
      return settle('getStatus', { configured: true, nativeVersion: '1.0.0', running: null, pending: bundle, onTrial: false });
    },
    restartApp: function () { fake.calls.push('restartApp'); },
    addListener: function () { fake.listeners += 1; },
    removeListeners: function (n) { fake.listeners -= n; },
  };
  // What native code calls in JavaScript (RCTDeviceEventEmitter among them).
  var callable = {};
  globalThis.RN$registerCallableModule = function (name, factory) { callable[name] = factory; };
  function emit(name, body) {
    callable.RCTDeviceEventEmitter().emit(name, body);
  }
  var constants = {
    PlatformConstants: { Version: 34, isTesting: true, reactNativeVersion: { major: 0, minor: 82, patch: 1, prerelease: null }, Brand: 'fake', Model: 'fake', Fingerprint: 'fake', Manufacturer: 'fake', Release: '14', Serial: 'fake', ServerHost: 'localhost', uiMode: 'normal' },
    AppState: { initialAppState: 'active' },
    DeviceInfo: { Dimensions: { window: { width: 1, height: 1, scale: 1, fontScale: 1 }, screen: { width: 1, height: 1, scale: 1, fontScale: 1 } } },
  };
  function inert(name) {
    return new Proxy({}, {
      get: function (_target, key) {
        if (key === 'getConstants') return function () { return constants[name] || {}; };
        if (key === 'then') return undefined;
        return function () { return undefined; };
      },
    });
  }
  var modules = {};
  globalThis.__turboModuleProxy = function (name) {
    if (name === 'HotPatch') return hotpatch;
    if (!modules[name]) modules[name] = inert(name);
    return modules[name];
  };
  globalThis.nativeModuleProxy = new Proxy({}, {
    get: function (_target, name) { return globalThis.__turboModuleProxy(name); },
  });
  globalThis.RN$Bridgeless = true;
  globalThis.nativeFlushQueueImmediate = function () {};
  globalThis.__fbBatchedBridgeConfig = { remoteModuleConfig: [] };
})();
