"use strict";
// One launch of an Android app that ships react-native-code-push 9.0.1.
//
// The JavaScript that runs is the published client, unmodified:
// react-native-code-push's CodePush.js, package-mixins.js and
// request-fetch-adapter.js, and the code-push 4.2.3 acquisition SDK. They are
// compiled to CommonJS with Babel at load time, the transform Metro applies
// when it bundles them into an app.
//
// What a phone's native side does is ported here from the client's Android
// sources (com.microsoft.codepush.react: CodePush, CodePushNativeModule,
// CodePushUpdateManager, CodePushTelemetryManager, SettingsManager,
// CodePushUpdateUtils, FileUtils): the pending-update and rollback logic of
// each start, the download (Content-Length must equal the bytes received;
// zip by its first four bytes; entries read in order from their local headers
// as java.util.zip.ZipInputStream reads them; no entry may leave the folder),
// the bundle search, diff updates (hotcodepush.json: the running package's
// files, minus deletedFiles, under the zip's), and the folder hash. Unlike a device, which checks the
// folder hash only for diff and signed updates, this one checks it for every
// update and fails the download when it differs from package_hash.
//
// With a CodePushPublicKey (PUBLIC_KEY_PEM_FILE), an update must carry
// CodePush/.codepushrelease, an RS256 JWT over its package hash, verified as
// CodePushUpdateUtils.verifyUpdateSignature does.
//
// Usage: node device.js STATE_DIR SERVER_URL DEPLOYMENT_KEY APP_VERSION [PUBLIC_KEY_PEM_FILE]
// Prints one JSON line describing the launch. The bundle of an update "crashes"
// (the process ends before the app calls notifyAppReady) when it contains the
// text HOTPATCH_TEST_CRASH_ON_START.

const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const zlib = require("zlib");
const Module = require("module");
const babel = require("@babel/core");

const [stateDir, serverUrl, deploymentKey, appVersion, publicKeyFile] = process.argv.slice(2);
const publicKey = publicKeyFile ? fs.readFileSync(publicKeyFile, "utf8") : null;
const BUNDLE = "index.android.bundle";
const CRASH = "HOTPATCH_TEST_CRASH_ON_START";
const logs = [];
console.log = (...args) => logs.push(args.join(" "));

// --- Metro's transform of the client's sources --------------------------------
const clientDir = path.dirname(require.resolve("react-native-code-push/package.json"));
const compile = Module._extensions[".js"];
Module._extensions[".js"] = (module, filename) => {
  if (!filename.startsWith(clientDir + path.sep) || filename.includes("node_modules", clientDir.length)) {
    return compile(module, filename);
  }
  const { code } = babel.transformSync(fs.readFileSync(filename, "utf8"), {
    filename,
    babelrc: false,
    configFile: false,
    plugins: ["@babel/plugin-transform-modules-commonjs", "@babel/plugin-transform-react-jsx"],
  });
  module._compile(code, filename);
};

// --- persistent state (SharedPreferences and the CodePush folder) ------------
fs.mkdirSync(stateDir, { recursive: true });
const prefsFile = path.join(stateDir, "prefs.json");
const prefs = fs.existsSync(prefsFile) ? JSON.parse(fs.readFileSync(prefsFile, "utf8")) : {};
const savePrefs = () => fs.writeFileSync(prefsFile, JSON.stringify(prefs));
const codePushPath = path.join(stateDir, "CodePush");
const infoFile = path.join(codePushPath, "codepush.json");
const packageInfo = () => (fs.existsSync(infoFile) ? JSON.parse(fs.readFileSync(infoFile, "utf8")) : {});
const savePackageInfo = (info) => {
  fs.mkdirSync(codePushPath, { recursive: true });
  fs.writeFileSync(infoFile, JSON.stringify(info));
};
const packageFolder = (hash) => path.join(codePushPath, hash);
const readPackage = (hash) => {
  if (!hash) return null;
  const file = path.join(packageFolder(hash), "app.json");
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : null;
};
const currentPackage = () => readPackage(packageInfo().currentPackage);
const previousPackage = () => readPackage(packageInfo().previousPackage);

if (!prefs.clientUniqueId) {
  prefs.clientUniqueId = crypto.randomUUID(); // CodePushNativeModule: a UUID kept in preferences
  savePrefs();
}

// --- the native start (CodePush.initializeUpdateAfterRestart) ----------------
let didUpdate = false;
let needToReportRollback = false;
const events = [];

