// A stand-in for React Native's native side, installed before a bundle runs
// in the Hermes VM of hermes-engine-cli (which has no React Native in it):
//
// - the native module registry: `HotPatch` is whatever the next file put in
//   `globalThis.__hotpatchNative` (smoke-native.js scripts it, device-native.js
//   forwards it to a test's device); `ExceptionsManager` reports a fatal
//   JavaScript error, which on a phone ends the app; every other module React
//   Native asks for is an inert stand-in answering the constants it reads;
// - the microtask queue React Native schedules its work on;
// - a Fabric UI manager that keeps the rendered tree, so a test can read the
//   screen (`__device.screenText()`), and that sends the safe-area insets to
//   each safe-area provider once it is mounted, as a phone does.
//
// What the stand-in sends out is one line each, "\u0001device <json>", on the
// VM's output: {kind: "log" | "fatal" | "call", ...}.
(function () {
  var device = { roots: {}, dispatch: null, insetsSent: [] };
  globalThis.__device = device;
  device.send = function (message) {
    print('\u0001device ' + JSON.stringify(message));
  };
  globalThis.nativeLoggingHook = function (text, level) {
    device.send({ kind: 'log', level: level, text: String(text) });
  };

  // What native code calls in JavaScript (RCTDeviceEventEmitter among them).
  var callable = {};
  globalThis.RN$registerCallableModule = function (name, factory) { callable[name] = factory; };
  device.emit = function (name, body) {
    callable.RCTDeviceEventEmitter().emit(name, body);
  };

  var constants = {
    PlatformConstants: { Version: 34, isTesting: true, reactNativeVersion: { major: 0, minor: 82, patch: 1, prerelease: null }, Brand: 'stand-in', Model: 'stand-in', Fingerprint: 'stand-in', Manufacturer: 'stand-in', Release: '14', Serial: 'stand-in', ServerHost: 'localhost', uiMode: 'normal' },
    AppState: { initialAppState: 'active' },
    DeviceInfo: { Dimensions: { window: { width: 400, height: 800, scale: 1, fontScale: 1 }, screen: { width: 400, height: 800, scale: 1, fontScale: 1 } } },
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
  var modules = {
    NativeMicrotasksCxx: {
      queueMicrotask: function (callback) { Promise.resolve().then(callback); },
    },
    ExceptionsManager: {
      reportException: function (data) {
        device.send({ kind: data.isFatal ? 'fatal' : 'log', level: 3, text: String(data.message) });
      },
      reportFatalException: function (message) { device.send({ kind: 'fatal', text: String(message) }); },
      reportSoftException: function (message) { device.send({ kind: 'log', level: 3, text: String(message) }); },
      updateExceptionMessage: function () {},
      dismissRedbox: function () {},
    },
  };
  globalThis.__turboModuleProxy = function (name) {
    if (name === 'HotPatch') return globalThis.__hotpatchNative || null;
    if (!modules[name]) modules[name] = inert(name);
    return modules[name];
  };
  globalThis.nativeModuleProxy = new Proxy({}, {
    get: function (_target, name) { return globalThis.__turboModuleProxy(name); },
  });
  globalThis.RN$Bridgeless = true;
  globalThis.nativeFlushQueueImmediate = function () {};
  globalThis.__fbBatchedBridgeConfig = { remoteModuleConfig: [] };

  // Fabric: nodes are plain objects; a committed tree is kept per root.
  function node(tag, viewName, rootTag, props, handle) {
    return { tag: tag, viewName: viewName, props: props || {}, children: [], handle: handle };
  }
  function clone(n, props, children) {
    return { tag: n.tag, viewName: n.viewName, props: props || n.props, children: children || n.children.slice(), handle: n.handle };
  }
  function merge(a, b) { return Object.assign({}, a, b); }
  function walk(nodes, visit) {
    nodes.forEach(function (n) { visit(n); walk(n.children, visit); });
  }
  function sendInsets(rootTag) {
    walk(device.roots[rootTag], function (n) {
      if (n.viewName !== 'RNCSafeAreaProvider' || device.insetsSent.indexOf(n.tag) >= 0) return;
      device.insetsSent.push(n.tag);
      var handle = n.handle;
      setTimeout(function () {
        device.dispatch(handle, 'topInsetsChange', {
          insets: { top: 0, left: 0, right: 0, bottom: 0 },
          frame: { x: 0, y: 0, width: 400, height: 800 },
        });
      }, 0);
    });
  }
  globalThis.nativeFabricUIManager = {
    createNode: node,
    cloneNode: function (n) { return clone(n); },
    cloneNodeWithNewChildren: function (n) { return clone(n, null, []); },
    cloneNodeWithNewProps: function (n, p) { return clone(n, merge(n.props, p)); },
    cloneNodeWithNewChildrenAndProps: function (n, p) { return clone(n, merge(n.props, p), []); },
    createChildSet: function () { return []; },
    appendChild: function (parent, child) { parent.children.push(child); },
    appendChildToSet: function (set, child) { set.push(child); },
    completeRoot: function (rootTag, set) { device.roots[rootTag] = set; sendInsets(rootTag); },
    registerEventHandler: function (dispatch) { device.dispatch = dispatch; },
    setNativeProps: function () {},
    getPublicInstance: function () { return null; },
    measure: function () {},
    measureInWindow: function () {},
    measureLayout: function () {},
    dispatchCommand: function () {},
    sendAccessibilityEvent: function () {},
    setIsJSResponder: function () {},
    configureNextLayoutAnimation: function () {},
    findShadowNodeByTag_DEPRECATED: function () { return null; },
    unstable_DefaultEventPriority: 32,
    unstable_DiscreteEventPriority: 2,
    unstable_ContinuousEventPriority: 8,
    unstable_IdleEventPriority: 268435456,
    unstable_getCurrentEventPriority: function () { return 32; },
  };

  /** Start the app registered as `name`, as the native side does once the bundle ran. */
  device.run = function (name) {
    globalThis.RN$AppRegistry.runApplication(name, { rootTag: 11, initialProps: {}, fabric: true });
  };
  /** Every piece of text on the screen, in the order it is drawn. */
  device.screenText = function () {
    var texts = [];
    walk(device.roots[11] || [], function (n) {
      if (n.viewName === 'RCTRawText') texts.push(n.props.text);
    });
    return texts;
  };
})();
