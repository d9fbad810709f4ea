/**
 * HotPatch for React Native: over-the-air updates, verified on the device.
 *
 * ```ts
 * import HotPatch, { useHotPatch } from 'hotpatch-react-native';
 *
 * HotPatch.configure({ serverUrl: 'https://updates.example.com', appId: 'com.example.app' });
 * // once the first screen rendered:
 * HotPatch.notifyAppReady();
 * ```
 *
 * The native module checks, verifies (Ed25519 signatures under the trust
 * root the binary embeds, per-file hashes, the high-water mark) and
 * installs; this layer asks, reports progress and picks when to restart.
 */
import { AppState, NativeEventEmitter } from 'react-native';

import { createHotPatch, type HotPatch } from './client';
import { NativeModuleMissingError } from './errors';
import { makeUseHotPatch } from './hook';
import type { HotPatchNative, NativeProgress, ProgressSource } from './native';
import NativeHotPatch from './NativeHotPatch';

export * from './errors';
export { createHotPatch } from './client';
export type {
  Config,
  HotPatch,
  InstallMode,
  Snapshot,
  Status,
  SyncOptions,
  SyncResult,
} from './client';
export type { HotPatchState } from './hook';
export type {
  NativeBundle as Bundle,
  NativeProgress as Progress,
  NativeStatus as DeviceStatus,
  NativeUpdate as Update,
} from './native';

const MISSING =
  'the HotPatch native module is not in this app binary: rebuild the app after installing ' +
  'hotpatch-react-native (cd ios && pod install; a Gradle sync on Android)';

function missing(): never {
  throw new NativeModuleMissingError('E_NATIVE_MODULE_MISSING', MISSING);
}

/** Every call rejects (or throws) with NativeModuleMissingError: the app still starts. */
const absent: HotPatchNative = {
  configure: async () => missing(),
  checkForUpdate: async () => missing(),
  downloadUpdate: async () => missing(),
  notifyAppReady: async () => missing(),
  getStatus: async () => missing(),
  restartApp: () => missing(),
};

const native: HotPatchNative = NativeHotPatch ?? absent;

const progress: ProgressSource = {
  subscribe(listener) {
    if (NativeHotPatch === null) {
      return () => undefined;
    }
    const emitter = new NativeEventEmitter(NativeHotPatch);
    const subscription = emitter.addListener('HotPatchProgress', (event) => {
      listener(event as NativeProgress);
    });
    return () => subscription.remove();
  },
};

/** The app's HotPatch instance. */
const HotPatchClient: HotPatch = createHotPatch({ native, progress, appState: AppState });

/** The SDK's state as React state, with its actions. */
export const useHotPatch = makeUseHotPatch(HotPatchClient);

export default HotPatchClient;
