/** A scripted native module, progress source and AppState for the JS layer's tests. */
import type {
  AppStateSource,
  HotPatchNative,
  NativeBundle,
  NativeProgress,
  NativeStatus,
  NativeUpdate,
  ProgressSource,
} from '../src/native';

export const UPDATE: NativeUpdate = {
  manifestId: 'a'.repeat(64),
  version: '1.0.1',
  epoch: 1,
  sequence: 2,
  mandatory: false,
  downloadSize: 1200,
  isPatch: true,
};
export const BUNDLE: NativeBundle = { manifestId: 'a'.repeat(64), version: '1.0.1', epoch: 1, sequence: 2 };
export const CONFIG = { serverUrl: 'https://updates.example.com/', appId: 'com.example.app' };

/** A native module that answers from a script and records every call. */
export class FakeNative implements HotPatchNative {
  calls: string[] = [];
  offer: NativeUpdate | null = UPDATE;
  failWith: unknown = null;
  restarts = 0;
  emit: ((progress: NativeProgress) => void) | null = null;
  private release: (() => void) | null = null;

  /** Set to make configure() wait for it (and fail if it rejects). */
  configuring: Promise<void> | null = null;

  async configure(config: { serverUrl: string; appId: string; channel: string }): Promise<void> {
    this.calls.push(`configure ${config.serverUrl} ${config.appId} ${config.channel}`);
    await this.configuring;
  }

  async checkForUpdate(): Promise<NativeUpdate | null> {
    this.calls.push('check');
    if (this.failWith !== null) {
      throw this.failWith;
    }
    return this.offer;
  }

  async downloadUpdate(manifestId: string): Promise<NativeBundle> {
    this.calls.push(`download ${manifestId.slice(0, 8)}`);
    this.emit?.({ stage: 'patch', done: 600, total: 1200 });
    this.emit?.({ stage: 'install', done: 2, total: 2 });
    if (this.release !== null) {
      await new Promise<void>((resolve) => {
        this.release = resolve;
      });
    }
    return BUNDLE;
  }

  /** Make the next download wait until `finish()`. */
  hold(): () => void {
    this.release = () => undefined;
    return () => this.release?.();
  }

  async notifyAppReady(): Promise<void> {
    this.calls.push('ready');
    if (this.failWith !== null) {
      throw this.failWith;
    }
  }

  async getStatus(): Promise<NativeStatus> {
    return { configured: true, nativeVersion: '1.0.0', running: null, pending: BUNDLE, onTrial: false };
  }

  restartApp(): void {
    this.restarts += 1;
  }
}

export class FakeProgress implements ProgressSource {
  listeners = 0;

  constructor(private readonly native: FakeNative) {}

  subscribe(listener: (progress: NativeProgress) => void): () => void {
    this.listeners += 1;
    this.native.emit = listener;
    return () => {
      this.listeners -= 1;
      this.native.emit = null;
    };
  }
}

export class FakeAppState implements AppStateSource {
  currentState = 'active';
  private readonly listeners = new Set<(state: string) => void>();

  addEventListener(_type: 'change', listener: (state: string) => void): { remove(): void } {
    this.listeners.add(listener);
    return { remove: () => this.listeners.delete(listener) };
  }

  go(state: string): void {
    this.currentState = state;
    for (const listener of [...this.listeners]) {
      listener(state);
    }
  }

  get subscribed(): number {
    return this.listeners.size;
  }
}
