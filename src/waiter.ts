import { ResultAsync, err, type Result } from 'neverthrow';
import { memportError, type MemportError } from './errors.js';

/** How long to wait, and a way to give up early. */
export interface WaitOptions {
  /** Give up with `TIMEOUT` after this many milliseconds (default: wait as long as it takes). */
  timeoutMs?: number;
  /** Give up with `ABORTED` when this signal aborts. */
  signal?: AbortSignal;
}

/** Validates WaitOptions; returns an error message or undefined. */
export function checkWaitOptions(options: unknown): MemportError | undefined {
  if (options === undefined) return undefined;
  if (options === null || typeof options !== 'object') return memportError('INVALID_ARGUMENT', 'options must be an object');
  const { timeoutMs, signal } = options as WaitOptions;
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && Number.isFinite(timeoutMs) && timeoutMs >= 0 && timeoutMs <= 2 ** 31 - 1)) {
    return memportError('INVALID_ARGUMENT', `timeoutMs must be a number of milliseconds from 0 to 2^31-1, got ${String(timeoutMs)}`);
  }
  if (signal !== undefined && !(typeof signal === 'object' && signal !== null && 'aborted' in signal && typeof signal.addEventListener === 'function')) {
    return memportError('INVALID_ARGUMENT', 'signal must be an AbortSignal');
  }
  return undefined;
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
  /** Called once if the waiter gives up (timeout/abort), so the owner can forget it. */
  onGiveUp: (() => void) | undefined;

  constructor(what: string, options: WaitOptions = {}) {
    this.promise = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    const { timeoutMs, signal } = options;
    if (signal?.aborted) {
      this.#giveUp(memportError('ABORTED', `${what} was aborted`, { cause: signal.reason }));
      return;
    }
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(() => this.#giveUp(memportError('TIMEOUT', `${what} timed out after ${timeoutMs} ms`)), timeoutMs);
    }
    if (signal) {
      this.#signal = signal;
      this.#onAbort = () => this.#giveUp(memportError('ABORTED', `${what} was aborted`, { cause: signal.reason }));
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  get settled(): boolean {
    return this.#settled;
  }

  settle(result: Result<T, MemportError>): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#signal && this.#onAbort) this.#signal.removeEventListener('abort', this.#onAbort);
    this.#resolve(result);
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