function rollbackPackage() {
  const failed = currentPackage();
  prefs.failedUpdates = [...(prefs.failedUpdates || []), failed];
  const info = packageInfo();
  fs.rmSync(packageFolder(info.currentPackage), { recursive: true, force: true });
  savePackageInfo({ currentPackage: info.previousPackage, previousPackage: null });
  delete prefs.pendingUpdate;
  savePrefs();
  needToReportRollback = true;
  events.push(`rolled back ${failed.label}`);
}

function clearUpdates() {
  fs.rmSync(codePushPath, { recursive: true, force: true });
  delete prefs.pendingUpdate;
  delete prefs.failedUpdates;
  savePrefs();
}

const pending = prefs.pendingUpdate;
if (pending) {
  const current = currentPackage();
  if (current == null || current.appVersion !== appVersion) {
    clearUpdates();
  } else if (pending.isLoading) {
    rollbackPackage(); // started before, and never reached notifyApplicationReady
  } else {
    didUpdate = true;
    prefs.pendingUpdate = { hash: pending.hash, isLoading: true };
    savePrefs();
  }
}
// getJSBundleFile: run the current package only on the binary it was made for.
let running = currentPackage();
if (running && running.appVersion !== appVersion) {
  clearUpdates();
  running = null;
}

// --- the native module -------------------------------------------------------
const isPending = (hash) => !!(prefs.pendingUpdate && !prefs.pendingUpdate.isLoading && prefs.pendingUpdate.hash === hash);
const statusIdentifier = (pkg) => (pkg.deploymentKey && pkg.label ? `${pkg.deploymentKey}:${pkg.label}` : null);

function previousReport(report) {
  const previous = prefs.lastDeploymentReport;
  if (previous && previous.includes(":")) {
    const at = previous.indexOf(":");
    report.previousDeploymentKey = previous.slice(0, at);
    report.previousLabelOrAppVersion = previous.slice(at + 1);
  } else if (previous) {
    report.previousLabelOrAppVersion = previous;
  }
  return report;
}

function readEntries(zip) {
  // java.util.zip.ZipInputStream: local headers in order, until the central directory.
  const entries = [];
  let at = 0;
  while (zip.readUInt32LE(at) === 0x04034b50) {
    const flags = zip.readUInt16LE(at + 6);
    const method = zip.readUInt16LE(at + 8);
    const compressedSize = zip.readUInt32LE(at + 18);
    const nameLength = zip.readUInt16LE(at + 26);
    const extraLength = zip.readUInt16LE(at + 28);
    const name = zip.toString("utf8", at + 30, at + 30 + nameLength);
    const start = at + 30 + nameLength + extraLength;
    if (flags & 8 && method === 0) throw new Error(`only DEFLATED entries can have EXT descriptor: ${name}`);
    if (flags & 8) throw new Error(`entry ${name} has a data descriptor: sizes unknown from its header`);
    const raw = zip.subarray(start, start + compressedSize);
    entries.push({ name, data: method === 0 ? raw : zlib.inflateRawSync(raw) });
    at = start + compressedSize;
  }
  return entries;
}

function folderHash(folder) {
  // CodePushUpdateUtils.verifyFolderHash / computeHash
  const lines = [];
  const walk = (dir) => {
    for (const name of fs.readdirSync(dir)) {
      const full = path.join(dir, name);
      const relative = path.relative(folder, full).split(path.sep).join("/");
      if (relative.startsWith("__MACOSX/") || name === ".DS_Store" || name === ".codepushrelease") continue;
      if (fs.statSync(full).isDirectory()) walk(full);
      else lines.push(`${relative}:${crypto.createHash("sha256").update(fs.readFileSync(full)).digest("hex")}`);
    }
  };
  walk(folder);
  lines.sort();
  return crypto.createHash("sha256").update(JSON.stringify(lines)).digest("hex");
}

function verifyUpdateSignature(folder, packageHash) {
  // CodePushUpdateUtils.verifyUpdateSignature and verifyAndDecodeJWT (nimbus-jose-jwt, RSASSAVerifier)
  let signature;
  try {
    signature = fs.readFileSync(path.join(folder, "CodePush", ".codepushrelease"), "utf8");
  } catch (error) {
    throw new Error("The update could not be verified because no signature was found.");
  }
  let claims = null;
  const parts = signature.split(".");
  if (parts.length === 3) {
    try {
      const header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
      const valid = ["RS256", "RS384", "RS512"].includes(header.alg) && crypto.verify(
        `sha${header.alg.slice(2)}`,
        Buffer.from(`${parts[0]}.${parts[1]}`, "ascii"),
        publicKey,
        Buffer.from(parts[2], "base64url"),
      );
      if (valid) claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    } catch (error) {
      claims = null;
    }
  }
  if (claims === null) {
    throw new Error("The update could not be verified because it was not signed by a trusted party.");
  }
  if (typeof claims.contentHash !== "string") {
    throw new Error("The update could not be verified because the signature did not specify a content hash.");
  }
  if (claims.contentHash !== packageHash) throw new Error("The update contents failed the code signing check.");
}

