/** useHotPatch() under React's own renderer: it shows the snapshot and follows it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { createElement } from 'react';
import { act, create, type ReactTestRenderer } from 'react-test-renderer';

import { createHotPatch } from '../src/client';
import { makeUseHotPatch, type HotPatchState } from '../src/hook';
import { CONFIG, FakeAppState, FakeNative, FakeProgress } from './fakes';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

describe('useHotPatch', () => {
  it('renders the snapshot, and again when a sync changes it, until unmounted', async () => {
    const native = new FakeNative();
    const client = createHotPatch({ native, progress: new FakeProgress(native), appState: new FakeAppState() });
    await client.configure({ ...CONFIG, checkOnLaunch: false });
    const useHotPatch = makeUseHotPatch(client);
    const renders: HotPatchState[] = [];
    function Probe(): null {
      renders.push(useHotPatch());
      return null;
    }
    let renderer: ReactTestRenderer | undefined;
    await act(async () => {
      renderer = create(createElement(Probe));
    });
    assert.equal(renders.at(-1)?.status, 'idle');
    assert.equal(renders.at(-1)?.sync, client.sync);

    await act(async () => {
      await renders.at(-1)?.sync();
    });
    const shown = renders.at(-1);
    assert.equal(shown?.status, 'update-installed');
    assert.equal(shown?.update?.version, '1.0.1');
    assert.equal(shown?.error, null);

    await act(async () => {
      renderer?.unmount();
    });
    const count = renders.length;
    await client.sync();
    assert.equal(renders.length, count, 'an unmounted component is not rendered again');
  });
});
