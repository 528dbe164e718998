// A wake-up signal between processes (issue 11, "Streams"): the wait queue,
// timeouts and wake policy; the OS object lives in native/core/notifier.h.
import { inspect } from 'node:util';
import { ResultAsync, err, errAsync, ok, Result } from 'neverthrow';
import { memportError, toMemportError, type MemportError } from './errors.js';
import type { NativeNotifier } from './native/binding.js';
import { loadNative } from './native/load.js';
import { describe, isCount, readOptions, readWaitOptions } from './options.js';
import { Waiter, type WaitOptions } from './waiter.js';
import { parkForWorker, type ForWorkerOptions } from './worker-token.js';

/**
 * What {@link Notifier.forWorker} returns: a plain, structured-cloneable
 * object to `postMessage` to a `worker_thread`, where
 * {@link Notifier.fromWorkerToken} turns it into a notifier of its own over
 * the same wake-up object. The first adoption takes it.
 */
export interface NotifierToken {
  /** Marks a memport notifier token. */
  readonly memport: 'notifier-token';
  /** Which parked handle this is. */
  readonly id: number;
}

const dispose: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');
/** Only this module's factories may construct a Notifier. */
const INTERNAL = Symbol('memport.Notifier');

/**
 * @internal The native notifier behind a genuine Notifier, for a message
 * that carries it (src/channel/codec.ts); undefined for anything else,
 * without running any of its code (a brand check on the private field).
 */
export function notifierNativeOf(value: unknown): NativeNotifier | undefined {
  return typeof value === 'object' && value !== null ? nativeAccess(value) : undefined;
}
let nativeAccess: (value: object) => NativeNotifier | undefined;

/**
 * A wake-up signal, auto-reset and coalescing, backed by an OS object that
 * can be shared with another process by handle: an eventfd on Linux, an
 * unnamed auto-reset Event on Windows. It carries no data: pair it with a
 * shared region (a ring buffer, say) and notify after writing.
 *
 * - {@link Notifier.notify} makes one notification pending. Notifications
 *   coalesce: three notifies before anyone waits wake one wait, once.
 * - A notification is never lost: one sent before a wait wakes that wait.
 * - One wake releases every {@link Notifier.wait} pending at that moment
 *   (a broadcast: each waiter should then check the shared state it cares
 *   about). Waits that start later wait for the next notification.
 * - Waiting never blocks the JS thread and uses no libuv pool thread.
 *
 * ```ts
 * import { Notifier } from 'memport';
 *
 * const created = Notifier.create();
 * if (created.isErr()) throw created.error;
 * const notifier = created.value;
 * setTimeout(() => notifier.notify(), 10);
 * const woke = await notifier.wait({ timeoutMs: 1000 }); // Ok(undefined), or Err TIMEOUT
 * notifier.close();
 * ```
 */
export class Notifier implements Disposable, AsyncIterable<Result<void, MemportError>> {
  readonly #native: NativeNotifier;
  /** Waits pending, all released by the next wake. */
  readonly #waiters: Array<Waiter<void>> = [];
  #armed = false;
  /** A disarm is queued for the next turn of the event loop (see #disarmSoon). */
  #disarmQueued = false;
  #closed = false;
  #ref = true;
  readonly #onReady = (): void => this.#drain();

