/**
 * What the JavaScript layer asks of the native module, and what it answers.
 *
 * The native side (Kotlin on Android, Swift on iOS) holds every decision
 * about trust: it checks the server, verifies signatures against the trust
 * root the binary embeds, downloads and verifies the archive file by file,
 * stages it durably, and picks which bundle React Native loads at start
 * (rolling back a bundle that crashed before `notifyAppReady`). JavaScript
 * asks and reports progress; it never sees an unverified release.
 *
 * `NativeHotPatch.ts` declares the same interface as a TurboModule spec for
 * React Native's codegen.
 */

/** Where the app checks for updates (`configure`). */
export interface NativeConfig {
  serverUrl: string;
  appId: string;
  channel: string;
}

/** A verified release the server offers this device (not downloaded yet). */
export interface NativeUpdate {
  manifestId: string;
  version: string;
  epoch: number;
  sequence: number;
  /** Signed by the publisher: install it as soon as possible. */
  mandatory: boolean;
  /** Bytes to download: the patch's when the device can take one, else the archive's. */
  downloadSize: number;
  isPatch: boolean;
}

/** An installed bundle. */
export interface NativeBundle {
  manifestId: string;
  version: string;
  epoch: number;
  sequence: number;
}

/** What the device runs and has staged. */
export interface NativeStatus {
  configured: boolean;
  /** The app binary's version. */
  nativeVersion: string;
  /** The bundle running now; null while the binary's embedded bundle runs. */
  running: NativeBundle | null;
  /** A verified bundle staged for the next start. */
  pending: NativeBundle | null;
  /** The running bundle is on trial: `notifyAppReady()` has not confirmed it yet. */
  onTrial: boolean;
}

/** Progress of a download or install (`HotPatchProgress` events). */
export interface NativeProgress {
  stage: 'download' | 'patch' | 'install';
  done: number;
  total: number;
}

/** The native module's methods. Each promise rejects with a `{code, message, userInfo}`. */
export interface HotPatchNative {
  configure(config: NativeConfig): Promise<void>;
  /** Ask the server; resolve the verified offer, or null when the device is up to date. */
  checkForUpdate(): Promise<NativeUpdate | null>;
  /** Download, verify and stage the release the last check offered. */
  downloadUpdate(manifestId: string): Promise<NativeBundle>;
  /** Confirm the running bundle (it rendered): it will not be rolled back. */
  notifyAppReady(): Promise<void>;
  getStatus(): Promise<NativeStatus>;
  /** Reload React Native; the native side picks the bundle (a staged one goes on trial). */
  restartApp(): void;
}

/** Delivers the native module's progress events. */
export interface ProgressSource {
  subscribe(listener: (progress: NativeProgress) => void): () => void;
}

/** The part of React Native's `AppState` the SDK uses (install on next resume). */
export interface AppStateSource {
  readonly currentState: string;
  addEventListener(type: 'change', listener: (state: string) => void): { remove(): void };
}