function findBundle(folder) {
  for (const name of fs.readdirSync(folder)) {
    const full = path.join(folder, name);
    if (fs.statSync(full).isDirectory()) {
      const inner = findBundle(full);
      if (inner) return path.join(name, inner);
    } else if (name === BUNDLE) {
      return name;
    }
  }
  return null;
}

async function downloadPackage(update) {
  const folder = packageFolder(update.packageHash);
  fs.rmSync(folder, { recursive: true, force: true });
  const response = await fetch(new URL(update.downloadUrl), { headers: { "Accept-Encoding": "identity" } });
  if (response.status >= 400) throw new Error(`download failed: HTTP ${response.status}`);
  const body = Buffer.from(await response.arrayBuffer());
  const declared = response.headers.get("content-length");
  const totalBytes = declared === null ? -1 : Number(declared);
  if (totalBytes !== body.length) throw new Error(`Received ${body.length} bytes, expected ${totalBytes}`);
  if (response.headers.get("content-encoding")) throw new Error("the download was content-encoded");
  fs.mkdirSync(folder, { recursive: true });
  let isDiffUpdate = false;
  if (body.readUInt32BE(0) !== 0x504b0304) {
    fs.writeFileSync(path.join(folder, BUNDLE), body);
  } else {
    const entries = readEntries(body);
    const diffManifest = entries.find((entry) => entry.name === "hotcodepush.json");
    if (diffManifest) {
      // copyNecessaryFilesFromCurrentPackage: the running package, minus deletedFiles
      isDiffUpdate = true;
      const running = currentPackage();
      if (running) fs.cpSync(packageFolder(running.packageHash), folder, { recursive: true });
      for (const name of JSON.parse(diffManifest.data.toString("utf8")).deletedFiles) {
        fs.rmSync(path.join(folder, name), { force: true });
      }
      fs.rmSync(path.join(folder, "app.json"), { force: true }); // the old package's metadata
    }
    for (const entry of entries) {
      if (entry === diffManifest) continue;
      const target = path.resolve(folder, entry.name);
      if (!target.startsWith(path.resolve(folder) + path.sep)) throw new Error(`zip entry escapes: ${entry.name}`);
      if (entry.name.endsWith("/")) continue;
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, entry.data);
    }
  }
  const bundlePath = findBundle(folder);
  if (bundlePath === null) {
    throw new Error(`Update is invalid - A JS bundle file named "${BUNDLE}" could not be found`);
  }
  const signed = fs.existsSync(path.join(folder, "CodePush", ".codepushrelease"));
  if (publicKey && !signed) {
    throw new Error("Error! Public key was provided but there is no JWT signature within app bundle to verify.");
  }
  const computed = folderHash(folder);
  if (computed !== update.packageHash) {
    throw new Error(`The update contents failed the data integrity check: ${computed} != ${update.packageHash}`);
  }
  if (publicKey) verifyUpdateSignature(folder, update.packageHash);
  const metadata = { ...update, bundlePath };
  fs.writeFileSync(path.join(folder, "app.json"), JSON.stringify(metadata));
  events.push(`downloaded ${update.label}${isDiffUpdate ? " (diff)" : ""}`);
  return metadata;
}

