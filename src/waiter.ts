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
  /** The frames of the call that started the wait (an Err settled later carries them). */
  readonly #callSite: string | undefined;
  /** Called once if the waiter gives up (timeout/abort), so the owner can forget it. */
  onGiveUp: (() => void) | undefined;

  constructor(what: string, options: WaitOptions = {}) {
    this.promise = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    const site: { stack?: string } = {};
    Error.captureStackTrace(site, Waiter);
    this.#callSite = site.stack?.slice(site.stack.indexOf('\n') + 1);
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
    this.#resolve(result.isErr() ? err(atCallSite(result.error, this.#callSite)) : result);
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
