// The HotPatch native module of a test device (tests/e2e/test_sdk_app_hermes.py),
// installed with platform.js before the app's bundle runs in a Hermes VM.
// Each call goes out as one line, {kind: "call", id, method, args}, and its
// promise waits until the device answers with `__device.settle(id, error,
// value)`. The device does what the Android module does, with a real agent
// that verifies and installs what a real server sends.
(function () {
  var device = globalThis.__device;
  var waiting = {};
  var next = 1;
  function call(method, args) {
    var id = next++;
    device.send({ kind: 'call', id: id, method: method, args: args });
    return new Promise(function (resolve, reject) {
      waiting[id] = { resolve: resolve, reject: reject };
    });
  }
  /** Settle call `id`: with `error` ({code, message, userInfo}) as React Native rejects, or `value`. */
  device.settle = function (id, error, value) {
    var promise = waiting[id];
    delete waiting[id];
    if (error === null) {
      promise.resolve(value);
      return;
    }
    var rejection = new Error(error.message);
    rejection.code = error.code;
    rejection.userInfo = error.userInfo;
    promise.reject(rejection);
  };
  globalThis.__hotpatchNative = {
    configure: function (config) { return call('configure', [config]); },
    checkForUpdate: function () { return call('checkForUpdate', []); },
    downloadUpdate: function (manifestId) { return call('downloadUpdate', [manifestId]); },
    notifyAppReady: function () { return call('notifyAppReady', []); },
    getStatus: function () { return call('getStatus', []); },
    restartApp: function () { device.send({ kind: 'call', id: 0, method: 'restartApp', args: [] }); },
    addListener: function () {},
    removeListeners: function () {},
  };
})();
