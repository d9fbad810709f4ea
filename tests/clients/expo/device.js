'use strict';
// A strict expo-updates device, for tests only.
//
// Each run is one start of the app, with the device's state kept in a JSON
// file between starts (what expo-updates keeps in its SQLite database):
//
//   node device.js keygen <dir>   make a code-signing key and certificate
//                                 (what `npx expo-updates codesigning:generate` does)
//   node device.js start <state>  launch, then check and download like the app
//
// What it does is what expo-updates 57 does on Android
// (android/src/main/java/expo/modules/updates/ in its npm tarball): the manifest request
// and its headers (FileDownloader.createRequestForRemoteUpdate), the
// multipart answer parsed with Expo's own @expo/multipart-body-parser, the
// expo-signature checked against the embedded certificate with the rules of
// codesigning/*.kt using @expo/code-signing-certificates and node-forge, the
// manifest's rules (ExpoUpdatesUpdate), the directives (UpdateDirective),
// the selection policy (newer commit time only, failed updates never again)
// and every asset downloaded with its hash checked before it is kept.
// It prints one JSON line: what ran and what happened.

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const forge = require('node-forge');
const { parseMultipartMixedResponseAsync } = require('@expo/multipart-body-parser');
const certificates = require('@expo/code-signing-certificates');

const CRASH = 'HOTPATCH_TEST_CRASH_ON_START';
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const B64URL_SHA256 = /^[A-Za-z0-9_-]{43}$/;

class DeviceError extends Error {}

function fail(message) {
  throw new DeviceError(message);
}

// --- structured header fields (RFC 8941), as expo-structured-headers parses them ---

