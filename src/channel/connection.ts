// One end of a connection: sequencing, the message window, acknowledgement on
// arrival, and the inbox of messages the application has not received yet.
import { inspect } from 'node:util';
import { ResultAsync, err, errAsync, ok, Result } from 'neverthrow';
import { memportError, toMemportError, type MemportError, type MemportErrorCode } from '../errors.js';
import { nativeLimits, type ResolvedLimits } from '../limits.js';
import { FrameType, type NativeConnection, type NativeInbound, type NativeNotifier, type NativeRegion } from '../native/binding.js';
import { Notifier } from '../notifier.js';
import { readWaitOptions } from '../options.js';
import { nativeOf, SharedRegion } from '../region.js';
import { Stream, type PeerReaderParts, type StreamReader, type StreamWriter } from '../stream.js';
import { Waiter, type WaitOptions } from '../waiter.js';
import { decodeData, decodeNack, encodeMessage, encodeNack, safeText } from './codec.js';
import { MESSAGE_WINDOW, UNREPORTED_WRITE, defaultSendTimeout, type Message, type OutgoingMessage, type Peer } from './protocol.js';

const dispose: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');
/** Only this module's factories may construct a Connection. */
const INTERNAL = Symbol('memport.Connection');

interface PendingSend {
  waiter: Waiter<void>;
  writeId: number;
}

/** A message that arrived and that the application has not received yet. */
interface Arrived {
  seq: number;
  held: NativeInbound;
}

type Role = 'client' | 'server';

