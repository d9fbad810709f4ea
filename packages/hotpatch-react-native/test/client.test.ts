/**
 * The JavaScript layer over a scripted native module, progress source,
 * AppState and clock: what it asks the native side, what it reports, and
 * when it restarts. (The native side's own decisions are tested by the
 * conformance scenarios of its core.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createHotPatch, type HotPatch, type SyncOptions } from '../src/client';
import {
  ConfigurationError,
  HotPatchError,
  NetworkError,
  StorageError,
  VerificationError,
  fromNative,
} from '../src/errors';
import type { NativeProgress } from '../src/native';
import { CONFIG, FakeAppState, FakeNative, FakeProgress, UPDATE } from './fakes';

interface Harness {
  hotpatch: HotPatch;
  native: FakeNative;
  progress: FakeProgress;
  appState: FakeAppState;
  clock: { ms: number };
}

async function configured(options: SyncOptions | null = null): Promise<Harness> {
  const native = new FakeNative();
  const progress = new FakeProgress(native);
  const appState = new FakeAppState();
  const clock = { ms: 1_000_000 };
  const hotpatch = createHotPatch({ native, progress, appState, now: () => clock.ms });
  await hotpatch.configure({ ...CONFIG, checkOnLaunch: false, ...(options ? { syncOptions: options } : {}) });
  return { hotpatch, native, progress, appState, clock };
}

describe('configure', () => {
  it('passes the checked values to the native module, the URL without a trailing slash', async () => {
    const { native } = await configured();
    assert.deepEqual(native.calls, ['configure https://updates.example.com com.example.app production']);
  });

  for (const [name, config] of [
    ['a URL that is not one', { ...CONFIG, serverUrl: 'updates.example.com' }],
    ['a URL of another scheme', { ...CONFIG, serverUrl: 'ftp://updates.example.com' }],
    ['an app id with a newline', { ...CONFIG, appId: 'com.example.app\n' }],
    ['an app id too long', { ...CONFIG, appId: 'a'.repeat(129) }],
    ['a channel in capitals', { ...CONFIG, channel: 'Production' }],
  ] as const) {
    it(`refuses ${name} before asking the native side`, async () => {
      const native = new FakeNative();
      const hotpatch = createHotPatch({ native, progress: new FakeProgress(native), appState: new FakeAppState() });
      await assert.rejects(hotpatch.configure(config), ConfigurationError);
      assert.deepEqual(native.calls, []);
    });
  }

  it('refuses every call before configure()', async () => {
    const native = new FakeNative();
    const hotpatch = createHotPatch({ native, progress: new FakeProgress(native), appState: new FakeAppState() });
    await assert.rejects(hotpatch.checkForUpdate(), (error: unknown) => {
      assert.ok(error instanceof ConfigurationError);
      assert.equal(error.code, 'E_NOT_CONFIGURED');
      return true;
    });
    await assert.rejects(hotpatch.sync(), ConfigurationError);
    assert.deepEqual(native.calls, []);
  });

  it('lets a call made while configure() is in flight wait for it', async () => {
    const native = new FakeNative();
    let finish: () => void = () => undefined;
    native.configuring = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const hotpatch = createHotPatch({ native, progress: new FakeProgress(native), appState: new FakeAppState() });
    const configuring = hotpatch.configure({ ...CONFIG, checkOnLaunch: false });
    const ready = hotpatch.notifyAppReady();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(native.calls, ['configure https://updates.example.com com.example.app production']);
    finish();
    await Promise.all([configuring, ready]);
    assert.deepEqual(native.calls.slice(1), ['ready']);
  });

  it('refuses a call that waited for a configure() that failed', async () => {
    const native = new FakeNative();
    native.configuring = Promise.reject({ code: 'E_INVALID_CONFIG', message: 'no trust root in this binary' });
    const hotpatch = createHotPatch({ native, progress: new FakeProgress(native), appState: new FakeAppState() });
    const configuring = hotpatch.configure({ ...CONFIG, checkOnLaunch: false });
    const ready = hotpatch.notifyAppReady();
    await assert.rejects(configuring, (error: unknown) => {
      assert.ok(error instanceof ConfigurationError);
      assert.equal(error.code, 'E_INVALID_CONFIG');
      return true;
    });
    await assert.rejects(ready, (error: unknown) => {
      assert.ok(error instanceof ConfigurationError);
      assert.equal(error.code, 'E_NOT_CONFIGURED');
      return true;
    });
    assert.equal(native.calls.length, 1);
  });

  it('syncs on launch by default and keeps a failure in the snapshot, unhandled nowhere', async () => {
    const native = new FakeNative();
    native.failWith = { code: 'E_NETWORK', message: 'connection refused' };
    const hotpatch = createHotPatch({ native, progress: new FakeProgress(native), appState: new FakeAppState() });
    const settled = new Promise<void>((resolve) => {
      hotpatch.subscribe(() => {
        if (hotpatch.getSnapshot().status === 'error') resolve();
      });
    });
    await hotpatch.configure(CONFIG);
    await settled;
    assert.ok(hotpatch.getSnapshot().error instanceof NetworkError);
    assert.deepEqual(native.calls.slice(1), ['check']);
  });
});

describe('sync', () => {
  it('is up to date when the native side offers nothing, and downloads nothing', async () => {
    const { hotpatch, native } = await configured();
    native.offer = null;
    assert.deepEqual(await hotpatch.sync(), { status: 'up-to-date' });
    assert.deepEqual(native.calls.slice(1), ['check']);
    assert.equal(hotpatch.getSnapshot().status, 'up-to-date');
  });

  it('downloads the offer, reports progress, and waits for the next restart by default', async () => {
    const { hotpatch, native, progress } = await configured();
    const seen: NativeProgress[] = [];
    const statuses: string[] = [];
    hotpatch.subscribe(() => statuses.push(hotpatch.getSnapshot().status));
    const result = await hotpatch.sync({ onProgress: (step) => seen.push(step) });
    assert.equal(result.status, 'update-installed');
    assert.ok(result.status === 'update-installed' && result.installMode === 'on-next-restart');
    assert.deepEqual(native.calls.slice(1), ['check', `download ${'a'.repeat(8)}`]);
    assert.deepEqual(seen.map((step) => step.stage), ['patch', 'install']);
    assert.equal(native.restarts, 0);
    assert.equal(progress.listeners, 0, 'the progress listener is removed');
    assert.deepEqual([...new Set(statuses)], ['checking', 'downloading', 'update-installed']);
    assert.equal(hotpatch.getSnapshot().progress, null);
  });

  it('restarts at once for a mandatory update', async () => {
    const { hotpatch, native } = await configured();
    native.offer = { ...UPDATE, mandatory: true };
    const result = await hotpatch.sync({ installMode: 'on-next-restart' });
    assert.ok(result.status === 'update-installed' && result.installMode === 'immediate');
    assert.equal(native.restarts, 1);
  });

  it('restarts on resume only after the minimum time in the background, once', async () => {
    const { hotpatch, native, appState, clock } = await configured();
    await hotpatch.sync({ installMode: 'on-next-resume', minimumBackgroundDuration: 10 });
    appState.go('background');
    clock.ms += 5_000;
    appState.go('active');
    assert.equal(native.restarts, 0, 'five seconds away is not enough');
    appState.go('background');
    clock.ms += 12_000;
    appState.go('active');
    assert.equal(native.restarts, 1);
    assert.equal(appState.subscribed, 0, 'the resume listener is gone after the restart');
    appState.go('background');
    clock.ms += 60_000;
    appState.go('active');
    assert.equal(native.restarts, 1);
  });

  it('answers a second sync while one runs with sync-in-progress', async () => {
    const { hotpatch, native } = await configured();
    const finish = native.hold();
    const first = hotpatch.sync();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(await hotpatch.sync(), { status: 'sync-in-progress' });
    finish();
    assert.equal((await first).status, 'update-installed');
    assert.equal(native.calls.filter((call) => call === 'check').length, 1);
  });

  it('rejects with the typed error of a native refusal and keeps it in the snapshot', async () => {
    const { hotpatch, native } = await configured();
    native.failWith = {
      code: 'E_VERIFICATION',
      message: 'sequence 2 is not above the device high-water mark 3',
      userInfo: { reason: 'RollbackError' },
    };
    await assert.rejects(hotpatch.sync(), (error: unknown) => {
      assert.ok(error instanceof VerificationError);
      assert.equal(error.reason, 'RollbackError');
      assert.equal(error.retryable, false);
      return true;
    });
    assert.equal(hotpatch.getSnapshot().status, 'error');
    assert.ok(hotpatch.getSnapshot().error instanceof VerificationError);
    assert.equal(native.restarts, 0);
  });

  it('refuses options it cannot follow before asking anything', async () => {
    const { hotpatch, native } = await configured();
    for (const options of [
      { installMode: 'later' as never },
      { minimumBackgroundDuration: -1 },
      { minimumBackgroundDuration: Number.NaN },
    ]) {
      await assert.rejects(hotpatch.sync(options), ConfigurationError);
    }
    assert.deepEqual(native.calls.slice(1), []);
  });
});

describe('the rest of the API', () => {
  it('passes notifyAppReady through and maps its failure', async () => {
    const { hotpatch, native } = await configured();
    await hotpatch.notifyAppReady();
    native.failWith = { code: 'E_STORAGE', message: 'disk full' };
    await assert.rejects(hotpatch.notifyAppReady(), StorageError);
    assert.deepEqual(native.calls.slice(1), ['ready', 'ready']);
  });

  it('gives a new snapshot only when something changed, and stops telling a removed listener', async () => {
    const { hotpatch } = await configured();
    const before = hotpatch.getSnapshot();
    assert.equal(hotpatch.getSnapshot(), before);
    let told = 0;
    const stop = hotpatch.subscribe(() => {
      told += 1;
    });
    await hotpatch.sync();
    const after = told;
    assert.ok(after > 0);
    assert.notEqual(hotpatch.getSnapshot(), before);
    stop();
    await hotpatch.sync();
    assert.equal(told, after);
  });

  it('maps every native code, and an unknown one to E_UNKNOWN', () => {
    assert.ok(fromNative({ code: 'E_NETWORK', message: 'x' }) instanceof NetworkError);
    assert.equal(fromNative({ code: 'E_NETWORK', message: 'x', userInfo: { retryable: false } }).retryable, false);
    const unknown = fromNative(new Error('boom'));
    assert.ok(unknown instanceof HotPatchError);
    assert.equal(unknown.code, 'E_UNKNOWN');
    assert.equal(unknown.message, 'boom');
    assert.equal(fromNative(null).code, 'E_UNKNOWN');
  });
});