  static {
    nativeAccess = (value) => (#native in value ? value.#native : undefined);
  }

  private constructor(native: NativeNotifier, token: symbol) {
    if (token !== INTERNAL) throw new TypeError('memport: a Notifier comes from Notifier.create(); it cannot be constructed directly');
    this.#native = native;
  }

  /**
   * A new notifier with nothing pending. Errors: `OUT_OF_MEMORY` or `OS`
   * when the system has no room for another eventfd or Event (close some),
   * or the addon's load error.
   */
  static create(): Result<Notifier, MemportError> {
    return loadNative().andThen((binding) =>
      Result.fromThrowable(() => new Notifier(binding.createNotifier(), INTERNAL), toMemportError)(),
    );
  }

  /**
   * Adopts a {@link NotifierToken} made by {@link Notifier.forWorker}, in a
   * worker (or any thread of this process): a notifier of its own over the
   * same object, so a notify on either side wakes the other's waits. Errors:
   * `NOT_FOUND` (adopted already, or dropped: its `timeoutMs` passed or its
   * thread ended), `INVALID_ARGUMENT` (not a notifier token).
   */
  static fromWorkerToken(token: NotifierToken): Result<Notifier, MemportError> {
    const read = readOptions(token, ['memport', 'id'], 'Notifier.fromWorkerToken');
    if (read.isErr()) return err(read.error);
    const { memport, id } = read.value;
    if (memport !== 'notifier-token' || !isCount(id) || id < 1) {
      return err(memportError('INVALID_ARGUMENT', `Notifier.fromWorkerToken: ${describe(token)} is not a notifier token; pass the object notifier.forWorker() returned, as it arrived`));
    }
    return loadNative().andThen((binding) =>
      Result.fromThrowable(() => new Notifier(binding.adoptNotifierToken(id), INTERNAL), toMemportError)(),
    );
  }

  /** @internal Wraps a native notifier (adopted from a handle). */
  static _fromNative(native: NativeNotifier): Notifier {
    return new Notifier(native, INTERNAL);
  }

  /** True once {@link Notifier.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The way to use this notifier in a `worker_thread`: post the token, and
   * the worker adopts it with {@link Notifier.fromWorkerToken} (a second
   * handle to the same object; each side closes its own). Until adopted the
   * handle is held by memport, and closed if nobody adopts the token within
   * `timeoutMs` (default 60 s) or when this thread ends. Make one token per
   * worker. Errors: `CLOSED`, `INVALID_ARGUMENT` (options), `OS`/`OUT_OF_MEMORY`.
   */
  forWorker(options?: ForWorkerOptions): Result<NotifierToken, MemportError> {
    if (this.#closed) return err(closedError());
    return parkForWorker(options, 'notifier.forWorker', () => this.#native.forWorker()).map((id) => ({ memport: 'notifier-token' as const, id }));
  }

  /**
   * Makes one notification pending and wakes the waits pending on this
   * notifier, in this process or any other that holds it. Never blocks.
   * Errors: `CLOSED`.
   */
  notify(): Result<void, MemportError> {
    if (this.#closed) return err(closedError());
    return Result.fromThrowable(() => this.#native.notify(), toMemportError)();
  }

  /**
   * Resolves `Ok` at the next notification — at once if one is already
   * pending (it is taken). Every wait pending when a notification arrives is
   * released by it. Errors: `TIMEOUT` (`timeoutMs` passed), `ABORTED`
   * (`signal` aborted), `CLOSED` (closed before or while waiting),
   * `INVALID_ARGUMENT` (bad options).
   */
  wait(options?: WaitOptions): ResultAsync<void, MemportError> {
    const wait = readWaitOptions(options, 'wait');
    if (wait.isErr()) return errAsync(wait.error);
    if (this.#closed) return errAsync(closedError());
    const waiter = new Waiter<void>('waiting for a notification', wait.value);
    waiter.enqueue(this.#waiters);
    const forget = waiter.onGiveUp;
    waiter.onGiveUp = () => {
      forget?.();
      // Nobody left to wake: stop watching, so a notification stays pending
      // in the OS object for the next wait instead of being taken now.
      if (this.#waiters.length === 0) this.#disarm();
    };
    this.#drain();
    return waiter.toResultAsync();
  }

  /**
   * Yields `Ok` once per wake, until the notifier is closed (then the loop
   * ends). Should waiting fail otherwise, the `Err` is yielded once and the
   * loop ends.
   *
   * ```ts
   * for await (const woke of notifier) {
   *   if (woke.isErr()) break;
   *   drainTheRing();
   * }
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncIterator<Result<void, MemportError>> {
    for (;;) {
      const next = await this.wait();
      if (next.isErr() && next.error.code === 'CLOSED' && this.#closed) return;
      yield next;
      if (next.isErr()) return;
    }
  }

  /**
   * Closes this process's handle; idempotent. Pending waits end with
   * `CLOSED`. Other processes holding the notifier keep theirs.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#armed = false;
    this.#native.close();
    const closed = closedError();
    for (const waiter of this.#waiters.splice(0)) waiter.settle(err(closed));
  }

  /**
   * Lets the process exit while a wait is pending on this notifier and
   * nothing else keeps it alive, as `net.Socket#unref` does. Returns the notifier.
   */
  unref(): this {
    this.#ref = false;
    if (!this.#closed) this.#native.setRef(false);
    return this;
  }

  /** Undoes {@link Notifier.unref}: a pending wait keeps the process alive (the default). */
  ref(): this {
    this.#ref = true;
    if (!this.#closed) this.#native.setRef(true);
    return this;
  }

  /** Closes the notifier (`using n = …`); same as {@link Notifier.close}. */
  [dispose](): void {
    this.close();
  }

  /** @internal util.inspect: the state, never the handle's value. */
  [inspect.custom](_depth: number, options: { stylize: (text: string, style: string) => string }): string {
    const fields = this.#closed ? ['closed'] : ['open', `${this.#waiters.length} waiting`, ...(this.#ref ? [] : ['unref'])];
    return `${options.stylize('Notifier', 'special')} { ${fields.join(', ')} }`;
  }

  /** @internal The native object (testing hooks). */
  _native(): NativeNotifier | undefined {
    return this.#closed ? undefined : this.#native;
  }

  // --- internals -------------------------------------------------------------

  /**
   * Takes a pending notification if anyone waits, releasing every waiter;
   * otherwise watches for one while anyone waits. Runs on each wait() and
   * on each report from the native watch. Never throws.
   */
  #drain(): void {
    if (this.#closed) return;
    if (this.#waiters.length === 0) {
      this.#disarm();
      return;
    }
    const taken = Result.fromThrowable(() => this.#native.tryConsume(), toMemportError)();
    if (taken.isErr()) {
      this.#failAll(taken.error);
      return;
    }
    if (taken.value) {
      for (const waiter of this.#waiters.splice(0)) waiter.settle(ok(undefined));
      this.#disarmSoon();
      return;
    }
    // Nothing pending yet (or a process sharing the notifier took it first):
    // watch. Re-arming after a report is what Windows needs; elsewhere a no-op.
    const armed = Result.fromThrowable(() => this.#native.arm(this.#onReady), toMemportError)();
    if (armed.isErr()) {
      this.#failAll(armed.error);
      return;
    }
    this.#armed = true;
  }

  /**
   * After a wake: the watch stays for one turn of the event loop, so a wait
   * that starts right away (the other side of a ping-pong, a stream's next
   * round) reuses it instead of building a new one (on Linux an epoll
   * registration and a uv_poll handle per wait). A notification arriving in
   * that turn with nobody waiting is not taken: #drain disarms first.
   */
  #disarmSoon(): void {
    if (this.#disarmQueued) return;
    this.#disarmQueued = true;
    setImmediate(() => {
      this.#disarmQueued = false;
      if (this.#waiters.length === 0) this.#disarm();
    });
  }

  #disarm(): void {
    if (!this.#armed || this.#closed) return;
    this.#armed = false;
    this.#native.disarm();
  }

  #failAll(error: MemportError): void {
    this.#disarm();
    for (const waiter of this.#waiters.splice(0)) waiter.settle(err(error));
  }
}

function closedError(): MemportError {
  return memportError('CLOSED', 'the notifier is closed; create a new one with Notifier.create()');
}
