/**
 * Test hooks, published as `memport/testing`. Not a stable API: these exist so
 * the test suite can check what the OS enforces, from the outside.
 * @module memport/testing
 */
import { Result } from 'neverthrow';
import { memportError, toMemportError, type MemportError } from './errors.js';
import { loadNative } from './native/load.js';
import { nativeOf, type SharedRegion } from './region.js';
import { _setDefaultSendTimeout } from './channel/protocol.js';
import { Notifier } from './notifier.js';
import { _streamDataRegion, type StreamWriter } from './stream.js';

/**
 * Makes this process behave as Electron's V8 sandbox does: zero-copy views
 * are refused with UNSUPPORTED, `read`/`write` (copies) keep working.
 */
export function simulateNoExternalBuffers(forbidden: boolean): void {
  loadNative().map((b) => b.forbidExternalBuffers(forbidden));
}

/**
 * Tries every way the OS offers to regain write access through this region's
 * handle; returns, per path, whether the OS allowed it. For a read-only region
 * every value should be false (see SECURITY notes for Wine's exceptions).
 */
export function tryWriteEscalation(region: SharedRegion): Result<Record<string, boolean>, MemportError> {
  const native = nativeOf(region);
  if (!native) return Result.fromThrowable(() => { throw memportError('INVALID_ARGUMENT', 'not a SharedRegion'); }, toMemportError)();
  return Result.fromThrowable(() => native.tryWriteEscalation(), toMemportError)();
}

/**
 * The cache of received regions' mappings: how many are kept, their bytes,
 * and how often a received region found its memory already mapped.
 */
export function receivedMappings(): {
  /** Mappings kept. */
  entries: number;
  /** Their total size in bytes. */
  bytes: number;
  /** Received regions whose memory was already mapped. */
  hits: number;
  /** Received regions that had to be mapped anew. */
  misses: number;
} {
  return loadNative().match(
    (b) => b.receivedMappings(),
    () => ({ entries: 0, bytes: 0, hits: 0, misses: 0 }),
  );
}

/**
 * How many closed regions' address ranges are parked (still mapped, for native
 * work that may still use them) and not yet released.
 */
export function parkedMappings(): number {
  return loadNative().match((b) => b.parkedMappings(), () => 0);
}

/** Bounds that cache (entries and bytes); a test hook. */
export function setReceivedMappingLimits(entries: number, bytes: number): void {
  loadNative().map((b) => b.setReceivedMappingLimits(entries, bytes));
}

/** Retires kept mappings idle for at least `idleMs`. */
export function trimReceivedMappings(idleMs: number): void {
  loadNative().map((b) => b.trimReceivedMappings(idleMs));
}

/** False once a read-only twin exists: memport will give out no writable handle. */
export function writeSharingAllowed(region: SharedRegion): boolean {
  return nativeOf(region)?.writeSharingAllowed() ?? false;
}

/**
 * Sets how long a `send` without `timeoutMs` waits for the peer (default
 * `DEFAULT_SEND_TIMEOUT_MS`, 30 s), so a test can watch that bound act
 * without waiting 30 s.
 */
export function setDefaultSendTimeout(ms: number): void {
  _setDefaultSendTimeout(ms);
}

function liveNotifier(notifier: Notifier): Result<NonNullable<ReturnType<Notifier['_native']>>, MemportError> {
  const native = notifier instanceof Notifier ? notifier._native() : undefined;
  if (!native) return Result.fromThrowable(() => { throw memportError('CLOSED', 'not an open Notifier'); }, toMemportError)();
  return Result.fromThrowable(() => native, toMemportError)();
}

/** The notifier's eventfd (Linux) or Event HANDLE value (Windows); -1 once closed. */
export function notifierHandle(notifier: Notifier): number {
  return notifier._native()?.osHandle() ?? -1;
}

/**
 * A second handle to the notifier in this process that memport does not own,
 * as if it had just arrived from a peer: Linux, a dup of the eventfd;
 * Windows, a duplicate with `access` (default: SYNCHRONIZE | EVENT_MODIFY_STATE,
 * the rights a shared notifier has).
 */
export function duplicateNotifierHandle(notifier: Notifier, access = 0): Result<number, MemportError> {
  return liveNotifier(notifier).andThen((native) => Result.fromThrowable(() => native.duplicateUnowned(access), toMemportError)());
}

/**
 * Windows: duplicates the notifier into process `pid` with exactly
 * SYNCHRONIZE | EVENT_MODIFY_STATE; the value valid there. Linux: `UNSUPPORTED`.
 */
export function duplicateNotifierInto(notifier: Notifier, pid: number): Result<number, MemportError> {
  return liveNotifier(notifier).andThen((native) => Result.fromThrowable(() => native.duplicateInto(pid), toMemportError)());
}

/**
 * Adopts a notifier handle by value, with the checks a received one gets:
 * `ALREADY_EXISTS` if memport already owns it, `INVALID_HANDLE` for another
 * kind of object, `ACCESS_DENIED` for the wrong rights. A refused value is
 * left open (it may be somebody else's).
 */
export function notifierFromHandle(value: number): Result<Notifier, MemportError> {
  return loadNative().andThen((binding) =>
    Result.fromThrowable(() => Notifier._fromNative(binding.notifierFromHandle(value)), toMemportError)(),
  );
}

/**
 * Closes a handle value memport does not own: one a test duplicated with
 * {@link duplicateNotifierHandle} and memport refused to adopt. A value a
 * live memport object owns is refused with `ALREADY_EXISTS`; one that was not
 * open is `INVALID_HANDLE` (so `Ok` proves it was open).
 */
export function closeUnownedHandle(value: number): Result<void, MemportError> {
  return loadNative().andThen((binding) => Result.fromThrowable(() => binding.closeUnownedHandle(value), toMemportError)());
}

/**
 * A stream writer's own, writable data region (not a new handle: closing it
 * breaks the writer). Tests write a malicious writer's garbage through it.
 */
export function streamDataRegion(writer: StreamWriter): SharedRegion | undefined {
  return _streamDataRegion(writer);
}
