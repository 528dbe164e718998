// The listening side: a name claimed for this user, connections admitted by
// `allow` (src/channel/admission.ts) and handed out by accept().
import { lstatSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { inspect } from 'node:util';
import { ResultAsync, err, errAsync, ok, okAsync, Result } from 'neverthrow';
import { memportError, toMemportError, type MemportError } from '../errors.js';
import { nativeLimits, readLimits, type ListenerLimits, type ResolvedLimits } from '../limits.js';
import type { NativeConnection, NativeListener, NativePeerLimits } from '../native/binding.js';
import { loadNative } from '../native/load.js';
import { describe, readOptions, readWaitOptions } from '../options.js';
import type { SharedRegion } from '../region.js';
import { Waiter, type WaitOptions } from '../waiter.js';
import { Admissions } from './admission.js';
import type { Connection } from './connection.js';
import { checkName, type Peer } from './protocol.js';

const dispose: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');
/** How often a Linux listener checks that its socket and lock file are still the ones it made. */
const NAME_CHECK_INTERVAL_MS = 1_000;
/** Only listen() may construct a Listener. */
const INTERNAL = Symbol('memport.Listener');

/** Options for {@link listen}. */
export interface ListenOptions {
  /**
   * Decides who may connect, given the kernel's word on the client. Default:
   * on Linux, processes of the same user (uid); on Windows every client the
   * pipe's DACL lets in, which is the current user and SYSTEM. A refused
   * client's `connect` fails with `PEER_REJECTED`. A client that exits before
   * `allow` answers is not admitted whatever the answer (its PID may by then
   * name another process), so `peer.pid` is safe to inspect in here.
   *
   * If `allow` throws or rejects, the client is refused and learns only that
   * (the same fixed `PEER_REJECTED` text as any refusal); the exception is
   * reported here, as a process warning with code `MEMPORT_ALLOW_FAILED`
   * (`process.on('warning', …)`; Node prints it to stderr by default).
   */
  allow?: (peer: Peer) => boolean | Promise<boolean>;
  /**
   * Bounds on what clients can make this process hold: per connection (see
   * {@link ConnectionLimits}) and on the number of connections. Defaults:
   * {@link DEFAULT_LIMITS}, documented in SECURITY.md ("Resource limits").
   */
  limits?: ListenerLimits;
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

function defaultAllow(peer: Peer): boolean {
  const uid = process.getuid?.();
  return uid === undefined || peer.uid === undefined || peer.uid === uid;
}

/**
 * Listens for connections under `name` (docs/PROTOCOL.md says which socket
 * path or pipe name that is). Fails with `ALREADY_EXISTS` if a live listener
 * has the name — never a silent join; the message names the process that
 * holds it where the OS can tell.
 *
 * ```ts
 * const listening = await listen('frames');
 * if (listening.isErr()) throw listening.error; // e.g. ALREADY_EXISTS: another process serves 'frames'
 * for await (const next of listening.value) {
 *   if (next.isErr()) throw next.error; // the listener failed (a clean close() just ends the loop)
 *   // Not awaited: each client is served on its own, so a silent one holds up nobody.
 *   next.value.send({ regions: [readOnlyTwin], data: { width: 1920 } }).mapErr(() => next.value.close());
 * }
 * ```
 */
export function listen(name: string, options?: ListenOptions): ResultAsync<Listener, MemportError> {
  const bad = checkName(name);
  if (bad) return errAsync(bad);
  const read = readOptions(options, ['allow', 'limits', 'acceptNamedRegions'], 'listen');
  if (read.isErr()) return errAsync(read.error);
  const { allow = defaultAllow } = read.value;
  if (typeof allow !== 'function') {
    return errAsync(memportError('INVALID_ARGUMENT', `listen: options.allow must be a function, got ${describe(allow)}`));
  }
  const limits = readLimits(read.value.limits, true, read.value.acceptNamedRegions);
  if (limits.isErr()) return errAsync(limits.error);
  const created = loadNative().andThen((binding) =>
    Result.fromThrowable(() => Listener._open(binding.listen, name, allow as (peer: Peer) => boolean | Promise<boolean>, limits.value), toMemportError)(),
  );
  if (created.isOk()) return okAsync(created.value);
  const error = created.error;
  if (error.code !== 'ALREADY_EXISTS') return errAsync(error);
  return errAsync(memportError('ALREADY_EXISTS', `${error.message}. Close that listener first, or listen under another name`));
}

type NativeListen = (name: string, onConnection: (c: NativeConnection) => void, onError: (e: Error) => void, limits?: NativePeerLimits) => NativeListener;

/**
 * Accepts connections admitted by its `allow` policy. Async-iterable: each
 * step is a `Result`, so a listener that fails is told apart from one that
 * was closed (which just ends the loop). Not constructible directly: use
 * {@link listen}.
 */
export class Listener implements AsyncIterable<Result<Connection, MemportError>>, Disposable {
  readonly #native: NativeListener;
  readonly #name: string;
  readonly #address: string;
  readonly #admissions: Admissions;
  readonly #ready: Connection[] = [];
  readonly #waiters: Array<Waiter<Connection>> = [];
  #error: MemportError | undefined;
  #closedByUser = false;
  #ref = true;
  #nameCheck: ReturnType<typeof setInterval> | undefined;

  /** @internal use {@link listen}; a static factory so the published class keeps a private constructor. */
  static _open(nativeListen: NativeListen, name: string, allow: (peer: Peer) => boolean | Promise<boolean>, limits: ResolvedLimits): Listener {
    return new Listener(INTERNAL, nativeListen, name, allow, limits);
  }

  private constructor(token: symbol, nativeListen: NativeListen, name: string, allow: (peer: Peer) => boolean | Promise<boolean>, limits: ResolvedLimits) {
    if (token !== INTERNAL) {
      throw new TypeError('memport: a Listener comes from listen(); it cannot be constructed directly');
    }
    this.#name = name;
    this.#admissions = new Admissions({ limits, allow }, (connection) => this.#onAdmitted(connection));
    this.#native = nativeListen(
      name,
      (native) => this.#admissions.onConnection(native),
      (error) => this.#fail(toMemportError(error)),
      nativeLimits(limits),
    );
    this.#address = this.#native.address() ?? '';
    this.#watchName();
  }

  /** The rendezvous name. */
  get name(): string {
    return this.#name;
  }

  /** The OS-level address: a socket path (Linux) or pipe name (Windows). */
  get address(): string {
    return this.#address;
  }

  /** True once the listener is closed or has failed. */
  get closed(): boolean {
    return this.#error !== undefined;
  }

  /**
   * The next admitted connection. Errors: `CLOSED`, `TIMEOUT`, `ABORTED`, and
   * (Linux) `ACCESS_DENIED` once another process removed or replaced this
   * listener's socket or lock file, so that clients cannot reach it by name.
   */
  accept(options?: WaitOptions): ResultAsync<Connection, MemportError> {
    const wait = readWaitOptions(options, 'accept');
    if (wait.isErr()) return errAsync(wait.error);
    const ready = this.#ready.shift();
    if (ready) return okAsync(ready);
    if (this.#error) return errAsync(this.#error);
    const waiter = new Waiter<Connection>('accept', wait.value);
    waiter.enqueue(this.#waiters);
    return waiter.toResultAsync();
  }

  /**
   * Yields `Ok(connection)` for each admitted connection. A listener closed
   * with {@link Listener.close} ends the loop; one that fails yields its
   * `Err` once, then ends.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<Result<Connection, MemportError>> {
    for (;;) {
      const next = await this.accept();
      if (next.isErr() && this.#closedByUser && next.error.code === 'CLOSED') return;
      yield next;
      if (next.isErr()) return;
    }
  }

  /** Stops listening and frees the name; idempotent. Accepted connections stay open. */
  close(): void {
    this.#closedByUser = true;
    this.#native.close();
    for (const c of this.#ready.splice(0)) c.close();
    this.#fail(memportError('CLOSED', 'the listener is closed'));
  }

  /**
   * Lets the process exit while this listener is open and nothing else keeps
   * it alive, as `net.Server#unref` does. Returns the listener.
   */
  unref(): this {
    this.#ref = false;
    this.#native.setRef(false);
    return this;
  }

  /** Undoes {@link Listener.unref}: an open listener keeps the process alive (the default). */
  ref(): this {
    this.#ref = true;
    this.#native.setRef(true);
    return this;
  }

  /** Closes the listener (`using listener = …`); same as {@link Listener.close}. */
  [dispose](): void {
    this.close();
  }

  /** @internal util.inspect: name, address and state. */
  [inspect.custom](_depth: number, options: { stylize: (text: string, style: string) => string }): string {
    const state = !this.#error ? 'listening' : this.#closedByUser ? 'closed' : `failed (${this.#error.code})`;
    const fields = [
      `name ${inspect(this.#name)}`,
      `address ${inspect(this.#address)}`,
      state,
      `${this.#admissions.open} connections`,
      `${this.#ready.length} waiting for accept()`,
      ...(this.#ref ? [] : ['unref']),
    ];
    return `${options.stylize('Listener', 'special')} { ${fields.join(', ')} }`;
  }

  #onAdmitted(connection: Connection): void {
    const waiter = Waiter.takeLive(this.#waiters);
    if (waiter) waiter.settle(ok(connection));
    else this.#ready.push(connection);
  }

  /**
   * Linux: notices when another process removes or replaces this listener's
   * socket or lock file (a same-user process taking over the name; see
   * SECURITY.md, "Names that no one else can take"): clients can no longer
   * reach this listener by name, so accept() fails from then on with
   * `ACCESS_DENIED` saying so. Checked every second with an asynchronous
   * lstat (nothing blocks the JS thread; the timer keeps no process alive).
   * Windows: an added pipe instance cannot be seen from the listener; clients
   * refuse it (the owner file), and this does nothing.
   */
  #watchName(): void {
    if (process.platform !== 'linux' || !this.#address.endsWith('.sock')) return;
    const files = [this.#address, this.#address.replace(/\.sock$/, '.lock')];
    const id = (st: { dev: bigint; ino: bigint }): string => `${st.dev}:${st.ino}`;
    // Taken at once, as listen() made them (listen itself did its file work synchronously).
    const expected = files.map((path) => {
      try {
        return id(lstatSync(path, { bigint: true }));
      } catch {
        return 'missing';
      }
    });
    if (expected.includes('missing')) return;
    let checking = false;
    this.#nameCheck = setInterval(() => {
      if (checking) return;
      checking = true;
      void Promise.all(files.map((path) => lstat(path, { bigint: true }).then(id, () => 'missing'))).then((now) => {
        checking = false;
        const changed = files.filter((_, i) => now[i] !== expected[i]);
        if (changed.length === 0 || this.#error) return;
        this.#fail(
          memportError(
            'ACCESS_DENIED',
            `another process removed or replaced this listener's ${changed.map((f) => basename(f)).join(' and ')} in ${dirname(this.#address)}: ` +
              'clients can no longer reach it by name. Close it (and find out which process of your user did this) before listening again.',
          ),
        );
      });
    }, NAME_CHECK_INTERVAL_MS);
    this.#nameCheck.unref?.();
  }

  #fail(error: MemportError): void {
    if (this.#error) return;
    this.#error = error;
    this.#admissions.stop();
    if (this.#nameCheck !== undefined) clearInterval(this.#nameCheck);
    for (const w of this.#waiters.splice(0)) w.settle(err(error));
  }
}
