import { lstatSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ResultAsync, err, errAsync, ok, okAsync, Result } from 'neverthrow';
import { MEMPORT_ERROR_CODES, memportError, peerText, toMemportError, type MemportError, type MemportErrorCode } from './errors.js';
import { DEFAULT_LIMITS, nativeLimits, readLimits, type ConnectionLimits, type ListenerLimits, type ResolvedLimits } from './limits.js';
import { FrameType, type NativeConnection, type NativeInbound, type NativeListener, type NativePeerLimits, type NativeRegion } from './native/binding.js';
import { PROTOCOL, UNREPORTED_WRITE } from './native/constants.js';
import { loadNative } from './native/load.js';
import { describe, readArray, readOptions, readWaitOptions, thrownText, waitOptionsFrom } from './options.js';
import { SharedRegion, nativeOf, namedRegionSendError } from './region.js';
import { Waiter, type WaitOptions } from './waiter.js';

/** Who is at the other end, as the kernel reports it (never taken from a message). */
export interface Peer {
  /** Process ID (SO_PEERCRED on Linux, GetNamedPipeClient/ServerProcessId on Windows). */
  readonly pid: number;
  /** User ID (Linux only). */
  readonly uid?: number;
  /** Group ID (Linux only). */
  readonly gid?: number;
}

/** What one `send` carries and one `receive` returns. */
export interface Message<T = unknown> {
  /** Regions whose handles travel with the message; the receiver owns its copies. */
  regions: SharedRegion[];
  /** Any JSON-serialisable value (at most 128 KiB once serialised), or undefined. */
  data: T;
}

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
}

/** Options for {@link connect}. */
export interface ConnectOptions extends WaitOptions {
  /**
   * Require the listener to be this process, still running (checked with the
   * kernel's answer): `ACCESS_DENIED` if it is another, `PEER_CLOSED` if it
   * has exited.
   */
  expectPid?: number;
  /** Bounds on what the listener can make this process hold (defaults: {@link DEFAULT_LIMITS}). */
  limits?: ConnectionLimits;
}

/** At most this many MESSAGE frames (256) may await acknowledgement in each direction. Defined by the addon (native/core/frame.h). */
export const MESSAGE_WINDOW: number = PROTOCOL.messageWindow;
/** Largest serialised `data` of one message (128 KiB). Defined by the addon (native/core/frame.h). */
export const MAX_DATA_BYTES: number = PROTOCOL.maxDataBytes;
/** Most regions in one message (64). Defined by the addon (native/core/frame.h). */
export const MAX_REGIONS_PER_MESSAGE: number = PROTOCOL.maxRegionsPerMessage;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/**
 * How long `send` waits for the peer to take a message when the caller gives
 * no `timeoutMs`: a peer that never receives ends the send with `TIMEOUT`
 * instead of leaving it pending for ever. Pass `timeoutMs` (up to 2^31-1 ms)
 * to wait longer.
 */
export const DEFAULT_SEND_TIMEOUT_MS = 30_000;
let defaultSendTimeoutMs = DEFAULT_SEND_TIMEOUT_MS;
/** @internal Test hook (memport/testing): the default send timeout. */
export function _setDefaultSendTimeout(ms: number): void {
  defaultSendTimeoutMs = ms;
}
/** What a refused client is told, whatever the reason: nothing about the listener's policy or its errors. */
const REFUSAL_TEXT = 'not admitted by the listener';
/** How often a Linux listener checks that its socket and lock file are still the ones it made. */
const NAME_CHECK_INTERVAL_MS = 1_000;
const NAME_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const dispose: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');

function checkName(name: unknown): MemportError | undefined {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    return memportError('INVALID_ARGUMENT', `a channel name is 1 to 64 characters of A-Z a-z 0-9 . _ - not starting with '.', got ${describe(name)}`);
  }
  return undefined;
}

function defaultAllow(peer: Peer): boolean {
  const uid = process.getuid?.();
  return uid === undefined || peer.uid === undefined || peer.uid === uid;
}

interface PendingSend {
  waiter: Waiter<void>;
  writeId: number;
}

type Role = 'client' | 'server';

/**
 * One end of a connection between two processes. Created by {@link connect}
 * or accepted from a {@link Listener}.
 */
