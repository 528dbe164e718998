// The client side: connect() to a listener by name, optionally waiting for
// the listener to appear, then for its WELCOME (docs/PROTOCOL.md).
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ResultAsync, Result, err, errAsync, ok } from 'neverthrow';
import { memportError, toMemportError, type MemportError } from '../errors.js';
import { readLimits, type ConnectionLimits, type ResolvedLimits } from '../limits.js';
import type { Binding, NativeConnection } from '../native/binding.js';
import { loadNative } from '../native/load.js';
import { abortSignal, describe, readOptions, waitOptionsFrom } from '../options.js';
import type { SharedRegion } from '../region.js';
import { Waiter, type WaitOptions } from '../waiter.js';
import { Connection } from './connection.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, checkName } from './protocol.js';

/** Options for {@link connect}. */
export interface ConnectOptions extends WaitOptions {
  /**
   * Require the listener to be this process, still running (checked with the
   * kernel's answer): `ACCESS_DENIED` if it is another, `PEER_CLOSED` if it
   * has exited.
   */
  expectPid?: number;
  /**
   * If no listener has the name yet, wait for one to appear (until
   * `timeoutMs`, default 10 s) instead of failing at once with `NOT_FOUND`:
   * for a consumer that may start before its producer. Linux watches the
   * socket directory (inotify) and also retries with a backoff, so a name
   * that appears is noticed at once; Windows, which cannot watch pipe names,
   * retries with a backoff from 10 ms up to 250 ms. Nothing spins.
   */
  waitForListener?: boolean;
  /** Bounds on what the listener can make this process hold (defaults: {@link DEFAULT_LIMITS}). */
  limits?: ConnectionLimits;
  /**
   * Take regions the peer opened by name ({@link SharedRegion.openNamed},
   * {@link SharedRegion.createNamed}): the live named memory, not a copy.
   * Default `false`: a message carrying one is refused, its handles released
   * unmapped, and the sender's `send()` fails with `UNSUPPORTED` (telling it
   * to ask for this option or send `region.copyToUnnamed()`). Turn it on only
   * for a peer you trust with that memory: a named region has none of
   * memport's guarantees — on Linux it is not sealed, so its owner (or anyone
   * with write access to the name) can shrink it, and touching a view past
   * the new end kills this process with SIGBUS (`read`/`write` check the
   * size and fail instead). Received named regions have `named === true` and
   * no `name`. See SECURITY.md, "Named shared memory".
   */
  acceptNamedRegions?: boolean;
}

/** Retries while waiting for a listener: first delay, and the most it grows to. */
const FIRST_RETRY_MS = 10;
const MAX_RETRY_MS = 250;

/**
 * Connects to the listener called `name`. Resolves once the listener has
 * admitted this process. Errors: `NOT_FOUND` (no listener; see
 * `waitForListener`), `PEER_REJECTED` (refused by its `allow`),
 * `ACCESS_DENIED` (another user's listener, or not the `expectPid`
 * process), `PEER_CLOSED` (the `expectPid` process has exited, or on
 * Windows the listener has), `TIMEOUT` (default 10 s), `ABORTED`.
 *
 * ```ts
 * // A consumer that may start before its producer:
 * const conn = await connect('frames', { waitForListener: true, timeoutMs: 30_000 });
 * ```
 */
