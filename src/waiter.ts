import { ResultAsync, err, type Result } from 'neverthrow';
import { atCallSite, memportError, type MemportError } from './errors.js';
import { abortSignal } from './options.js';

/** How long to wait, and a way to give up early. */
export interface WaitOptions {
  /** Give up with `TIMEOUT` after this many milliseconds (default: wait as long as it takes). */
  timeoutMs?: number;
  /** Give up with `ABORTED` when this signal aborts. */
  signal?: AbortSignal;
}

/** Frames kept of the call that started a wait: memport's API function and its callers. */
const CALL_SITE_FRAMES = 4;
/**
 * Whether a wait captures its caller's stack (on unless the environment
 * variable MEMPORT_CALL_SITES is `0`). A capture costs about 5 µs here, 2 µs
 * of it even with no frames (about 20 µs over a 1 MiB handoff round trip's
 * four waits, bench/measure.mjs memport: 97 µs median with, 76 µs without;
 * fewer frames, no stackTraceLimit toggling and `new Error()` were no
 * cheaper): turn it off in latency-critical processes once their errors are
 * understood.
 */
const CAPTURE_CALL_SITES = process.env.MEMPORT_CALL_SITES !== '0';

/**
 * One pending operation that settles exactly once with a Result: by `settle`,
 * by its timeout (TIMEOUT) or by its abort signal (ABORTED). Never rejects.
 */
export class Waiter<T> {
  readonly promise: Promise<Result<T, MemportError>>;
  #resolve!: (result: Result<T, MemportError>) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;
  #settled = false;
  /**
   * The call that started the wait, captured but not formatted: V8 formats a
   * captured stack only when `stack` is read, which happens only if the wait
   * ends in an Err (formatting on every call cost a round trip ~80 µs).
   */
  readonly #callSite: { stack?: string } = {};
  /** Called once if the waiter gives up (timeout/abort), so the owner can forget it. */
  onGiveUp: (() => void) | undefined;

  constructor(what: string, options: WaitOptions = {}) {
    this.promise = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    if (CAPTURE_CALL_SITES) {
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = CALL_SITE_FRAMES;
      Error.captureStackTrace(this.#callSite, Waiter);
      Error.stackTraceLimit = limit;
    }
    // `options` is a snapshot validated by src/options.ts: the signal is a
    // genuine AbortSignal, used only through its intrinsics.
    const { timeoutMs, signal } = options;
    if (signal && abortSignal.aborted(signal)) {
      this.#giveUp(memportError('ABORTED', `${what} was aborted`, { cause: abortSignal.reason(signal) }));
      return;
    }
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(() => this.#giveUp(memportError('TIMEOUT', `${what} timed out after ${timeoutMs} ms`)), timeoutMs);
    }
    if (signal) {
      this.#signal = signal;
      this.#onAbort = () => this.#giveUp(memportError('ABORTED', `${what} was aborted`, { cause: abortSignal.reason(signal) }));
      abortSignal.listen(signal, this.#onAbort);
    }
  }

  get settled(): boolean {
    return this.#settled;
  }

  settle(result: Result<T, MemportError>): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#signal && this.#onAbort) abortSignal.unlisten(this.#signal, this.#onAbort);
    this.#resolve(result.isErr() ? err(atCallSite(result.error, framesOf(this.#callSite))) : result);
    return true;
  }

  #giveUp(error: MemportError): void {
    if (this.settle(err(error))) this.onGiveUp?.();
  }

  /**
   * Queues this waiter in `queue` unless it already gave up (an aborted
   * signal gives up at construction), and forgets it there if it gives up later.
   */
  enqueue(queue: Array<Waiter<T>>): void {
    if (this.#settled) return;
    queue.push(this);
    this.onGiveUp = () => {
      const i = queue.indexOf(this);
      if (i >= 0) queue.splice(i, 1);
    };
  }

  /** The first waiter of `queue` still waiting, removed from it. */
  static takeLive<T>(queue: Array<Waiter<T>>): Waiter<T> | undefined {
    for (let w = queue.shift(); w; w = queue.shift()) if (!w.settled) return w;
    return undefined;
  }

  toResultAsync(): ResultAsync<T, MemportError> {
    return new ResultAsync(this.promise);
  }
}

/** A captured stack's frames, without its first line (the message). */
function framesOf(site: { stack?: string }): string | undefined {
  const stack = site.stack;
  return stack === undefined ? undefined : stack.slice(stack.indexOf('\n') + 1);
}