export class Connection implements Disposable {
  readonly #native: NativeConnection;
  readonly #peer: Peer;
  readonly #role: Role;
  #nextSeq = 1;
  #nextWriteId = 1;
  /** seq → the send waiting for its acknowledgement. */
  readonly #unacked = new Map<number, PendingSend>();
  /** writeId → seq, until the write completes. */
  readonly #writes = new Map<number, number>();
  /** Sends waiting for room in the window. */
  readonly #windowWaiters: Array<() => void> = [];
  /** Arrived, not received: validated handles (unmapped) and raw data, held natively. */
  readonly #inbox: Array<{ seq: number; held: NativeInbound }> = [];
  readonly #receivers: Array<Waiter<Message>> = [];
  #welcome: Waiter<void> | undefined;
  #closedError: MemportError | undefined;
  #onClosed: (() => void) | undefined;

  private constructor(native: NativeConnection, role: Role) {
    this.#native = native;
    this.#role = role;
    const peer = native.peer();
    this.#peer = Object.freeze({ ...peer });
  }

  /** Starts reading: a client at once, a listener's connection only once WELCOME is sent. */
  #start(limits: ResolvedLimits): void {
    this.#native.start(
      (type, seq, held, data, refusal) => this.#onFrame(type, seq, held, data, refusal),
      (error) => this.#finish(toMemportError(error)),
      (id, error) => this.#onWriteDone(id, error),
      nativeLimits(limits),
    );
  }

  /** @internal */
  static _client(native: NativeConnection, options: WaitOptions, limits: ResolvedLimits): ResultAsync<Connection, MemportError> {
    const connection = new Connection(native, 'client');
    connection.#start(limits);
    const welcome = new Waiter<void>('waiting for the listener to admit this client', options);
    connection.#welcome = welcome;
    welcome.onGiveUp = () => connection.close();
    if (welcome.settled) connection.close(); // gave up at construction (signal already aborted)
    return welcome.toResultAsync().map(() => connection);
  }

  /** @internal Not started: nothing is read from the client before it is admitted. */
  static _server(native: NativeConnection, onClosed: () => void): Connection {
    const connection = new Connection(native, 'server');
    connection.#onClosed = onClosed;
    return connection;
  }

  /**
   * @internal Admits the client: checks that it sent nothing before WELCOME
   * (else it is dropped with PROTOCOL), sends WELCOME, starts reading.
   */
  _admit(limits: ResolvedLimits): Result<void, MemportError> {
    const admitted = Result.fromThrowable(() => {
      this.#native.admit();
      this.#native.write(UNREPORTED_WRITE, FrameType.Welcome, 0, []);
    }, toMemportError)();
    if (admitted.isErr()) {
      this.#native.close();
      this.#finish(admitted.error);
      return admitted;
    }
    this.#start(limits);
    return ok(undefined);
  }

  /** The process at the other end, as the kernel reports it. */
  get peer(): Peer {
    return this.#peer;
  }

  /** True once the connection is closed (by either side). */
  get closed(): boolean {
    return this.#closedError !== undefined;
  }

  /**
   * Sends regions and/or data. Resolves once the peer has taken ownership
   * (received the message); the regions stay usable here.
   *
   * Errors: `INVALID_ARGUMENT` (bad message, data not JSON or over 128 KiB,
   * over 64 regions), `CLOSED` (a region or the connection is closed),
   * `ACCESS_DENIED` (a writable region that has a read-only twin),
   * `PEER_CLOSED`, a code the peer refused with, `TIMEOUT`, `ABORTED`. A
   * timed-out or aborted send may still be delivered. Without `timeoutMs` a
   * send waits at most {@link DEFAULT_SEND_TIMEOUT_MS} (30 s) for the peer to
   * take the message, so a peer that never receives costs a `TIMEOUT`, not a
   * send pending for ever.
   */
  send(message: Partial<Message>, options?: WaitOptions): ResultAsync<void, MemportError> {
    const wait = readWaitOptions(options, 'send');
    if (wait.isErr()) return errAsync(wait.error);
    const encoded = encodeMessage(message);
    if (encoded.isErr()) return errAsync(encoded.error);
    if (this.#closedError) return errAsync(this.#closedError);
    const waiter = new Waiter<void>('send', { ...wait.value, timeoutMs: wait.value.timeoutMs ?? defaultSendTimeoutMs });
    const start = (): void => {
      if (waiter.settled) return;
      if (this.#closedError) {
        waiter.settle(err(this.#closedError));
        return;
      }
      const seq = this.#takeSeq();
      const writeId = this.#nextWriteId++;
      const { natives, bytes } = encoded.value;
      const written = Result.fromThrowable(() => this.#native.write(writeId, FrameType.Message, seq, natives, bytes), toMemportError)();
      if (written.isErr()) {
        waiter.settle(err(written.error));
        this.#wakeWindow();
        return;
      }
      this.#unacked.set(seq, { waiter, writeId });
      if (!written.value) this.#writes.set(writeId, seq); // completion still to come
    };
    if (this.#unacked.size < MESSAGE_WINDOW && this.#windowWaiters.length === 0) start();
    else this.#windowWaiters.push(start);
    return waiter.toResultAsync();
  }

  /**
   * The next message, in order. Resolves as soon as one is available; the
   * returned regions are owned by the caller (close them when done).
   * Errors: `PEER_CLOSED` once the peer is gone and every message it sent
   * was received, `CLOSED`, `TIMEOUT`, `ABORTED`.
   */
  receive<T = unknown>(options?: WaitOptions): ResultAsync<Message<T>, MemportError> {
    const wait = readWaitOptions(options, 'receive');
    if (wait.isErr()) return errAsync(wait.error);
    for (let next = this.#inbox.shift(); next; next = this.#inbox.shift()) {
      const taken = this.#take(next.seq, next.held);
      if (taken === undefined) continue; // could not be mapped: refused with NACK
      if (taken.isErr()) return errAsync(taken.error);
      return okAsync(taken.value as Message<T>);
    }
    if (this.#closedError) return errAsync(this.#closedError);
    const waiter = new Waiter<Message>('receive', wait.value);
    waiter.enqueue(this.#receivers);
    return waiter.toResultAsync() as ResultAsync<Message<T>, MemportError>;
  }

  /**
   * Closes the connection; idempotent. Pending sends and receives end with
   * `CLOSED`; regions of messages not yet received are released.
   */
  close(): void {
    this.#native.close();
    const closed = memportError('CLOSED', 'the connection is closed');
    this.#finish(closed);
    // Also after the peer had already gone: from now on this connection is
    // closed by us, and messages nobody received are released.
    this.#closedError = closed;
    for (const { held } of this.#inbox.splice(0)) this.#release(held);
  }

  /** Closes the connection (`using conn = …`); same as {@link Connection.close}. */
  [dispose](): void {
    this.close();
  }

  // --- internals -------------------------------------------------------------

  #takeSeq(): number {
    const seq = this.#nextSeq;
    this.#nextSeq = seq >= 0xffffffff ? 1 : seq + 1;
    return seq;
  }

  #acknowledge(seq: number): void {
    if (this.#closedError) return;
    try {
      this.#native.write(UNREPORTED_WRITE, FrameType.Ack, seq, []);
    } catch {
      // The connection is going away; onClosed reports it.
    }
  }

  #wakeWindow(): void {
    while (this.#windowWaiters.length > 0 && this.#unacked.size < MESSAGE_WINDOW) this.#windowWaiters.shift()!();
  }

  /** A peer that breaks the protocol loses its connection. */
  #violation(message: string, code: MemportErrorCode = 'PROTOCOL'): void {
    this.#native.close();
    this.#finish(memportError(code, `the peer broke the protocol: ${message}`));
  }

  #onFrame(type: number, seq: number, held: NativeInbound | undefined, data: Uint8Array | undefined, refusal: Error | undefined): void {
    if (this.#closedError) {
      if (held) this.#release(held);
      return;
    }
    switch (type) {
      case FrameType.Welcome:
        if (this.#role !== 'client' || !this.#welcome || this.#welcome.settled) return this.#violation('unexpected WELCOME');
        this.#welcome.settle(ok(undefined));
        return;
      case FrameType.Reject: {
        if (this.#role !== 'client' || !this.#welcome) return this.#violation('unexpected REJECT');
        // The reason is the peer's text: shown, but never trusted to be printable.
        const reason = data ? safeText(data) : 'no reason given';
        const refused = memportError('PEER_REJECTED', `the listener refused this client: ${reason}`);
        this.#welcome.settle(err(refused));
        this.#native.close();
        this.#finish(refused);
        return;
      }
      case FrameType.Message:
        return this.#onMessage(seq, held, refusal);
      case FrameType.Ack: {
        const pending = this.#unacked.get(seq);
        if (!pending) return this.#violation(`ACK for unknown message ${seq}`);
        this.#unacked.delete(seq);
        pending.waiter.settle(ok(undefined));
        this.#wakeWindow();
        return;
      }
      case FrameType.Nack: {
        const pending = this.#unacked.get(seq);
        if (!pending) return this.#violation(`NACK for unknown message ${seq}`);
        this.#unacked.delete(seq);
        pending.waiter.settle(err(decodeNack(data)));
        this.#wakeWindow();
        return;
      }
      default:
        return this.#violation(`unknown frame type ${type}`);
    }
  }

  #onMessage(seq: number, held: NativeInbound | undefined, refusal: Error | undefined): void {
    if (this.#role === 'client' && this.#welcome && !this.#welcome.settled) {
      if (held) this.#release(held);
      return this.#violation('MESSAGE before WELCOME');
    }
    if (refusal || !held) {
      // Over a bound (limits): its handles were released unmapped. Tell the sender why.
      this.#nack(seq, refusal ?? new Error('no message'));
      return;
    }
    if (this.#inbox.length >= MESSAGE_WINDOW) {
      this.#release(held);
      return this.#violation(`more than ${MESSAGE_WINDOW} unacknowledged messages`);
    }
    const receiver = Waiter.takeLive(this.#receivers);
    if (!receiver) {
      this.#inbox.push({ seq, held });
      return;
    }
    const taken = this.#take(seq, held);
    if (taken === undefined) {
      this.#receivers.unshift(receiver); // refused with NACK; the receiver waits on
      return;
    }
    receiver.settle(taken);
  }

  /**
   * The application receives a message: its regions are mapped and its data
   * parsed now, never on arrival (so nobody's unreceived messages take address
   * space or heap). Ok: received and acknowledged. Err: the data was not JSON
   * (the peer is dropped). undefined: a region could not be mapped here
   * (e.g. no address space): everything is released and the sender gets NACK.
   */
  #take(seq: number, held: NativeInbound): Result<Message, MemportError> | undefined {
    let natives: NativeRegion[];
    let data: Uint8Array | undefined;
    try {
      [natives, data] = this.#native.takeMessage(held);
    } catch (e) {
      this.#nack(seq, e);
      return undefined;
    }
    let value: unknown;
    if (data !== undefined) {
      try {
        value = JSON.parse(decoder.decode(data));
      } catch {
        for (const r of natives) r.close();
        this.#violation('message data is not UTF-8 JSON');
        return err(this.#closedError!);
      }
    }
    this.#acknowledge(seq);
    return ok({ regions: natives.map((n) => SharedRegion._fromNative(n)), data: value });
  }

  #release(held: NativeInbound): void {
    try {
      this.#native.releaseMessage(held);
    } catch {
      // not a held message: nothing to release
    }
  }

  #nack(seq: number, error: unknown): void {
    if (this.#closedError) return;
    const reason = toMemportError(error);
    const body = encoder.encode(JSON.stringify({ code: reason.code, message: reason.message }));
    try {
      this.#native.write(UNREPORTED_WRITE, FrameType.Nack, seq, [], body);
    } catch {
      // closing anyway
    }
  }

  #onWriteDone(id: number, error: Error | undefined): void {
    const seq = this.#writes.get(id);
    if (seq === undefined) return; // an ACK/NACK frame
    this.#writes.delete(id);
    if (!error) return;
    const pending = this.#unacked.get(seq);
    if (!pending) return;
    this.#unacked.delete(seq);
    pending.waiter.settle(err(toMemportError(error)));
    this.#wakeWindow();
  }

  /** Ends the connection once. `error` says why: PEER_CLOSED, CLOSED, or the violation detected. */
  #finish(error: MemportError): void {
    if (this.#closedError) return;
    this.#closedError = error;
    this.#onClosed?.();
    this.#onClosed = undefined;
    this.#welcome?.settle(err(error));
    for (const { waiter } of this.#unacked.values()) waiter.settle(err(error));
    this.#unacked.clear();
    for (const start of this.#windowWaiters.splice(0)) start();
    for (const receiver of this.#receivers.splice(0)) receiver.settle(err(error));
  }
}

/** A peer's UTF-8 text, made safe for an error message (src/errors.ts, peerText). */
function safeText(bytes: Uint8Array): string {
  try {
    return peerText(decoder.decode(bytes));
  } catch {
    return '(not UTF-8)';
  }
}

function decodeNack(data: Uint8Array | undefined): MemportError {
  try {
    const body = JSON.parse(decoder.decode(data ?? new Uint8Array())) as { code?: unknown; message?: unknown };
    const code = (MEMPORT_ERROR_CODES as readonly unknown[]).includes(body.code) ? (body.code as MemportErrorCode) : 'PEER_REJECTED';
    return memportError(code, `the peer refused the message: ${typeof body.message === 'string' ? peerText(body.message) : 'no reason given'}`);
  } catch {
    return memportError('PEER_REJECTED', 'the peer refused the message');
  }
}

/**
 * Reads a message to send once (src/options.ts): `regions` copied by index,
 * each a genuine SharedRegion (brand-checked, so a look-alike or a Proxy is
 * refused without running any of its code), `data` serialised once.
 */
function encodeMessage(message: unknown): Result<{ natives: NativeRegion[]; bytes: Uint8Array | undefined }, MemportError> {
  if (message === null || typeof message !== 'object') {
    return err(memportError('INVALID_ARGUMENT', `send() takes { regions?, data? }, got ${describe(message)}`));
  }
  const read = readOptions(message, ['regions', 'data'], 'send');
  if (read.isErr()) return err(read.error);
  const { regions: given = [], data } = read.value;
  const regions = readArray(given, 'send: regions');
  if (regions.isErr()) return err(regions.error);
  if (regions.value.length > MAX_REGIONS_PER_MESSAGE) {
    return err(memportError('INVALID_ARGUMENT', `at most ${MAX_REGIONS_PER_MESSAGE} regions per message, got ${regions.value.length}`));
  }
  const natives: NativeRegion[] = [];
  for (const [i, region] of regions.value.entries()) {
    const native = nativeOf(region);
    if (!native) return err(memportError('INVALID_ARGUMENT', `regions[${i}] is not a SharedRegion`));
    if (native.closed()) return err(memportError('CLOSED', `regions[${i}] is closed`));
    const named = namedRegionSendError(region as SharedRegion, i);
    if (named) return err(named);
    natives.push(native);
  }
  if (data === undefined) return ok({ natives, bytes: undefined });
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (e) {
    return err(memportError('INVALID_ARGUMENT', `data is not JSON-serialisable: ${thrownText(e)}`, { cause: e }));
  }
  if (json === undefined) return err(memportError('INVALID_ARGUMENT', 'data is not JSON-serialisable'));
  const bytes = encoder.encode(json);
  if (bytes.length > MAX_DATA_BYTES) {
    return err(memportError('INVALID_ARGUMENT', `data is ${bytes.length} bytes once serialised; the limit is ${MAX_DATA_BYTES} (put bulk bytes in a region)`));
  }
  return ok({ natives, bytes });
}

/**
 * Listens for connections under `name` (docs/PROTOCOL.md says which socket
 * path or pipe name that is). Fails with `ALREADY_EXISTS` if a live listener
 * has the name — never a silent join.
 *
 * ```ts
 * const listening = await listen('frames');
 * if (listening.isErr()) throw listening.error; // e.g. ALREADY_EXISTS: another process serves 'frames'
 * for await (const conn of listening.value) {
 *   // Not awaited: each client is served on its own, so a silent one holds up nobody.
 *   conn.send({ regions: [readOnlyTwin], data: { width: 1920 } }).mapErr(() => conn.close());
 * }
 * ```
 */
export function listen(name: string, options?: ListenOptions): ResultAsync<Listener, MemportError> {
  const bad = checkName(name);
  if (bad) return errAsync(bad);
  const read = readOptions(options, ['allow', 'limits'], 'listen');
  if (read.isErr()) return errAsync(read.error);
  const { allow = defaultAllow } = read.value;
  if (typeof allow !== 'function') {
    return errAsync(memportError('INVALID_ARGUMENT', `listen: options.allow must be a function, got ${describe(allow)}`));
  }
  const limits = readLimits(read.value.limits, true);
  if (limits.isErr()) return errAsync(limits.error);
  const created = loadNative().andThen((binding) =>
    Result.fromThrowable(() => Listener._open(binding.listen, name, allow as (peer: Peer) => boolean | Promise<boolean>, limits.value), toMemportError)(),
  );
  return created.isOk() ? okAsync(created.value) : errAsync(created.error);
}

/** Accepts connections admitted by its `allow` policy. Async-iterable. */
export class Listener implements AsyncIterable<Connection>, Disposable {
  readonly #native: NativeListener;
  readonly #name: string;
  readonly #address: string;
  readonly #allow: (peer: Peer) => boolean | Promise<boolean>;
  readonly #limits: ResolvedLimits;
  /** Open connections (admitted, or waiting for allow()), in all and per peer PID. */
  #open = 0;
  readonly #openPerPeer = new Map<number, number>();
  readonly #ready: Connection[] = [];
  readonly #waiters: Array<Waiter<Connection>> = [];
  #error: MemportError | undefined;
  #nameCheck: ReturnType<typeof setInterval> | undefined;

  /** @internal use {@link listen}; a static factory so the published class keeps a private constructor. */
  static _open(
    nativeListen: (name: string, onConnection: (c: NativeConnection) => void, onError: (e: Error) => void, limits?: NativePeerLimits) => NativeListener,
    name: string,
    allow: (peer: Peer) => boolean | Promise<boolean>,
    limits: ResolvedLimits,
  ): Listener {
    return new Listener(nativeListen, name, allow, limits);
  }

  private constructor(
    nativeListen: (name: string, onConnection: (c: NativeConnection) => void, onError: (e: Error) => void, limits?: NativePeerLimits) => NativeListener,
    name: string,
    allow: (peer: Peer) => boolean | Promise<boolean>,
    limits: ResolvedLimits,
  ) {
    this.#name = name;
    this.#allow = allow;
    this.#limits = limits;
    this.#native = nativeListen(
      name,
      (native) => this.#onConnection(native),
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

  /** Yields each admitted connection; ends when the listener is closed or fails. */
  async *[Symbol.asyncIterator](): AsyncIterator<Connection> {
    for (;;) {
      const next = await this.accept();
      if (next.isErr()) return;
      yield next.value;
    }
  }

  /** Stops listening and frees the name; idempotent. Accepted connections stay open. */
  close(): void {
    this.#native.close();
    for (const c of this.#ready.splice(0)) c.close();
    this.#fail(memportError('CLOSED', 'the listener is closed'));
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

  /** Closes the listener (`using listener = …`); same as {@link Listener.close}. */
  [dispose](): void {
    this.close();
  }

  #fail(error: MemportError): void {
    if (this.#error) return;
    this.#error = error;
    if (this.#nameCheck !== undefined) clearInterval(this.#nameCheck);
    for (const w of this.#waiters.splice(0)) w.settle(err(error));
  }

  #onConnection(native: NativeConnection): void {
    const pid = Result.fromThrowable(() => native.peer().pid, toMemportError)();
    if (pid.isErr()) {
      native.close();
      return;
    }
    const fromPeer = this.#openPerPeer.get(pid.value) ?? 0;
    const full =
      this.#open >= this.#limits.maxConnections
        ? `the listener has too many connections (limits.maxConnections = ${this.#limits.maxConnections})`
        : fromPeer >= this.#limits.maxConnectionsPerPeer
          ? `this process has too many connections to the listener (limits.maxConnectionsPerPeer = ${this.#limits.maxConnectionsPerPeer})`
          : undefined;
    if (full !== undefined) {
      // Refused before allow() and before anything is read: close what it has sent, unread.
      refuse(native, full);
      return;
    }
    this.#open++;
    this.#openPerPeer.set(pid.value, fromPeer + 1);
    const connection = Connection._server(native, () => {
      this.#open--;
      const left = (this.#openPerPeer.get(pid.value) ?? 1) - 1;
      if (left > 0) this.#openPerPeer.set(pid.value, left);
      else this.#openPerPeer.delete(pid.value);
    });
    const peer = connection.peer;
    Promise.resolve()
      .then(() => this.#allow(peer))
      .then(
        (allowed) => allowed === true,
        (e: unknown) => {
          // The application's error stays here: the client learns only that
          // it was refused (docs: ListenOptions.allow).
          process.emitWarning(`memport: allow() threw while judging process ${peer.pid}, which was refused: ${thrownText(e)}`, {
            code: 'MEMPORT_ALLOW_FAILED',
          });
          return false;
        },
      )
      .then((allowed) => (allowed ? undefined : REFUSAL_TEXT))
      .then((refusal) => {
        if (this.#error || connection.closed) {
          connection.close();
          return;
        }
        if (refusal === undefined && !native.peerRunning()) {
          // The peer exited while allow() judged it: its PID may by now name
          // another process, so the verdict may not have been about the peer.
          // Nobody is left to tell.
          connection.close();
          return;
        }
        if (refusal !== undefined) {
          refuse(native, refusal, () => connection.close());
          return;
        }
        // Nothing was read from the client so far; a frame it sent before
        // WELCOME is a violation (dropped with PROTOCOL, released unread).
        if (connection._admit(this.#limits).isErr()) return;
        const waiter = Waiter.takeLive(this.#waiters);
        if (waiter) waiter.settle(ok(connection));
        else this.#ready.push(connection);
      });
  }
}

/** Sends REJECT to a client that was never started, then closes it (releasing unread whatever it sent). */
function refuse(native: NativeConnection, reason: string, close: () => void = () => native.close()): void {
  try {
    native.write(UNREPORTED_WRITE, FrameType.Reject, 0, [], encoder.encode(reason));
  } catch {
    // already gone
  }
  // Give the REJECT a moment to be read before the EOF.
  setTimeout(close, 50).unref?.();
}

/**
 * Connects to the listener called `name`. Resolves once the listener has
 * admitted this process. Errors: `NOT_FOUND` (no listener), `PEER_REJECTED`
 * (refused by its `allow`), `ACCESS_DENIED` (another user's listener, or not
 * the `expectPid` process), `PEER_CLOSED` (the `expectPid` process has
 * exited, or on Windows the listener has), `TIMEOUT` (default 10 s), `ABORTED`.
 */
export function connect(name: string, options?: ConnectOptions): ResultAsync<Connection, MemportError> {
  const bad = checkName(name);
  if (bad) return errAsync(bad);
  const read = readOptions(options, ['timeoutMs', 'signal', 'expectPid', 'limits'], 'connect');
  if (read.isErr()) return errAsync(read.error);
  const wait = waitOptionsFrom(read.value, 'connect');
  if (wait.isErr()) return errAsync(wait.error);
  const { expectPid } = read.value;
  if (expectPid !== undefined && !(typeof expectPid === 'number' && Number.isSafeInteger(expectPid) && expectPid > 0)) {
    return errAsync(memportError('INVALID_ARGUMENT', `connect: expectPid must be a positive integer, got ${describe(expectPid)}`));
  }
  const limits = readLimits(read.value.limits, false);
  if (limits.isErr()) return errAsync(limits.error);
  const binding = loadNative();
  if (binding.isErr()) return errAsync(binding.error);
  const { signal } = wait.value;
  const timeoutMs = wait.value.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const started = Date.now();
  const waiter = new Waiter<NativeConnection>(`connecting to '${name}'`, { signal, timeoutMs });
  try {
    binding.value.connect(name, Math.max(1, Math.floor(timeoutMs)), expectPid ?? 0, (error, native) => {
      if (error || !native) {
        waiter.settle(err(toMemportError(error)));
        return;
      }
      // Arrived after a timeout or abort: nobody wants it.
      if (!waiter.settle(ok(native))) native.close();
    });
  } catch (e) {
    waiter.settle(err(toMemportError(e)));
  }
  return waiter.toResultAsync().andThen((native) =>
    Connection._client(native, { signal, timeoutMs: Math.max(0, timeoutMs - (Date.now() - started)) }, limits.value),
  );
}

/**
 * The OS-level address a channel name maps to for this user: a socket path
 * under a private directory (Linux) or a pipe name (Windows).
 */
export function channelAddress(name: string): Result<string, MemportError> {
  const bad = checkName(name);
  if (bad) return err(bad);
  return loadNative().andThen((binding) => Result.fromThrowable(() => binding.channelAddress(name), toMemportError)());
}