export function connect(name: string, options?: ConnectOptions): ResultAsync<Connection, MemportError> {
  const bad = checkName(name);
  if (bad) return errAsync(bad);
  const read = readOptions(options, ['timeoutMs', 'signal', 'expectPid', 'limits', 'waitForListener', 'acceptNamedRegions'], 'connect');
  if (read.isErr()) return errAsync(read.error);
  const wait = waitOptionsFrom(read.value, 'connect');
  if (wait.isErr()) return errAsync(wait.error);
  const { expectPid, waitForListener = false } = read.value;
  if (expectPid !== undefined && !(typeof expectPid === 'number' && Number.isSafeInteger(expectPid) && expectPid > 0)) {
    return errAsync(memportError('INVALID_ARGUMENT', `connect: expectPid must be a positive integer, got ${describe(expectPid)}`));
  }
  if (typeof waitForListener !== 'boolean') {
    return errAsync(memportError('INVALID_ARGUMENT', `connect: waitForListener must be true or false, got ${describe(waitForListener)}`));
  }
  const limits = readLimits(read.value.limits, false, read.value.acceptNamedRegions);
  if (limits.isErr()) return errAsync(limits.error);
  const binding = loadNative();
  if (binding.isErr()) return errAsync(binding.error);
  const timeoutMs = wait.value.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const what = waitForListener ? `connecting to '${name}' (waiting for its listener to appear)` : `connecting to '${name}'`;
  // One waiter for the whole operation (its timeout, the caller's signal and
  // the caller's stack); the steps inside stop through `stop` when it gives up.
  const overall = new Waiter<Connection>(what, { signal: wait.value.signal, timeoutMs });
  const stop = new AbortController();
  overall.onGiveUp = () => stop.abort();
  const attempt = new Attempt(binding.value, name, Date.now() + timeoutMs, expectPid ?? 0, waitForListener, limits.value, stop.signal);
  void attempt.run().then((result) => {
    if (!overall.settle(result) && result.isOk()) result.value.close(); // arrived after a timeout or abort
  });
  return overall.toResultAsync();
}

/** One connect(): native connects (retried while waiting for the listener), then the WELCOME. */
class Attempt {
  #delay = FIRST_RETRY_MS;

  constructor(
    readonly binding: Binding,
    readonly name: string,
    readonly deadline: number,
    readonly expectPid: number,
    readonly waitForListener: boolean,
    readonly limits: ResolvedLimits,
    readonly stop: AbortSignal,
  ) {}

  async run(): Promise<Result<Connection, MemportError>> {
    for (;;) {
      const native = await this.#connectOnce();
      if (native.isOk()) {
        return Connection._client(native.value, { signal: this.stop, timeoutMs: this.#remaining() }, this.limits);
      }
      if (native.error.code !== 'NOT_FOUND' || !this.waitForListener || this.stop.aborted) {
        return err(withNextStep(native.error, this.name));
      }
      await this.#nameMayHaveAppeared();
      if (this.stop.aborted) return err(native.error); // the overall waiter has settled already
    }
  }

  #remaining(): number {
    return Math.max(0, this.deadline - Date.now());
  }

  #connectOnce(): Promise<Result<NativeConnection, MemportError>> {
    return new Promise((resolve) => {
      try {
        this.binding.connect(this.name, Math.max(1, Math.floor(this.#remaining())), this.expectPid, (error, native) => {
          if (error || !native) resolve(err(toMemportError(error)));
          else if (this.stop.aborted) {
            native.close(); // nobody wants it any more
            resolve(err(memportError('ABORTED', 'connect gave up')));
          } else resolve(ok(native));
        });
      } catch (e) {
        resolve(err(toMemportError(e)));
      }
    });
  }

  /**
   * Resolves when the listener's name may exist: the socket directory saw a
   * change to it (Linux), the backoff delay passed, or the connect gave up.
   */
  #nameMayHaveAppeared(): Promise<void> {
    return new Promise((resolve) => {
      let watcher: FSWatcher | undefined;
      const done = (): void => {
        clearTimeout(timer);
        watcher?.close();
        abortSignal.unlisten(this.stop, done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(this.#delay, this.#remaining()));
      this.#delay = Math.min(this.#delay * 2, MAX_RETRY_MS);
      abortSignal.listen(this.stop, done);
      const address = Result.fromThrowable(() => this.binding.channelAddress(this.name))();
      if (process.platform === 'linux' && address.isOk()) {
        const file = basename(address.value);
        try {
          watcher = watch(dirname(address.value), { persistent: false }, (_event, changed) => {
            if (changed === null || changed === file) done();
          });
          watcher.on('error', () => {}); // the directory went away: the timer still runs
        } catch {
          // No directory yet (no listener ever ran for this user): the timer retries.
        }
      }
    });
  }
}

/** NOT_FOUND says what to do next. */
function withNextStep(error: MemportError, name: string): MemportError {
  if (error.code !== 'NOT_FOUND') return error;
  return memportError(
    'NOT_FOUND',
    `${error.message}. Start the listener (listen('${name}')) before connecting, or pass { waitForListener: true } to wait for it`,
  );
}
