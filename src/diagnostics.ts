import { Result } from 'neverthrow';
import { toMemportError, type MemportError } from './errors.js';
import type { HandleCensus } from './native/binding.js';
import { loadNative } from './native/load.js';

export type { HandleCensus };

/**
 * Open OS handles in this process — fds in `/proc/self/fd` on Linux,
 * `GetProcessHandleCount` on Windows. Under Wine, which reports 0, `exact` is
 * false and `value` is the lowest free handle slot (it rises by 4 per leaked
 * handle). Meant for leak checks: take one before and one after a workload.
 */
export function openHandles(): Result<HandleCensus, MemportError> {
  return loadNative().andThen((binding) => Result.fromThrowable(() => binding.countOpenHandles(), toMemportError)());
}

/** How many handles `after` holds beyond `before` (0 when none leaked). */
export function handlesLeaked(before: HandleCensus, after: HandleCensus): number {
  const delta = after.value - before.value;
  return Math.max(0, after.exact ? delta : Math.ceil(delta / 4));
}
