"use strict";
// The legacy acquisition SDK (code-push 2.0.7's script/acquisition-sdk.js, as
// react-native-code-push 5.6 and older ship it), unmodified, against a server.
// Its HTTP requester is the one those apps provide: a fetch with a JSON body.
//
// Usage:
//   node legacy.js SERVER_URL DEPLOYMENT_KEY APP_VERSION CLIENT_ID check [LABEL PACKAGE_HASH]
//   node legacy.js SERVER_URL DEPLOYMENT_KEY APP_VERSION CLIENT_ID deploy LABEL STATUS
//   node legacy.js SERVER_URL DEPLOYMENT_KEY APP_VERSION CLIENT_ID download LABEL
// Prints one JSON line: the SDK's answer, or {"error": message}.

const { AcquisitionManager } = require("code-push-legacy/script/acquisition-sdk");

const [serverUrl, deploymentKey, appVersion, clientUniqueId, command, ...rest] = process.argv.slice(2);
const VERBS = ["GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT"];

const requester = {
  request(verb, url, requestBody, callback) {
    if (typeof requestBody === "function") {
      callback = requestBody;
      requestBody = null;
    }
    const headers = { Accept: "application/json", "Content-Type": "application/json" };
    fetch(url, { method: VERBS[verb], headers, body: requestBody || undefined })
      .then(async (response) => callback(null, { statusCode: response.status, body: await response.text() }))
      .catch((error) => callback(error, null));
  },
};

const sdk = new AcquisitionManager(requester, { serverUrl, deploymentKey, appVersion, clientUniqueId });
const done = (error, result) => {
  process.stdout.write(JSON.stringify(error ? { error: error.message } : { result: result === undefined ? null : result }) + "\n");
};

if (command === "check") {
  const [label, packageHash] = rest;
  sdk.queryUpdateWithCurrentPackage({ appVersion, label, packageHash }, done);
} else if (command === "deploy") {
  const [label, status] = rest;
  sdk.reportStatusDeploy({ label, appVersion }, status, null, null, done);
} else if (command === "download") {
  sdk.reportStatusDownload({ label: rest[0] }, done);
} else {
  done(new Error(`unknown command ${command}`));
}
