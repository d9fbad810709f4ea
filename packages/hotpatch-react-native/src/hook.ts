/**
 * `useHotPatch()`: the SDK's snapshot as React state, and its actions.
 */
import { useSyncExternalStore } from 'react';

import type { HotPatch, Snapshot } from './client';

export interface HotPatchState extends Snapshot {
  sync: HotPatch['sync'];
  checkForUpdate: HotPatch['checkForUpdate'];
  notifyAppReady: HotPatch['notifyAppReady'];
  restartApp: HotPatch['restartApp'];
}

/** Make the hook of one SDK instance (`index.ts` exports the app's). */
export function makeUseHotPatch(client: HotPatch): () => HotPatchState {
  return function useHotPatch(): HotPatchState {
    const snapshot = useSyncExternalStore(client.subscribe, client.getSnapshot);
    return {
      ...snapshot,
      sync: client.sync,
      checkForUpdate: client.checkForUpdate,
      notifyAppReady: client.notifyAppReady,
      restartApp: client.restartApp,
    };
  };
}
