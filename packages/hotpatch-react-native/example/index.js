/**
 * The smoke test's entry: the SDK, bundled by Metro with real react-native
 * 0.82.1, driven through a scripted native module (smoke-native.js)
 * and printing what it saw. Run by tests/e2e/test_sdk_hermes.py.
 */
import HotPatch, { VerificationError, useHotPatch } from 'hotpatch-react-native';

const say = (line) => globalThis.print(`hotpatch-smoke: ${line}`);

async function main() {
  say(`hook ${typeof useHotPatch}`);
  await HotPatch.configure({
    serverUrl: 'https://updates.example.com',
    appId: 'com.example.app',
    checkOnLaunch: false,
  });
  const seen = [];
  const result = await HotPatch.sync({ onProgress: (p) => seen.push(p.stage) });
  say(`sync ${result.status} ${result.update.version} mode=${result.installMode} progress=${seen.join(',')}`);
  say(`snapshot ${HotPatch.getSnapshot().status}`);
  await HotPatch.notifyAppReady();
  globalThis.__hotpatchFake.failNext = {
    code: 'E_VERIFICATION',
    message: 'sequence 1 is older than the newest accepted 2',
    userInfo: { reason: 'RollbackError' },
  };
  try {
    await HotPatch.sync();
    say('refusal not reported');
  } catch (error) {
    say(`refused ${error instanceof VerificationError} ${error.reason}`);
  }
  say(`calls ${globalThis.__hotpatchFake.calls.join(',')}`);
}

main().then(
  () => say('done'),
  (error) => say(`failed ${error && error.stack ? error.stack : error}`),
);
