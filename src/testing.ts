/**
 * Test hooks, published as `memport/testing`. Not a stable API: these exist so
 * the test suite can check what the OS enforces, from the outside.
 */
import { Result } from 'neverthrow';
import { memportError, toMemportError, type MemportError } from './errors.js';
import { loadNative } from './native/load.js';
import { nativeOf, type SharedRegion } from './region.js';

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

/** False once a read-only twin exists: memport will give out no writable handle. */
export function writeSharingAllowed(region: SharedRegion): boolean {
  return nativeOf(region)?.writeSharingAllowed() ?? false;
}
