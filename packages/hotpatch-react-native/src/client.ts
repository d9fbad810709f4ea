/**
 * The SDK's JavaScript side: configure, check, sync with an install mode,
 * confirm. It asks the native module and reports; it decides only *when*
 * to restart into a bundle the native side has already verified and staged.
 *
 * `createHotPatch` takes its native module, progress events, AppState and
 * clock as arguments, so it runs (and is tested) without React Native;
 * `index.ts` wires the real ones.
 */
import {
  ConfigurationError,
  fromNative,
  type HotPatchError,
} from './errors';
import type {
  AppStateSource,
  HotPatchNative,
  NativeBundle,
  NativeProgress,
  NativeStatus,
  NativeUpdate,
  ProgressSource,
} from './native';

/** When a downloaded update starts running. */
export type InstallMode =
  /** Restart now. */
  | 'immediate'
  /** At the next cold start of the app (the default). */
  | 'on-next-restart'
  /** When the app comes back from the background, after `minimumBackgroundDuration` seconds. */
  | 'on-next-resume';

const INSTALL_MODES: readonly InstallMode[] = ['immediate', 'on-next-restart', 'on-next-resume'];

/** What the SDK is doing, for a UI. */
export type Status =
  | 'idle'
  | 'checking'
  | 'downloading'
  | 'up-to-date'
  | 'update-installed'
  | 'error';

/** Everything a UI shows; a new object whenever something changes (for `useSyncExternalStore`). */
export interface Snapshot {
  readonly status: Status;
  /** The release the last check offered. */
  readonly update: NativeUpdate | null;
  readonly progress: NativeProgress | null;
  readonly error: HotPatchError | null;
}

export interface Config {
  /** The HotPatch server, e.g. `https://updates.example.com`. */
  serverUrl: string;
  /** The app id the server knows, e.g. `com.example.app`. */
  appId: string;
  /** The channel this build follows (default `production`). */
  channel?: string;
  /** Run `sync()` once configured (default true); its errors go to the snapshot. */
  checkOnLaunch?: boolean;
  /** The options of that launch sync. */
  syncOptions?: SyncOptions;
}

export interface SyncOptions {
  /** When a non-mandatory update starts running (default `on-next-restart`). */
  installMode?: InstallMode;
  /** When a mandatory update starts running (default `immediate`). */
  mandatoryInstallMode?: InstallMode;
  /** Seconds in the background before `on-next-resume` restarts (default 0). */
  minimumBackgroundDuration?: number;
  onProgress?: (progress: NativeProgress) => void;
}

export type SyncResult =
  | { status: 'up-to-date' }
  | { status: 'sync-in-progress' }
  | { status: 'update-installed'; update: NativeUpdate; bundle: NativeBundle; installMode: InstallMode };

export interface HotPatch {
  configure(config: Config): Promise<void>;
  /** Check, download and stage an update, then start it as `options` say. */
  sync(options?: SyncOptions): Promise<SyncResult>;
  /** Ask the server only: the verified offer, or null when up to date. */
  checkForUpdate(): Promise<NativeUpdate | null>;
  /** Tell the native side the running bundle works: it will never be rolled back. */
  notifyAppReady(): Promise<void>;
  getStatus(): Promise<NativeStatus>;
  /** Restart now into the staged bundle, if any. */
  restartApp(): void;
  subscribe(listener: () => void): () => void;
  getSnapshot(): Snapshot;
}

export interface Dependencies {
  native: HotPatchNative;
  progress: ProgressSource;
  appState: AppStateSource;
  /** Milliseconds since the epoch (tests pass their own clock). */
  now?: () => number;
}

// The server's rules for the values a device sends (docs/reference/api.md).
const APP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const CHANNEL = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MAX_URL = 2048;

/** Whether all of `text` matches `pattern` (never a prefix, never across a newline). */
function fullMatch(pattern: RegExp, text: string): boolean {
  const match = pattern.exec(text);
  return match !== null && match[0] === text;
}

