// The HotPatch native module of the smoke test (smoke.js), installed with
// platform.js before the bundle runs in the Hermes VM: scripted answers, each
// call recorded, progress sent through React Native's event emitter.
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
      globalThis.__device.emit('HotPatchProgress', { stage: 'download', done: 600, total: 1200 });
      globalThis.__device.emit('HotPatchProgress', { stage: 'install', done: 2, total: 2 });
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
  globalThis.__hotpatchNative = hotpatch;
})();
