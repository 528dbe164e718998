import { ResultAsync, ok, okAsync, type Result } from 'neverthrow';
import type { MemportError } from '../errors.js';
import { Waiter, type WaitOptions } from '../waiter.js';

/**
 * How one side of a stream wakes the other. Auto-reset and coalescing:
 * `notify()` sets a pending flag (several notifies before a wait are one);
 * `wait()` returns at once if the flag is set, clearing it, else when the
 * next notify comes (or TIMEOUT / ABORTED). The stream calls `notify()` only
 * when the other side announced in shared memory that it sleeps, so a busy
 * stream makes no calls here. Same shape as memport's `Notifier`, which is
 * what crosses processes; {@link ThreadWaker} is the in-process one.
 */
export interface Waker {
  /** Sets the pending flag and wakes a waiter. */
  notify(): Result<void, MemportError>;
  /** Returns once the flag is set (clearing it); `TIMEOUT`, `ABORTED`. */
  wait(options?: WaitOptions): ResultAsync<void, MemportError>;
}

/** `Atomics.waitAsync` (Node 16+; typed in TypeScript's es2024 lib, newer than this project's). */
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

/** setTimeout's longest delay: the keep-alive timer of a wait with no timeout. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A {@link Waker} for one process: a pending flag in a 4-byte
 * SharedArrayBuffer, slept on with `Atomics.waitAsync`, so it also works
 * between worker threads (post {@link ThreadWaker.buffer}, rebuild with
 * `new ThreadWaker(buffer)`). A pending `Atomics.waitAsync` does not keep
 * Node's event loop alive, so a wait holds a timer that does, as a pending
 * socket read would.
 */
export class ThreadWaker implements Waker {
  /** The 4 bytes holding the pending flag: post it to a worker, which wraps it with `new ThreadWaker(buffer)`. */
  readonly buffer: SharedArrayBuffer;
  readonly #word: Int32Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(4);
    this.#word = new Int32Array(this.buffer, 0, 1);
  }

  /** Sets the pending flag and wakes a waiter (on any thread). */
  notify(): Result<void, MemportError> {
    Atomics.store(this.#word, 0, 1);
    Atomics.notify(this.#word, 0);
    return ok(undefined);
  }

  /** Returns once the flag is set (clearing it); `TIMEOUT`, `ABORTED`. */
  wait(options: WaitOptions = {}): ResultAsync<void, MemportError> {
    const word = this.#word;
    if (Atomics.exchange(word, 0, 0) === 1) return okAsync(undefined);
    const waiter = new Waiter<void>('stream wait', options);
    if (waiter.settled) return waiter.toResultAsync();
    const keepAlive = setTimeout(() => {}, MAX_TIMER_MS);
    // Giving up (timeout, abort) wakes the pending waitAsync so it does not linger.
    waiter.onGiveUp = () => Atomics.notify(word, 0);
    const loop = (): void => {
      if (waiter.settled) {
        clearTimeout(keepAlive);
        return;
      }
      if (Atomics.exchange(word, 0, 0) === 1) {
        clearTimeout(keepAlive);
        waiter.settle(ok(undefined));
        return;
      }
      const pending = waitAsync(word, 0, 0);
      if (pending.async) {
        void pending.value.then(loop); // never rejects
      } else {
        loop(); // 'not-equal': a notify landed in between
      }
    };
    loop();
    return waiter.toResultAsync();
  }
}


/**
 * Waits for whichever of two wakers is notified first (a writer with readers
 * both in this process and in others sleeps on both). The other wait is
 * withdrawn; a notification it would have taken stays pending or is lost,
 * which the stream tolerates: after any wake-up the writer looks at every
 * reader again before it sleeps (docs/PROTOCOL.md, wake-ups).
 */
export function waitEither(a: Waker, b: Waker, options: WaitOptions): ResultAsync<void, MemportError> {
  const both = new AbortController();
  const outer = options.signal;
  const forward = (): void => both.abort(outer?.reason);
  if (outer?.aborted) forward();
  else outer?.addEventListener('abort', forward, { once: true });
  const inner: WaitOptions = options.timeoutMs === undefined ? { signal: both.signal } : { timeoutMs: options.timeoutMs, signal: both.signal };
  const first = Promise.race([a.wait(inner), b.wait(inner)]).finally(() => {
    outer?.removeEventListener('abort', forward);
    both.abort();
  });
  return new ResultAsync(first);
}