function checkConfig(config: Config): { serverUrl: string; appId: string; channel: string } {
  const invalid = (message: string): ConfigurationError =>
    new ConfigurationError('E_INVALID_CONFIG', message);
  if (typeof config !== 'object' || config === null) {
    throw invalid('configure() takes an object: {serverUrl, appId, channel?}');
  }
  const { serverUrl, appId } = config;
  const channel = config.channel ?? 'production';
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch {
    throw invalid(`serverUrl ${JSON.stringify(serverUrl)} is not a URL`);
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || serverUrl.length > MAX_URL) {
    throw invalid(`serverUrl must be an http(s) URL of at most ${MAX_URL} characters`);
  }
  if (typeof appId !== 'string' || !fullMatch(APP_ID, appId)) {
    throw invalid("appId is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
  if (typeof channel !== 'string' || !fullMatch(CHANNEL, channel)) {
    throw invalid("channel is 1-64 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit");
  }
  return { serverUrl: serverUrl.replace(/\/+$/, ''), appId, channel };
}

function checkSyncOptions(options: SyncOptions): void {
  for (const mode of [options.installMode, options.mandatoryInstallMode]) {
    if (mode !== undefined && !INSTALL_MODES.includes(mode)) {
      throw new ConfigurationError(
        'E_INVALID_CONFIG',
        `installMode ${JSON.stringify(mode)} is not one of ${INSTALL_MODES.join(', ')}`,
      );
    }
  }
  const wait = options.minimumBackgroundDuration;
  if (wait !== undefined && !(Number.isFinite(wait) && wait >= 0)) {
    throw new ConfigurationError(
      'E_INVALID_CONFIG',
      'minimumBackgroundDuration is a number of seconds, 0 or more',
    );
  }
}

/** Make the SDK over a native module (see `index.ts` for the app's default instance). */
export function createHotPatch(deps: Dependencies): HotPatch {
  const { native, progress, appState } = deps;
  const now = deps.now ?? Date.now;
  const listeners = new Set<() => void>();
  let snapshot: Snapshot = { status: 'idle', update: null, progress: null, error: null };
  let configured = false;
  let configuring: Promise<void> | null = null;
  let syncing = false;
  let resume: { remove(): void } | null = null;

  function set(change: Partial<Snapshot>): void {
    snapshot = { ...snapshot, ...change };
    for (const listener of [...listeners]) {
      listener();
    }
  }

  async function ask<T>(call: () => Promise<T>): Promise<T> {
    // A call made while configure() is still with the native side waits for
    // it: an app may call notifyAppReady() from its first render before the
    // configure() of its entry file has settled.
    await configuring?.catch(() => undefined);
    if (!configured) {
      throw new ConfigurationError('E_NOT_CONFIGURED', 'call configure() first');
    }
    try {
      return await call();
    } catch (error) {
      throw fromNative(error);
    }
  }

  function restartOnResume(minimumSeconds: number): void {
    resume?.remove();
    let backgroundAt: number | null = appState.currentState === 'active' ? null : now();
    resume = appState.addEventListener('change', (state) => {
      if (state !== 'active') {
        backgroundAt ??= now();
        return;
      }
      if (backgroundAt !== null && now() - backgroundAt >= minimumSeconds * 1000) {
        resume?.remove();
        resume = null;
        native.restartApp();
      }
      backgroundAt = null;
    });
  }

  function start(mode: InstallMode, minimumSeconds: number): void {
    if (mode === 'immediate') {
      native.restartApp();
    } else if (mode === 'on-next-resume') {
      restartOnResume(minimumSeconds);
    }
  }

  const client: HotPatch = {
    async configure(config: Config): Promise<void> {
      const checked = checkConfig(config);
      if (config.syncOptions !== undefined) {
        checkSyncOptions(config.syncOptions);
      }
      const attempt = (async (): Promise<void> => {
        try {
          await native.configure(checked);
        } catch (error) {
          throw fromNative(error);
        }
        configured = true;
      })();
      configuring = attempt;
      try {
        await attempt;
      } finally {
        if (configuring === attempt) {
          configuring = null;
        }
      }
      if (config.checkOnLaunch ?? true) {
        // Its outcome, failure included, is in the snapshot; nothing is left unhandled.
        client.sync(config.syncOptions).catch(() => undefined);
      }
    },

    async sync(options: SyncOptions = {}): Promise<SyncResult> {
      checkSyncOptions(options);
      if (syncing) {
        return { status: 'sync-in-progress' };
      }
      syncing = true;
      try {
        set({ status: 'checking', progress: null, error: null });
        const update = await ask(() => native.checkForUpdate());
        if (update === null) {
          set({ status: 'up-to-date', update: null });
          return { status: 'up-to-date' };
        }
        set({ status: 'downloading', update });
        const stop = progress.subscribe((step) => {
          set({ progress: step });
          options.onProgress?.(step);
        });
        let bundle: NativeBundle;
        try {
          bundle = await ask(() => native.downloadUpdate(update.manifestId));
        } finally {
          stop();
        }
        const installMode = update.mandatory
          ? (options.mandatoryInstallMode ?? 'immediate')
          : (options.installMode ?? 'on-next-restart');
        set({ status: 'update-installed', progress: null });
        start(installMode, options.minimumBackgroundDuration ?? 0);
        return { status: 'update-installed', update, bundle, installMode };
      } catch (error) {
        const failure = fromNative(error);
        set({ status: 'error', progress: null, error: failure });
        throw failure;
      } finally {
        syncing = false;
      }
    },

    checkForUpdate(): Promise<NativeUpdate | null> {
      return ask(() => native.checkForUpdate());
    },

    notifyAppReady(): Promise<void> {
      return ask(() => native.notifyAppReady());
    },

    getStatus(): Promise<NativeStatus> {
      return ask(() => native.getStatus());
    },

    restartApp(): void {
      native.restartApp();
    },

    subscribe(listener: () => void): () => void {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },

    getSnapshot(): Snapshot {
      return snapshot;
    },
  };
  return client;
}
