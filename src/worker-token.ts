// Tokens for worker threads: a second OS handle parked in the addon until a
// worker adopts it (native/worker_tokens.h). What regions and notifiers share:
// the timeoutMs option and the timer that drops a token nobody adopted.
import { Result, err } from 'neverthrow';
import { memportError, toMemportError, type MemportError } from './errors.js';
import { loadNative } from './native/load.js';
import { describe, isCount, readOptions } from './options.js';

/** Options for `forWorker()` (regions and notifiers). */
export interface ForWorkerOptions {
  /**
   * How long the token stays adoptable, in milliseconds (1 to 2^31-1; default
   * 60000). A token nobody adopted in that time — the worker failed to start,
   * the message was lost — is dropped and its handle closed, so it cannot leak.
   * It is also dropped when the thread that made it ends.
   */
  timeoutMs?: number;
}

const DEFAULT_TOKEN_TIMEOUT_MS = 60_000;
/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Reads `options`, parks a handle with `park` (which returns the token id) and
 * drops it after `timeoutMs` unless adopted. `what` names the call in errors.
 */
export function parkForWorker(options: ForWorkerOptions | undefined, what: string, park: () => number): Result<number, MemportError> {
  const read = readOptions(options, ['timeoutMs'], what);
  if (read.isErr()) return err(read.error);
  const { timeoutMs = DEFAULT_TOKEN_TIMEOUT_MS } = read.value;
  if (!isCount(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMER_MS) {
    return err(memportError('INVALID_ARGUMENT', `${what}: options.timeoutMs must be a whole number of milliseconds from 1 to 2^31-1, got ${describe(timeoutMs)}`));
  }
  const binding = loadNative();
  if (binding.isErr()) return err(binding.error);
  return Result.fromThrowable(park, toMemportError)().map((id) => {
    // Does not keep this thread alive; if the thread ends first, the addon
    // drops the token itself (its environment's cleanup hook).
    setTimeout(() => binding.value.dropRegionToken(id), timeoutMs).unref?.();
    return id;
  });
}
