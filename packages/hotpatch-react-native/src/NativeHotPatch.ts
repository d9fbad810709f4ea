/**
 * The TurboModule spec of the native module (React Native's codegen reads
 * this file). It mirrors `HotPatchNative` in `native.ts`, in the types
 * codegen understands.
 */
import type { TurboModule } from 'react-native';
import { TurboModuleRegistry } from 'react-native';

export interface Spec extends TurboModule {
  configure(config: { serverUrl: string; appId: string; channel: string }): Promise<void>;
  checkForUpdate(): Promise<{
    manifestId: string;
    version: string;
    epoch: number;
    sequence: number;
    mandatory: boolean;
    downloadSize: number;
    isPatch: boolean;
  } | null>;
  downloadUpdate(
    manifestId: string,
  ): Promise<{ manifestId: string; version: string; epoch: number; sequence: number }>;
  notifyAppReady(): Promise<void>;
  getStatus(): Promise<{
    configured: boolean;
    nativeVersion: string;
    running: { manifestId: string; version: string; epoch: number; sequence: number } | null;
    pending: { manifestId: string; version: string; epoch: number; sequence: number } | null;
    onTrial: boolean;
  }>;
  restartApp(): void;
  // Event emitter plumbing (NativeEventEmitter).
  addListener(eventName: string): void;
  removeListeners(count: number): void;
}

export default TurboModuleRegistry.get<Spec>('HotPatch');
