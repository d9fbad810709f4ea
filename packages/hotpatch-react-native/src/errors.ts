/**
 * Typed errors of the SDK. Every failure the native module reports reaches
 * JavaScript as one of these, with the native `code` kept; nothing here
 * decides anything about trust (the native side verified or refused).
 */

/** Why an update did not happen, as the native module reported it. */
export type ErrorCode =
  | 'E_NOT_CONFIGURED'
  | 'E_INVALID_CONFIG'
  | 'E_NATIVE_MODULE_MISSING'
  | 'E_NETWORK'
  | 'E_VERIFICATION'
  | 'E_STORAGE'
  | 'E_NO_UPDATE'
  | 'E_UNKNOWN';

/** The base of every error the SDK raises. */
export class HotPatchError extends Error {
  readonly code: ErrorCode;
  /** Whether trying again later can succeed (a network failure can; a refused signature cannot). */
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, retryable = false) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.retryable = retryable;
  }
}

/** `configure()` was not called, or was given values a device cannot use. */
export class ConfigurationError extends HotPatchError {}

/** The app binary does not contain the HotPatch native module (the native setup is missing). */
export class NativeModuleMissingError extends HotPatchError {}

/** The server could not be reached, or answered with an error. */
export class NetworkError extends HotPatchError {}

/**
 * The native side refused what the server sent: a signature, a trust root,
 * a hash, an older release. `reason` names the defence (for example
 * `RollbackError`, `UnknownKeyError`, `HashMismatchError`).
 */
export class VerificationError extends HotPatchError {
  readonly reason: string;

  constructor(message: string, reason: string) {
    super('E_VERIFICATION', message, false);
    this.reason = reason;
  }
}

/** The device's storage failed (full, not writable). */
export class StorageError extends HotPatchError {}

/** `downloadUpdate()` was asked for when the last check offered nothing. */
export class NoUpdateError extends HotPatchError {}

/** What a rejected native promise carries (React Native's `{code, message, userInfo}`). */
interface NativeRejection {
  code?: unknown;
  message?: unknown;
  userInfo?: unknown;
}

/** Turn a native rejection into the SDK's error of that code. */
export function fromNative(error: unknown): HotPatchError {
  if (error instanceof HotPatchError) {
    return error;
  }
  const rejection: NativeRejection = typeof error === 'object' && error !== null ? error : {};
  const message =
    typeof rejection.message === 'string' ? rejection.message : String(error ?? 'unknown error');
  const info =
    typeof rejection.userInfo === 'object' && rejection.userInfo !== null
      ? (rejection.userInfo as Record<string, unknown>)
      : {};
  switch (rejection.code) {
    case 'E_NOT_CONFIGURED':
    case 'E_INVALID_CONFIG':
      return new ConfigurationError(rejection.code, message);
    case 'E_NETWORK':
      return new NetworkError('E_NETWORK', message, info.retryable !== false);
    case 'E_VERIFICATION':
      return new VerificationError(
        message,
        typeof info.reason === 'string' ? info.reason : 'VerificationError',
      );
    case 'E_STORAGE':
      return new StorageError('E_STORAGE', message, true);
    case 'E_NO_UPDATE':
      return new NoUpdateError('E_NO_UPDATE', message);
    default:
      return new HotPatchError('E_UNKNOWN', message);
  }
}