/**
 * One end of a connection between two processes. Created by {@link connect}
 * or accepted from a {@link Listener}; not constructible directly.
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
  /**
   * Arrived, not received: validated handles (unmapped) and raw data, held
   * natively. Its first `#acked` entries have been acknowledged (at most
   * MESSAGE_WINDOW); the rest wait for the application to make room.
   */
  readonly #inbox: Arrived[] = [];
  #acked = 0;
  readonly #receivers: Array<Waiter<Message>> = [];
  #welcome: Waiter<void> | undefined;
  #closedError: MemportError | undefined;
  #onClosed: (() => void) | undefined;
  #ref = true;
  /** Readers this end handed out over the connection: their writers drop them when it ends. */
  #streamsOut: Array<{ writer: StreamWriter; id: number }> = [];
  /** Readers that came over the connection: they end when it ends. */
  readonly #streamsIn = new Set<StreamReader>();

  private constructor(native: NativeConnection, role: Role, token: symbol) {
    if (token !== INTERNAL) {
      throw new TypeError('memport: a Connection comes from connect() or listener.accept(); it cannot be constructed directly');
    }
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
    if (!this.#ref) this.#native.setRef(false);
  }

  /** @internal A client, waiting for the listener's WELCOME (or REJECT). */
  static _client(native: NativeConnection, options: WaitOptions, limits: ResolvedLimits): ResultAsync<Connection, MemportError> {
    const connection = new Connection(native, 'client', INTERNAL);
    connection.#start(limits);
    const welcome = new Waiter<void>('waiting for the listener to admit this client', options);
    connection.#welcome = welcome;
    welcome.onGiveUp = () => connection.close();
    if (welcome.settled) connection.close(); // gave up at construction (signal already aborted)
    return welcome.toResultAsync().map(() => connection);
  }

  /** @internal Not started: nothing is read from the client before it is admitted. */
  static _server(native: NativeConnection, onClosed: () => void): Connection {
    const connection = new Connection(native, 'server', INTERNAL);
    connection.#onClosed = onClosed;
    return connection;
  }

  /**
   * @internal Admits the client: checks that it sent nothing before WELCOME
   * (else it is dropped with PROTOCOL) and is still there, sends WELCOME,
   * starts reading.
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
   * Sends regions, notifiers, stream readers and/or data. Resolves once the peer *process* holds the
   * message: its handles received and validated into the peer's inbox. It
   * does not wait for the peer's application to call `receive()`, so both
   * ends may send and then receive. The regions stay usable here.
   *
   * The peer acknowledges at once while fewer than {@link MESSAGE_WINDOW}
   * of its messages wait for its application; beyond that, a send waits
   * until the peer receives one. So a peer that never calls `receive()`
   * holds at most a bounded number of messages, and its sender waits.
   *
   * `streams: [writer]` hands the peer a new reader of each stream, served
   * while this connection is open (see {@link OutgoingMessage.streams}).
   *
   * Errors: `INVALID_ARGUMENT` (bad message, data not JSON or over 128 KiB,
   * over 64 handles, a stream at its `maxReaders`), `CLOSED` (a region, a
   * notifier, a stream or the connection is closed),
   * `ACCESS_DENIED` (a writable region that has a read-only twin),
   * `PEER_CLOSED`, a code the peer refused with, `TIMEOUT`, `ABORTED`. A
   * timed-out or aborted send may still be delivered. Without `timeoutMs` a
   * send waits at most {@link DEFAULT_SEND_TIMEOUT_MS} (30 s).
   */
  send(message: OutgoingMessage, options?: WaitOptions): ResultAsync<void, MemportError> {
    const wait = readWaitOptions(options, 'send');
    if (wait.isErr()) return errAsync(wait.error);
    const encoded = encodeMessage(message);
    if (encoded.isErr()) return errAsync(encoded.error);
    if (this.#closedError) return errAsync(this.#closedError);
    const timeoutMs = wait.value.timeoutMs ?? defaultSendTimeout();
    const waiter = new Waiter<void>(
      `send (waiting for process ${this.#peer.pid} to take the message: it reads its connection only while its event loop runs, ` +
        `and takes at most ${MESSAGE_WINDOW} messages its application has not received)`,
      { ...wait.value, timeoutMs },
    );
    const start = (): void => {
      if (waiter.settled) return;
      if (this.#closedError) {
        waiter.settle(err(this.#closedError));
        return;
      }
      const { natives, notifiers, streams, bytes } = encoded.value;
      // Readers are made as the frame goes out, so a queue reader starts
      // with the records published from now on.
      const made = this.#makePeerReaders(streams);
      if (made.isErr()) {
        waiter.settle(err(made.error));
        this.#wakeWindow();
        return;
      }
      readers = made.value;
      const seq = this.#takeSeq();
      const writeId = this.#nextWriteId++;
      const written = Result.fromThrowable(
        () =>
          this.#native.write(
            writeId,
            FrameType.Message,
            seq,
            [...natives, ...readers.flatMap((r) => r.regions.map((region) => nativeOf(region)!))],
            bytes,
            notifiers.length || readers.length ? [...notifiers, ...readers.flatMap((r) => r.notifiers.map((n) => n._native()!))] : undefined,
            readers.length || undefined,
          ),
        toMemportError,
      )();
      if (written.isErr()) {
        waiter.settle(err(written.error));
        this.#wakeWindow();
        return;
      }
      this.#unacked.set(seq, { waiter, writeId });
      if (!written.value) this.#writes.set(writeId, seq); // completion still to come
    };
    let readers: PeerReaderParts[] = [];
    const settled = waiter.toResultAsync();
    if (encoded.value.streams.length > 0) {
      // Before the caller's continuation runs: the sender's copies closed, and
      // each reader served while the connection lives, or dropped at once.
      void settled.then((result) => this.#settleStreams(encoded.value.streams, readers, result.isOk()));
    }
    if (this.#unacked.size < MESSAGE_WINDOW && this.#windowWaiters.length === 0) start();
    else this.#windowWaiters.push(start);
    return settled;
  }

  /** A reader of each writer for the peer, or the first error (the readers made so far dropped). */
  #makePeerReaders(writers: StreamWriter[]): Result<PeerReaderParts[], MemportError> {
    const readers: PeerReaderParts[] = [];
    for (const [i, writer] of writers.entries()) {
      const made = writer._addPeerReader();
      if (made.isErr()) {
        this.#settleStreams(writers, readers, false);
        return err(memportError(made.error.code, `streams[${i}]: ${made.error.message}`));
      }
      readers.push(made.value);
    }
    return ok(readers);
  }

  /** After a send with streams settled: serve its readers while the connection lives, or drop them. */
  #settleStreams(writers: StreamWriter[], readers: PeerReaderParts[], delivered: boolean): void {
    if (readers.length === 0) return;
    this.#streamsOut = this.#streamsOut.filter(({ writer, id }) => writer._hasReader(id));
    for (const [i, reader] of readers.entries()) {
      reader.release();
      const writer = writers[i]!;
      if (delivered && !this.#closedError) this.#streamsOut.push({ writer, id: reader.id });
      else writer.dropReader(reader.id);
    }
  }

  /**
   * The next message, in order. Resolves as soon as one is available; the
   * returned regions are owned by the caller (close them when done).
   * Errors: `PEER_CLOSED` once the peer is gone and every message it sent
   * was received, `CLOSED`, `TIMEOUT`, `ABORTED`; or, for one message whose
   * regions could not be mapped here (e.g. `OUT_OF_MEMORY`: no address
   * space), that error; the message is dropped and the next call goes on.
   */
  receive<T = unknown>(options?: WaitOptions): ResultAsync<Message<T>, MemportError> {
    const wait = readWaitOptions(options, 'receive');
    if (wait.isErr()) return errAsync(wait.error);
    const next = this.#shift();
    if (next) return new ResultAsync(Promise.resolve(this.#take(next) as Result<Message<T>, MemportError>));
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
    this.#acked = 0;
  }

  /**
   * Lets the process exit while this connection is open and nothing else
   * keeps it alive, as `net.Socket#unref` does. Pending operations still
   * settle if the process runs on. Returns the connection.
   */
  unref(): this {
    this.#ref = false;
    if (!this.#closedError) this.#native.setRef(false);
    return this;
  }

  /** Undoes {@link Connection.unref}: an open connection keeps the process alive (the default). */
  ref(): this {
    this.#ref = true;
    if (!this.#closedError) this.#native.setRef(true);
    return this;
  }

  /** Closes the connection (`using conn = …`); same as {@link Connection.close}. */
  [dispose](): void {
    this.close();
  }

  /** @internal util.inspect: the peer and the state, never message contents. */
  [inspect.custom](_depth: number, options: { stylize: (text: string, style: string) => string }): string {
    const state = this.#closedError ? `closed (${this.#closedError.code})` : this.#welcome && !this.#welcome.settled ? 'connecting' : 'open';
    const peer = [`pid ${this.#peer.pid}`, this.#peer.uid !== undefined ? `uid ${this.#peer.uid}` : ''].filter(Boolean).join(', ');
    const fields = [
      `${this.#role === 'client' ? 'to' : 'from'} ${peer}`,
      state,
      `${this.#inbox.length} unreceived`,
      `${this.#unacked.size + this.#windowWaiters.length} sending`,
      ...(this.#ref ? [] : ['unref']),
    ];
    return `${options.stylize('Connection', 'special')} { ${fields.join(', ')} }`;
  }

  // --- internals -------------------------------------------------------------

  #takeSeq(): number {
    const seq = this.#nextSeq;
    this.#nextSeq = seq >= 0xffffffff ? 1 : seq + 1;
    return seq;
  }

  #writeControl(type: FrameType, seq: number, body?: Uint8Array): void {
    if (this.#closedError) return;
    try {
      this.#native.write(UNREPORTED_WRITE, type, seq, [], body);
    } catch {
      // The connection is going away; onClosed reports it.
    }
  }

  /** Acknowledges waiting messages in order while fewer than MESSAGE_WINDOW acknowledged ones are unreceived. */
  #acknowledgeArrived(): void {
    while (this.#acked < MESSAGE_WINDOW && this.#acked < this.#inbox.length && !this.#closedError) {
      this.#writeControl(FrameType.Ack, this.#inbox[this.#acked]!.seq);
      this.#acked++;
    }
  }

  /** The oldest unreceived message, out of the inbox; room is made for the next acknowledgement. */
  #shift(): Arrived | undefined {
    const next = this.#inbox.shift();
    if (!next) return undefined;
    if (this.#acked > 0) this.#acked--;
    this.#acknowledgeArrived();
    return next;
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

  /**
   * A MESSAGE arrived, its handles validated into this process's inbox (or
   * refused for a bound: NACK). It is acknowledged now if the window allows
   * (so the sender's send() resolves without waiting for our receive()),
   * else when the application receives an earlier one.
   */
  #onMessage(seq: number, held: NativeInbound | undefined, refusal: Error | undefined): void {
    if (this.#role === 'client' && this.#welcome && !this.#welcome.settled) {
      if (held) this.#release(held);
      return this.#violation('MESSAGE before WELCOME');
    }
    if (refusal || !held) {
      // Over a bound (limits): its handles were released unmapped. Tell the sender why.
      this.#writeControl(FrameType.Nack, seq, encodeNack(refusal ?? new Error('no message')));
      return;
    }
    if (this.#inbox.length - this.#acked >= MESSAGE_WINDOW) {
      // The sender may have at most MESSAGE_WINDOW unacknowledged messages.
      this.#release(held);
      return this.#violation(`more than ${MESSAGE_WINDOW} unacknowledged messages`);
    }
    this.#inbox.push({ seq, held });
    this.#acknowledgeArrived();
    const receiver = Waiter.takeLive(this.#receivers);
    if (!receiver) return;
    receiver.settle(this.#take(this.#shift()!));
  }

  /**
   * The application receives a message: its regions are mapped and its data
   * parsed now, never on arrival (so nobody's unreceived messages take
   * address space or heap). Err: a region could not be mapped here (the
   * message is dropped: it was acknowledged, so its sender is not told), or
   * the data was not JSON (the peer is dropped).
   */
  #take({ held }: Arrived): Result<Message, MemportError> {
    let natives: NativeRegion[];
    let bytes: Uint8Array | undefined;
    let notifiers: NativeNotifier[];
    let streamCount: number;
    try {
      [natives, bytes, notifiers, streamCount] = this.#native.takeMessage(held);
    } catch (e) {
      const error = toMemportError(e);
      return err(memportError(error.code, `a message from process ${this.#peer.pid} arrived but could not be mapped here, and was dropped: ${error.message}`));
    }
    const regions = natives.map((n) => SharedRegion._fromNative(n));
    const wakers = notifiers.map((n) => Notifier._fromNative(n));
    const data = decodeData(bytes);
    if (data.isErr()) {
      for (const part of [...regions, ...wakers]) part.close();
      this.#violation(data.error);
      return err(this.#closedError!);
    }
    // The frame's last 2k regions and notifiers are its k stream readers' (native/core/frame.h).
    const firstRegion = regions.length - 2 * streamCount;
    const firstNotifier = wakers.length - 2 * streamCount;
    const streams: StreamReader[] = [];
    for (let i = 0; i < streamCount; i++) {
      const r = firstRegion + 2 * i;
      const n = firstNotifier + 2 * i;
      const opened = Stream._openReceived(regions[r]!, regions[r + 1]!, wakers[n]!, wakers[n + 1]!);
      if (opened.isErr()) {
        // The sender's stream is not one (a bad header): it broke the protocol.
        for (const reader of streams) reader.close();
        for (const part of [...regions.slice(0, firstRegion), ...regions.slice(r + 2), ...wakers.slice(0, firstNotifier), ...wakers.slice(n + 2)]) part.close();
        this.#violation(`stream ${i} of a message: ${opened.error.message}`);
        return err(this.#closedError!);
      }
      streams.push(opened.value);
    }
    for (const reader of streams) this.#adoptStream(reader);
    return ok({ regions: regions.slice(0, firstRegion), notifiers: wakers.slice(0, firstNotifier), streams, data: data.value });
  }

  /** Ties a received reader to this connection: it ends when the connection does. */
  #adoptStream(reader: StreamReader): void {
    if (this.#closedError) {
      this.#endStream(reader, this.#closedError);
      return;
    }
    // Readers moved to workers whose worker side has closed since are let go.
    for (const earlier of this.#streamsIn) if (earlier._finished()) this.#streamsIn.delete(earlier);
    this.#streamsIn.add(reader);
    reader._setOnClose(() => this.#streamsIn.delete(reader));
  }

  #endStream(reader: StreamReader, why: MemportError): void {
    if (why.code === 'CLOSED') reader._connectionClosedHere();
    else reader._writerGone();
  }

  #release(held: NativeInbound): void {
    try {
      this.#native.releaseMessage(held);
    } catch {
      // not a held message: nothing to release
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
    // Streams carried by the connection end with it (docs/PROTOCOL.md section 6).
    for (const { writer, id } of this.#streamsOut.splice(0)) writer.dropReader(id);
    for (const reader of [...this.#streamsIn]) this.#endStream(reader, error);
    this.#streamsIn.clear();
    this.#welcome?.settle(err(error));
    for (const { waiter } of this.#unacked.values()) waiter.settle(err(error));
    this.#unacked.clear();
    for (const start of this.#windowWaiters.splice(0)) start();
    for (const receiver of this.#receivers.splice(0)) receiver.settle(err(error));
  }
}