function parseDictionary(text) {
  const members = {};
  let rest = text.trim();
  while (rest.length > 0) {
    const key = /^[a-z*][a-z0-9_.*-]*/.exec(rest);
    if (!key) fail(`expo-signature: bad dictionary at ${JSON.stringify(rest)}`);
    rest = rest.slice(key[0].length);
    let value = true;
    if (rest.startsWith('=')) {
      rest = rest.slice(1);
      const string = /^"((?:[^"\\]|\\["\\])*)"/.exec(rest);
      const token = /^[A-Za-z*][!#$%&'*+.^_`|~:/0-9A-Za-z-]*/.exec(rest);
      if (string) {
        value = string[1].replace(/\\(["\\])/g, '$1');
        rest = rest.slice(string[0].length);
      } else if (token) {
        value = { token: token[0] };
        rest = rest.slice(token[0].length);
      } else {
        fail(`expo-signature: bad value at ${JSON.stringify(rest)}`);
      }
    }
    members[key[0]] = value;
    if (rest.length === 0) break;
    const separator = /^[ \t]*,[ \t]*/.exec(rest);
    if (!separator || separator[0].length === rest.length) fail('expo-signature: members must be separated by ","');
    rest = rest.slice(separator[0].length);
  }
  return members;
}

function stringList(items) {
  return items.map((item) => `"${item}"`).join(', ');
}

// --- code signing (codesigning/CodeSigningConfiguration.kt, Certificate rules) ---

function checkCertificate(certificate, now) {
  if (certificate.validity.notBefore > now || certificate.validity.notAfter < now) {
    fail('Certificate not valid now');
  }
  if (certificate.issuer.hash !== certificate.subject.hash || !certificate.verify(certificate)) {
    fail('Certificate is not self-signed');
  }
  const keyUsage = certificate.getExtension('keyUsage');
  if (!keyUsage || !keyUsage.digitalSignature) fail('X509v3 Key Usage: Digital Signature not present');
  const extKeyUsage = certificate.getExtension('extKeyUsage');
  if (!extKeyUsage || !extKeyUsage.codeSigning) fail('X509v3 Extended Key Usage: Code Signing not present');
}

function verifySignature(state, signatureHeader, body) {
  if (signatureHeader === undefined || signatureHeader === null) {
    fail('No expo-signature header specified');
  }
  const fields = parseDictionary(String(signatureHeader));
  if (typeof fields.sig !== 'string') fail('Structured field sig not found in expo-signature header');
  const keyId = typeof fields.keyid === 'string' ? fields.keyid : 'root';
  const alg = typeof fields.alg === 'string' ? fields.alg : 'rsa-v1_5-sha256';
  if (alg !== 'rsa-v1_5-sha256') fail(`Invalid algorithm ${alg}`);
  if (keyId !== state.codeSigning.keyId) fail(`Key with keyid=${keyId} not found in client configuration`);
  const certificate = certificates.convertCertificatePEMToCertificate(
    fs.readFileSync(state.codeSigning.certificate, 'utf8'),
  );
  checkCertificate(certificate, new Date());
  const digest = forge.md.sha256.create();
  digest.update(body.toString('binary'));
  let valid = false;
  try {
    valid = certificate.publicKey.verify(digest.digest().bytes(), forge.util.decode64(fields.sig));
  } catch (error) {
    valid = false;
  }
  if (!valid) fail('Manifest download was successful, but signature was incorrect');
}

// --- requests (FileDownloader.kt) ---

function manifestHeaders(state) {
  const headers = {
    'Expo-Current-Update-ID': state.current.id.toLowerCase(),
    'Expo-Embedded-Update-ID': state.embedded.id.toLowerCase(),
    Accept: 'multipart/mixed,application/expo+json,application/json',
    'Expo-Platform': state.platform,
    'Expo-Protocol-Version': '1',
    'Expo-API-Version': '1',
    'Expo-Updates-Environment': 'BARE',
    'Expo-JSON-Error': 'true',
    'EAS-Client-ID': state.clientId,
    'Expo-Runtime-Version': state.runtimeVersion,
    ...state.requestHeaders,
  };
  if (state.recentFailed.length > 0) {
    headers['Expo-Recent-Failed-Update-IDs'] = stringList(state.recentFailed);
  }
  if (state.codeSigning) {
    headers['expo-expect-signature'] = `sig, keyid="${state.codeSigning.keyId}", alg="rsa-v1_5-sha256"`;
  }
  return headers;
}

function assetHeaders(state, requestedId) {
  return {
    'Expo-Current-Update-ID': state.current.id.toLowerCase(),
    'Expo-Embedded-Update-ID': state.embedded.id.toLowerCase(),
    'Expo-Requested-Update-ID': requestedId,
    'Expo-Platform': state.platform,
    'Expo-Protocol-Version': '1',
    'Expo-API-Version': '1',
    'Expo-Updates-Environment': 'BARE',
    'EAS-Client-ID': state.clientId,
    Accept: '*/*',
    'Expo-Runtime-Version': state.runtimeVersion,
    ...state.requestHeaders,
  };
}

// --- the answer (FileDownloader.parseRemoteUpdateResponse, UpdateDirective, ExpoUpdatesUpdate) ---

async function fetchUpdate(state) {
  const response = await fetch(state.url, { headers: manifestHeaders(state) });
  const body = Buffer.from(await response.arrayBuffer());
  if (!response.ok) fail(`Remote update request not successful: ${response.status} ${body.toString('utf8')}`);
  const protocol = response.headers.get('expo-protocol-version');
  if (protocol === null) fail('Legacy manifests are no longer supported');
  if (protocol !== '0' && protocol !== '1') fail('Unsupported expo-protocol-version');
  if (response.status === 204 || body.length === 0) {
    if (Number(protocol) > 0) return { kind: 'noUpdate' };
    fail('Invalid update response: Empty body');
  }
  const contentType = response.headers.get('content-type') || '';
  let manifestPart = null;
  let directivePart = null;
  if (contentType.toLowerCase().startsWith('multipart/')) {
    const parts = await parseMultipartMixedResponseAsync(contentType, body);
    for (const part of parts) {
      if (part.name === 'manifest') manifestPart = part;
      if (part.name === 'directive') directivePart = part;
    }
    if (!manifestPart && !directivePart) {
      if (Number(protocol) > 0) return { kind: 'noUpdate' };
      fail('Invalid update response: Empty body');
    }
  } else {
    manifestPart = { body: body.toString('utf8'), headers: new Map([['expo-signature', response.headers.get('expo-signature')]]) };
  }
  if (directivePart) {
    if (state.codeSigning) verifySignature(state, directivePart.headers.get('expo-signature'), Buffer.from(directivePart.body, 'utf8'));
    const directive = JSON.parse(directivePart.body);
    if (directive.type === 'noUpdateAvailable') return { kind: 'noUpdate' };
    if (directive.type === 'rollBackToEmbedded') {
      const commitTime = directive.parameters && directive.parameters.commitTime;
      if (typeof commitTime !== 'string' || new Date(commitTime).toISOString() !== commitTime) {
        fail('rollBackToEmbedded needs parameters.commitTime');
      }
      return { kind: 'rollBackToEmbedded', commitTime };
    }
    fail(`Invalid message messageType: ${directive.type}`);
  }
  const raw = Buffer.from(manifestPart.body, 'utf8');
  if (state.codeSigning) verifySignature(state, manifestPart.headers.get('expo-signature'), raw);
  return { kind: 'manifest', manifest: checkManifest(state, JSON.parse(manifestPart.body)) };
}

function checkAsset(asset, launch) {
  if (typeof asset.key !== 'string' || asset.key.length === 0) fail('asset without key');
  if (typeof asset.url !== 'string' || !/^https?:\/\//.test(asset.url)) fail(`asset ${asset.key} has no absolute url`);
  if (!B64URL_SHA256.test(asset.hash || '')) fail(`asset ${asset.key} has no base64url sha256`);
  if (typeof asset.contentType !== 'string') fail(`asset ${asset.key} has no contentType`);
  if (!launch) {
    if (typeof asset.fileExtension !== 'string' || !asset.fileExtension.startsWith('.')) {
      fail(`asset ${asset.key} has no fileExtension`);
    }
    const name = asset.key + asset.fileExtension;
    if (/[/\\\0]/.test(name) || name === '.' || name === '..') fail(`unsafe asset file name ${name}`);
  }
}

function checkManifest(state, manifest) {
  if (!UUID.test(manifest.id || '')) fail('manifest id is not a UUID');
  if (typeof manifest.createdAt !== 'string' || new Date(manifest.createdAt).toISOString() !== manifest.createdAt) {
    fail(`createdAt ${manifest.createdAt} is not in toISOString() form`);
  }
  if (manifest.runtimeVersion !== state.runtimeVersion) fail('runtimeVersion does not match the request');
  if (!manifest.launchAsset) fail('manifest has no launchAsset');
  checkAsset(manifest.launchAsset, true);
  const seen = new Set();
  for (const asset of manifest.assets || []) {
    checkAsset(asset, false);
    if (seen.has(asset.key)) fail(`duplicate asset key ${asset.key}`);
    seen.add(asset.key);
  }
  return manifest;
}

async function download(state, id, asset, name) {
  const response = await fetch(asset.url, { headers: assetHeaders(state, id) });
  const data = Buffer.from(await response.arrayBuffer());
  if (!response.ok) fail(`asset ${asset.key}: ${response.status}`);
  if (!response.headers.get('content-type')) fail(`asset ${asset.key} has no content-type`);
  const hash = crypto.createHash('sha256').update(data).digest('base64url');
  if (hash !== asset.hash) {
    fail('File download was successful but base64url-encoded SHA-256 did not match expected');
  }
  const file = path.join(state.dir, name);
  fs.writeFileSync(`${file}.tmp`, data);
  fs.renameSync(`${file}.tmp`, file);
  return file;
}

// --- launching (the launcher's selection policy, UpdateDao.loadLaunchableUpdatesForScope) ---

function launchable(state) {
  const candidates = Object.entries(state.updates)
    .filter(([, u]) => u.successfulLaunches > 0 || u.failedLaunches < 1)
    .sort((a, b) => (a[1].commitTime < b[1].commitTime ? 1 : -1));
  const newest = candidates[0];
  if (!newest || (state.rolledBackToEmbeddedAt && state.rolledBackToEmbeddedAt >= newest[1].commitTime)) {
    return null;
  }
  return newest;
}

async function start(stateFile) {
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
  fs.mkdirSync(state.dir, { recursive: true });
  const chosen = launchable(state);
  const result = { running: chosen ? chosen[0] : null, events: [] };
  if (chosen) {
    const [id, update] = chosen;
    const code = fs.readFileSync(update.launchAsset, 'utf8');
    if (code.includes(CRASH) && update.successfulLaunches === 0) {
      update.failedLaunches += 1;
      state.recentFailed = [id, ...state.recentFailed.filter((f) => f !== id)].slice(0, 5);
      fs.writeFileSync(stateFile, JSON.stringify(state, null, 2));
      result.crashed = true;
      return result;
    }
    update.successfulLaunches += 1;
    state.current = { id, commitTime: update.commitTime };
    result.code = code;
  } else {
    state.current = { ...state.embedded };
  }
  const answer = await fetchUpdate(state);
  result.check = answer.kind;
  if (answer.kind === 'rollBackToEmbedded') {
    if (answer.commitTime > state.current.commitTime) state.rolledBackToEmbeddedAt = answer.commitTime;
  } else if (answer.kind === 'manifest') {
    const manifest = answer.manifest;
    result.offered = manifest.id;
    const newer = manifest.createdAt > state.current.commitTime;
    if (newer && !(manifest.id in state.updates)) {
      const launchAsset = await download(state, manifest.id, manifest.launchAsset, `${manifest.launchAsset.key}.bundle`);
      for (const asset of manifest.assets || []) {
        await download(state, manifest.id, asset, asset.key + asset.fileExtension);
      }
      state.updates[manifest.id] = {
        commitTime: manifest.createdAt,
        launchAsset,
        assets: (manifest.assets || []).map((a) => a.key + a.fileExtension),
        successfulLaunches: 0,
        failedLaunches: 0,
      };
      result.events.push(`downloaded ${manifest.id}`);
    }
  }
  fs.writeFileSync(stateFile, JSON.stringify(state, null, 2));
  return result;
}

function keygen(dir) {
  const keyPair = certificates.generateKeyPair();
  const validityNotBefore = new Date(Date.now() - 60 * 1000);
  const validityNotAfter = new Date(Date.now() + 10 * 365 * 24 * 3600 * 1000);
  const certificate = certificates.generateSelfSignedCodeSigningCertificate({
    keyPair,
    validityNotBefore,
    validityNotAfter,
    commonName: 'HotPatch test app',
  });
  certificates.validateSelfSignedCertificate(certificate, keyPair);
  const pem = certificates.convertKeyPairToPEM(keyPair);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'private-key.pem'), pem.privateKeyPEM);
  fs.writeFileSync(path.join(dir, 'certificate.pem'), certificates.convertCertificateToCertificatePEM(certificate));
  return { privateKey: path.join(dir, 'private-key.pem'), certificate: path.join(dir, 'certificate.pem') };
}

async function main() {
  const [command, target] = process.argv.slice(2);
  try {
    const result = command === 'keygen' ? keygen(target) : await start(target);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } catch (error) {
    if (!(error instanceof DeviceError)) throw error;
    process.stdout.write(`${JSON.stringify({ error: error.message })}\n`);
  }
}

main();