const nativeCodePush = {
  codePushInstallModeImmediate: 0,
  codePushInstallModeOnNextRestart: 1,
  codePushInstallModeOnNextResume: 2,
  codePushInstallModeOnNextSuspend: 3,
  codePushUpdateStateRunning: 0,
  codePushUpdateStatePending: 1,
  codePushUpdateStateLatest: 2,
  async getConfiguration() {
    return { appVersion, clientUniqueId: prefs.clientUniqueId, deploymentKey, serverUrl };
  },
  async getUpdateMetadata(updateState) {
    const current = currentPackage();
    if (!current) return null;
    const currentIsPending = isPending(current.packageHash);
    if (updateState === 1 && !currentIsPending) return null;
    if (updateState === 0 && currentIsPending) return previousPackage();
    return { ...current, isPending: currentIsPending };
  },
  async isFailedUpdate(hash) {
    return (prefs.failedUpdates || []).some((p) => p && p.packageHash === hash);
  },
  async isFirstRun(hash) {
    return didUpdate && !!hash && hash === (currentPackage() || {}).packageHash;
  },
  async downloadUpdate(update) {
    return downloadPackage(update);
  },
  async installUpdate(update) {
    const info = packageInfo();
    if (update.packageHash !== info.currentPackage) {
      if (info.previousPackage && info.previousPackage !== update.packageHash) {
        fs.rmSync(packageFolder(info.previousPackage), { recursive: true, force: true });
      }
      savePackageInfo({ currentPackage: update.packageHash, previousPackage: info.currentPackage || null });
    }
    prefs.pendingUpdate = { hash: update.packageHash, isLoading: false };
    savePrefs();
    events.push(`installed ${update.label}`);
  },
  async notifyApplicationReady() {
    delete prefs.pendingUpdate;
    savePrefs();
  },
  async getNewStatusReport() {
    if (needToReportRollback) {
      needToReportRollback = false;
      const failed = prefs.failedUpdates || [];
      if (failed.length > 0) return { package: failed[failed.length - 1], status: "DeploymentFailed" };
    } else if (didUpdate) {
      const current = currentPackage();
      const id = current && statusIdentifier(current);
      if (id && prefs.lastDeploymentReport !== id) {
        return previousReport({ package: current, status: "DeploymentSucceeded" });
      }
    } else if (!currentPackage()) {
      if (prefs.lastDeploymentReport !== appVersion) return previousReport({ appVersion });
    } else if (prefs.retryReport) {
      return prefs.retryReport;
    }
    return "";
  },
  recordStatusReported(report) {
    if (report.status === "DeploymentFailed") return;
    if (report.appVersion) prefs.lastDeploymentReport = report.appVersion;
    else if (report.package) prefs.lastDeploymentReport = statusIdentifier(report.package);
    delete prefs.retryReport;
    savePrefs();
  },
  saveStatusReportForRetry(report) {
    prefs.retryReport = report;
    savePrefs();
  },
  async setLatestRollbackInfo(hash) {
    const info = prefs.latestRollbackInfo;
    const count = info && info.packageHash === hash ? info.count + 1 : 1;
    prefs.latestRollbackInfo = { packageHash: hash, time: Date.now(), count };
    savePrefs();
  },
  async getLatestRollbackInfo() {
    return prefs.latestRollbackInfo || null;
  },
  restartApp() {
    events.push("restart requested");
  },
  clearPendingRestart() {},
  allow() {},
  disallow() {},
  clearUpdates,
  addListener() {},
  removeListeners() {},
};

// --- react-native, as much of it as CodePush.js touches ----------------------
class NativeEventEmitter {
  addListener() {
    return { remove() {} };
  }
}
const reactNative = {
  NativeModules: { CodePush: nativeCodePush },
  NativeEventEmitter,
  Platform: { OS: "android", select: (o) => o.android },
  AppState: { currentState: "active", addEventListener: () => ({ remove() {} }) },
  Alert: { alert() {} },
};
const rnPath = path.join(stateDir, "node_modules", "react-native", "index.js");
Module._cache[rnPath] = { id: rnPath, filename: rnPath, loaded: true, exports: reactNative };
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return request === "react-native" ? rnPath : resolve.call(this, request, ...rest);
};

// --- the app's JavaScript ------------------------------------------------------
async function main() {
  const runningPackage = currentPackage();
  const bundleFile = runningPackage ? path.join(packageFolder(runningPackage.packageHash), runningPackage.bundlePath) : null;
  const runningLabel = runningPackage ? runningPackage.label : null;
  if (bundleFile && fs.readFileSync(bundleFile, "utf8").includes(CRASH)) {
    events.push(`crashed running ${runningLabel}`);
    return { running: runningLabel, crashed: true };
  }
  const CodePush = require("react-native-code-push");
  const statuses = [];
  let mismatch = null;
  const status = await CodePush.sync(
    { installMode: CodePush.InstallMode.ON_NEXT_RESTART, mandatoryInstallMode: CodePush.InstallMode.ON_NEXT_RESTART },
    (s) => statuses.push(s),
    null,
    (update) => {
      mismatch = update.appVersion;
    },
  );
  const names = Object.fromEntries(Object.entries(CodePush.SyncStatus).map(([k, v]) => [v, k]));
  // Let the fire-and-forget reports (download, deploy) finish before the "process" ends.
  await new Promise((r) => setTimeout(r, 300));
  return {
    running: runningLabel,
    crashed: false,
    status: names[status],
    statuses: statuses.map((s) => names[s]),
    binaryMismatch: mismatch,
  };
}

main()
  .then((result) => {
    process.stdout.write(JSON.stringify({ ...result, events, logs, clientUniqueId: prefs.clientUniqueId }) + "\n");
  })
  .catch((error) => {
    process.stdout.write(JSON.stringify({ error: String(error && error.stack), events, logs }) + "\n");
    process.exitCode = 1;
  });
