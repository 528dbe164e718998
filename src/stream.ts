/**
 * Streams: a ring of fixed-size record slots in one shared region, written by
 * one writer and read by several readers, each at its own position, with no
 * system call per record while both sides are busy. The layout and the
 * protocol are in docs/PROTOCOL.md, "Streams"; the words it shares are in
 * src/stream/layout.ts.
 *
 * Readers reach other processes in messages (`conn.send({ streams: [writer] })`,
 * received as `message.streams`), woken by {@link Notifier}s; in this process
 * or a worker thread they are made with {@link StreamWriter.addReader} and
 * opened with {@link Stream.openReader} (through
 * {@link Stream.readerBundleForWorker} for a worker), woken by
 * {@link ThreadWaker}s.
 */
import { err, ok, okAsync, Result, ResultAsync } from 'neverthrow';
import { memportError, toMemportError, type MemportError } from './errors.js';
import { loadNative } from './native/load.js';
import { describe, isCount, isUint8Array, readOptions, readWaitOptions, typedArrayLength } from './options.js';
import { Notifier, type NotifierToken } from './notifier.js';
import { SharedRegion, type RegionToken } from './region.js';
import * as L from './stream/layout.js';
import { ThreadWaker, waitEither, type Waker } from './stream/waker.js';
import type { WaitOptions } from './waiter.js';
import type { ForWorkerOptions } from './worker-token.js';

export type { Waker } from './stream/waker.js';
export { ThreadWaker } from './stream/waker.js';

/** Options for {@link Stream.create}. */
export interface StreamOptions {
  /**
   * `'queue'`: every record reaches every reader, in order; the writer waits
   * for the slowest reader rather than overwrite what it has not released.
   * `'latest'`: the writer never waits; each reader gets the newest record it
   * has not seen (live video), and a record a reader holds is never overwritten.
   */
  mode: 'queue' | 'latest';
  /** Largest record, in bytes (1 to 2^31). */
  recordBytes: number;
  /** Number of slots (queue: 1 to 2^20; latest: at least `maxReaders + 2`). */
  records: number;
  /**
   * Most readers at once (1 to 1024). Default: 64 in queue mode, `records - 2`
   * in latest mode (each latest reader may hold one slot; the writer needs the
   * newest record and one slot to write).
   */
  maxReaders?: number;
  /** A label for diagnostics. */
  label?: string;
}

/** A slot the writer acquired: fill `bytes` (exactly `recordBytes` long), then publish it. */
export interface Slot {
  /** The slot's memory, writable, `recordBytes` long. */
  readonly bytes: Uint8Array;
  /** The sequence number the record will have. */
  readonly seq: number;
}

/** A record a reader received. */
export interface StreamRecord {
  /**
   * Exactly the published bytes, no copy, over the reader's read-only mapping.
   * Valid until `release()`: after that the writer may reuse the slot. Do not
   * write to it (the write stays private to this process and hides the
   * writer's later records in that page from this reader).
   */
  readonly bytes: Uint8Array;
  /** The record's sequence number: 0 for the stream's first, counting every record published. */
  readonly seq: number;
  /** Gives the slot back to the writer. Idempotent. */
  release(): void;
}

/**
 * What a reader is made of (internal: {@link StreamWriter.addReader} makes
 * it, {@link Stream.openReader} takes ownership of it).
 */
export interface ReaderBundle {
  /** Which reader of its writer this is. */
  readonly id: number;
  /** The data region's read-only twin. */
  readonly data: SharedRegion;
  /** This reader's control region (writable by both sides). */
  readonly control: SharedRegion;
  /** The reader waits on it; the writer notifies it. */
  readonly wake: Waker;
  /** The writer waits on it; the reader notifies it. */
  readonly wakeWriter: Waker;
}

/** A {@link ReaderBundle} to `postMessage` to a worker thread (see {@link Stream.readerBundleForWorker}). */
export interface WorkerReaderBundle {
  /** Marks a stream reader bundle. */
  readonly memport: 'stream-reader';
  /** {@link ReaderBundle.id}. */
  readonly id: number;
  /** The data region's read-only twin, as a worker token. */
  readonly data: RegionToken;
  /** The control region, as a worker token. */
  readonly control: RegionToken;
  /** The reader's wake-up: a {@link ThreadWaker}'s buffer, or a {@link Notifier}'s token. */
  readonly wake: SharedArrayBuffer | NotifierToken;
  /** The writer's wake-up, likewise. */
  readonly wakeWriter: SharedArrayBuffer | NotifierToken;
}

/** Options for {@link StreamReader.next} and {@link StreamWriter.acquire}. */
export type StreamWaitOptions = WaitOptions;

const dispose: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');
const inspect = Symbol.for('nodejs.util.inspect.custom');
const TWO32 = 2 ** 32;
/** Claims a latest-mode reader tries in one go before letting the event loop run. */
const CLAIMS_PER_TURN = 64;
/** Turns of {@link CLAIMS_PER_TURN} failed claims after which a latest reader gives up with PROTOCOL. */
const MAX_CONTENDED_TURNS = 1000;
/** What a latest claim returns when it should be tried again after the event loop ran. */
const CONTENDED = Symbol('contended');
/** What taking a slot returns when a queue stream is full (the caller decides whether that is an error). */
const FULL = Symbol('full');

/** Why a reader ends when the connection it came on was closed in its own process. */
function closedHere(): MemportError {
  return memportError(
    'CLOSED',
    'the connection this stream reader came on was closed in this process, which ends the reader: a reader lives as long as its connection (keep the connection open while reading, and close it after the reader)',
  ) as MemportError;
}

function protocol(message: string): MemportError {
  return memportError('PROTOCOL', `stream: ${message}`) as MemportError;
}

/** Milliseconds left of a wait that began with `options`, as options for the next wait. */
function remaining(options: WaitOptions, deadline: number | undefined): WaitOptions {
  if (deadline === undefined) return options;
  return { signal: options.signal, timeoutMs: Math.max(0, deadline - performance.now()) };
}

function deadlineOf(options: WaitOptions): number | undefined {
  return options.timeoutMs === undefined ? undefined : performance.now() + options.timeoutMs;
}

/**
 * @internal A reader made for another process, as a connection sends it:
 * the data region's read-only twin and a second handle to the control region
 * (the sender's copies, closed with `release()` once the message settled),
 * the reader's wake-up and the writer's, which the writer keeps.
 */
export interface PeerReaderParts {
  readonly id: number;
  readonly regions: readonly [SharedRegion, SharedRegion];
  readonly notifiers: readonly [Notifier, Notifier];
  /** Closes the sender's copies of the regions (the writer keeps its own). */
  release(): void;
}

/** The writer's view of one reader. */
interface ReaderSide {
  readonly id: number;
  readonly control: SharedRegion;
  /** The reader's control region, as 32-bit words. */
  readonly c: Uint32Array;
  readonly wake: Waker;
  /** The writer owns `wake` (a Notifier made for a reader in another process) and closes it with the reader. */
  readonly ownsWake: boolean;
  /** Queue: the reader's position (first record not released), as last validated. */
  pos: number;
  /** Latest: slots this reader was seen holding during the current acquire. */
  blocked: number;
}

let dataRegionOf: (writer: StreamWriter) => SharedRegion | undefined;

/** @internal Whether `value` is a genuine StreamWriter (a brand check that runs none of its code). */
export let isStreamWriter: (value: unknown) => value is StreamWriter;

/**
 * The writing end of a stream. Made by {@link Stream.create}.
 *
 * ```ts
 * const writer = Stream.create({ mode: 'queue', recordBytes: 64, records: 8 })._unsafeUnwrap();
 * const slot = (await writer.acquire())._unsafeUnwrap();
 * slot.bytes.set([1, 2, 3]);
 * writer.publish(slot, 3);
 * ```
 */
export class StreamWriter implements Disposable {
  readonly #data: SharedRegion;
  readonly #bytes: Uint8Array;
  readonly #words: Uint32Array;
  readonly #g: L.Geometry;
  readonly #latest: boolean;
  readonly #label: string | undefined;
  readonly #wakeWriter: Waker;
  /** The writer's wake-up for readers in other processes, made with the first of them. */
  #wakeWriterNotifier: Notifier | undefined;
  readonly #slots: Uint8Array[] = [];
  #readers: ReaderSide[] = [];
  #nextId = 1;
  /** Records published (the next record's sequence number). */
  #writePos = 0;
  /** Queue: the slowest reader's position, as last scanned. */
  #minPos = 0;
  /** Latest: the slot of the newest record, -1 before the first. */
  #latestSlot = -1;
  #cursor = 0;
  #acquired: { bytes: Uint8Array; seq: number; slot: number } | undefined;
  #acquiring = false;
  #closed = false;

  static {
    dataRegionOf = (writer) => (#data in writer ? writer.#data : undefined);
    isStreamWriter = (value): value is StreamWriter => typeof value === 'object' && value !== null && #data in value;
  }

  /** @internal Made by {@link Stream.create}. */
  static _make(data: SharedRegion, g: L.Geometry, wakeWriter: Waker, label: string | undefined): StreamWriter {
    return new StreamWriter(data, g, wakeWriter, label);
  }

  private constructor(data: SharedRegion, g: L.Geometry, wakeWriter: Waker, label: string | undefined) {
    this.#data = data;
    this.#bytes = data.bytes;
    this.#words = new Uint32Array(this.#bytes.buffer, this.#bytes.byteOffset, g.dataOffset / 4);
    this.#g = g;
    this.#latest = g.mode === L.MODE_LATEST;
    this.#label = label;
    this.#wakeWriter = wakeWriter;
    for (let i = 0; i < g.records; i++) this.#slots.push(this.#bytes.subarray(g.dataOffset + i * g.stride, g.dataOffset + i * g.stride + g.recordBytes));
  }

  /** `'queue'` or `'latest'`. */
  get mode(): 'queue' | 'latest' {
    return this.#latest ? 'latest' : 'queue';
  }

  /** Largest record, in bytes. */
  get recordBytes(): number {
    return this.#g.recordBytes;
  }

  /** Number of slots. */
  get records(): number {
    return this.#g.records;
  }

  /** Records published so far. */
  get published(): number {
    return this.#writePos;
  }

  /** Readers attached and not known to have closed. */
  get readers(): number {
    return this.#readers.length;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * A reader for this process or a worker thread, as a bundle of its parts:
   * open it with {@link Stream.openReader}, here or in a worker
   * ({@link Stream.readerBundleForWorker}). For another process, send the
   * writer instead (`conn.send({ streams: [writer] })`). A queue reader
   * starts with the next record published; a latest reader with the newest
   * one. Errors: `CLOSED`, `INVALID_ARGUMENT` (already `maxReaders`
   * readers), `OS`/`OUT_OF_MEMORY` from the OS.
   */
  addReader(): Result<ReaderBundle, MemportError> {
    // In this process (or a worker) a ThreadWaker wakes the reader: no system call.
    const wake = new ThreadWaker();
    const made = this.#checkRoom().andThen(() => this.#attach(wake, false));
    if (made.isErr()) return err(made.error);
    return ok({ id: made.value.id, data: made.value.data, control: made.value.control, wake, wakeWriter: this.#wakeWriter });
  }

  /**
   * @internal A reader for another process (a connection sends its parts):
   * woken by a new Notifier, and waking the writer through the writer's
   * Notifier. The reader counts from now: a queue reader starts with the next
   * record published. Errors as {@link StreamWriter.addReader}.
   */
  _addPeerReader(): Result<PeerReaderParts, MemportError> {
    const room = this.#checkRoom();
    if (room.isErr()) return err(room.error);
    if (this.#wakeWriterNotifier === undefined) {
      const made = Notifier.create();
      if (made.isErr()) return err(made.error);
      this.#wakeWriterNotifier = made.value;
    }
    const wake = Notifier.create();
    if (wake.isErr()) return err(wake.error);
    const made = this.#attach(wake.value, true);
    if (made.isErr()) {
      wake.value.close();
      return err(made.error);
    }
    const { id, data, control } = made.value;
    return ok({
      id,
      regions: [data, control],
      notifiers: [wake.value, this.#wakeWriterNotifier],
      release: () => {
        data.close();
        control.close();
      },
    });
  }

  /** @internal Whether reader `id` is still attached. */
  _hasReader(id: number): boolean {
    return this.#readers.some((r) => r.id === id);
  }

  #checkRoom(): Result<void, MemportError> {
    if (this.#closed) return err(memportError('CLOSED', 'the stream writer is closed'));
    if (this.#readers.length >= this.#g.maxReaders) this.#sweep();
    if (this.#readers.length >= this.#g.maxReaders) {
      return err(memportError('INVALID_ARGUMENT', `the stream already has its maxReaders (${this.#g.maxReaders}) readers; create it with a larger maxReaders, or close readers first`));
    }
    return ok(undefined);
  }

  /** Makes a reader's control region and the data's read-only twin, and starts serving it. */
  #attach(wake: Waker, ownsWake: boolean): Result<{ id: number; data: SharedRegion; control: SharedRegion }, MemportError> {
    const control = SharedRegion.create(L.CONTROL_BYTES, { label: `${this.#label ?? 'stream'} reader` });
    if (control.isErr()) return err(control.error);
    const twin = this.#data.toReadOnly();
    const forReader = twin.andThen(() => control.value.forWorker()).andThen((token) => SharedRegion.fromWorkerToken(token));
    if (forReader.isErr() || twin.isErr()) {
      control.value.close();
      if (twin.isOk()) twin.value.close();
      return err(twin.isErr() ? twin.error : (forReader as { error: MemportError }).error);
    }
    // A latest reader may take the newest record at once.
    const start = this.#latest && this.#writePos > 0 ? this.#writePos - 1 : this.#writePos;
    const c = L.words(control.value.bytes, L.CONTROL_BYTES);
    c[L.C_VERSION / 4] = L.STREAM_VERSION;
    c[L.C_START_LO / 4] = start >>> 0;
    c[L.C_START_HI / 4] = Math.floor(start / TWO32);
    c[L.C_READ_POS / 4] = start >>> 0;
    Atomics.store(c, L.C_MAGIC / 4, L.CONTROL_MAGIC);
    const id = this.#nextId++;
    this.#readers.push({ id, control: control.value, c, wake, ownsWake, pos: start, blocked: -1 });
    if (!this.#latest) this.#minPos = Math.min(this.#minPos, start);
    return ok({ id, data: twin.value, control: forReader.value });
  }

  /**
   * Stops serving reader `id` (its connection went away, say): its position
   * no longer holds the writer back, its held slot is free, and its `next()`
   * ends with `PEER_CLOSED`. False if there is no such reader (any more).
   */
  dropReader(id: number): boolean {
    const i = this.#readers.findIndex((r) => r.id === id);
    if (i < 0) return false;
    this.#detach(i);
    this.#wakeWriter.notify(); // a waiting acquire looks again: the reader may have held it back
    return true;
  }

  /**
   * A free slot to fill, without waiting. Errors: `TIMEOUT` when the stream is
   * full (queue: the slowest reader has not released the slot; never in
   * latest mode), `CLOSED`, `INVALID_ARGUMENT` when a slot acquired before
   * was not published yet.
   */
  tryAcquire(): Result<Slot, MemportError> {
    const taken = this.#tryTake();
    return taken === FULL ? err(this.#full()) : taken;
  }

  /** tryAcquire() without building the TIMEOUT error (its stack capture costs more than a record). */
  #tryTake(): Result<Slot, MemportError> | typeof FULL {
    if (this.#closed) return err(memportError('CLOSED', 'the stream writer is closed'));
    if (this.#acquired !== undefined) return err(memportError('INVALID_ARGUMENT', 'publish the slot acquired before acquiring another'));
    return this.#take();
  }

  /** The TIMEOUT of a full queue stream, naming the reader that holds it back. */
  #full(): MemportError {
    const slowest = this.#readers.find((r) => r.pos === this.#minPos);
    return memportError('TIMEOUT', `the stream is full: reader ${slowest?.id ?? '?'} (the slowest) has not released the oldest slot; wait longer, or stop serving it with writer.dropReader(${slowest?.id ?? 'id'}) (a reader in another process is also dropped when its connection closes)`) as MemportError;
  }

  /**
   * A free slot to fill, waiting (queue mode) until the slowest reader has
   * released one. Errors: `TIMEOUT`, `ABORTED`, `CLOSED`, `INVALID_ARGUMENT`
   * (options; a slot acquired and not yet published; another acquire waiting).
   */
  acquire(options?: StreamWaitOptions): ResultAsync<Slot, MemportError> {
    const read = readWaitOptions(options, 'writer.acquire');
    if (read.isErr()) return new ResultAsync(Promise.resolve(err(read.error)));
    if (this.#acquiring) return new ResultAsync(Promise.resolve(err(memportError('INVALID_ARGUMENT', 'another acquire() is waiting'))));
    const first = this.#tryTake();
    if (first !== FULL) return new ResultAsync(Promise.resolve(first));
    this.#acquiring = true;
    return new ResultAsync(this.#waitForSpace(read.value).finally(() => {
      this.#acquiring = false;
    }));
  }

  async #waitForSpace(options: WaitOptions): Promise<Result<Slot, MemportError>> {
    const deadline = deadlineOf(options);
    try {
      for (;;) {
        // Announce the sleep, then look again: a reader releasing after the
        // announcement sees it and notifies (docs/PROTOCOL.md, wake-ups).
        for (const r of this.#readers) Atomics.store(r.c, L.C_WRITER_SLEEPING / 4, 1);
        const again = this.#take();
        if (again !== FULL) {
          this.#clearWriterSleeping();
          return again;
        }
        const left = remaining(options, deadline);
        const notifier = this.#wakeWriterNotifier;
        const woke = await (notifier ? waitEither(this.#wakeWriter, notifier, left) : this.#wakeWriter.wait(left));
        if (this.#closed) return err(memportError('CLOSED', 'the stream writer was closed'));
        if (woke.isErr()) {
          this.#clearWriterSleeping();
          // Out of time: one last look, which also says which reader holds the writer back.
          if (woke.error.code !== 'TIMEOUT') return err(woke.error);
          const last = this.#take();
          return last === FULL ? err(this.#full()) : last;
        }
      }
    } catch (e) {
      return err(toMemportError(e));
    }
  }

  #clearWriterSleeping(): void {
    for (const r of this.#readers) Atomics.store(r.c, L.C_WRITER_SLEEPING / 4, 0);
  }

  /** The next slot, or TIMEOUT when full. */
  #take(): Result<Slot, MemportError> | typeof FULL {
    const g = this.#g;
    let slot: number;
    if (this.#latest) {
      const found = this.#freeLatestSlot();
      if (found === undefined) return err(protocol('every slot is held: readers claim slots they were not given'));
      slot = found;
    } else {
      if (this.#writePos - this.#minPos >= g.records) this.#scanPositions();
      if (this.#writePos - this.#minPos >= g.records) return FULL;
      slot = this.#writePos % g.records;
    }
    const taken = { bytes: this.#slots[slot]!, seq: this.#writePos, slot };
    this.#acquired = taken;
    return ok({ bytes: taken.bytes, seq: taken.seq });
  }

  /** Queue: refreshes every reader's position (validated) and the slowest one. */
  #scanPositions(): void {
    const w32 = this.#writePos >>> 0;
    let min = this.#writePos;
    for (let i = 0; i < this.#readers.length; i++) {
      const r = this.#readers[i]!;
      if ((Atomics.load(r.c, L.C_READER_STATE / 4) & L.READER_CLOSED) !== 0) {
        this.#remove(i--);
        continue;
      }
      const behind = L.diff32(w32, Atomics.load(r.c, L.C_READ_POS / 4));
      // A reader may only move forward, and never past what was written.
      if (behind > this.#writePos - r.pos || behind > this.#g.records) {
        this.#detach(i--);
        continue;
      }
      r.pos = this.#writePos - behind;
      if (r.pos < min) min = r.pos;
    }
    this.#minPos = min;
  }

  /**
   * Latest: a slot that is neither the newest record nor held by a reader.
   * The slot's length is set invalid before the holds are read, and a reader
   * re-reads it after announcing its hold, so one of the two sees the other.
   * A reader seen holding two different slots within one acquire is lying
   * (an honest reader claims only the newest record) and is detached.
   */
  #freeLatestSlot(): number | undefined {
    const g = this.#g;
    for (const r of this.#readers) r.blocked = -1;
    for (let attempt = 0; attempt < 2 * g.records; attempt++) {
      const slot = this.#cursor;
      this.#cursor = (this.#cursor + 1) % g.records;
      if (slot === this.#latestSlot) continue;
      Atomics.store(this.#words, (g.slotTable + slot * L.SLOT_ENTRY_BYTES + L.S_LENGTH) / 4, L.LENGTH_INVALID);
      let held = false;
      for (let i = 0; i < this.#readers.length; i++) {
        const r = this.#readers[i]!;
        if (Atomics.load(r.c, L.C_HOLD / 4) !== slot + 1) continue;
        if (r.blocked !== -1 && r.blocked !== slot) {
          this.#detach(i--);
          continue;
        }
        r.blocked = slot;
        held = true;
      }
      if (!held) return slot;
    }
    return undefined;
  }

  /**
   * Publishes the acquired slot's first `length` bytes as the next record.
   * Errors: `INVALID_ARGUMENT` (not the acquired slot, a bad length), `CLOSED`.
   */
  publish(slot: Slot, length: number): Result<void, MemportError> {
    if (this.#closed) return err(memportError('CLOSED', 'the stream writer is closed'));
    const taken = this.#acquired;
    if (taken === undefined || slot === null || typeof slot !== 'object' || slot.bytes !== taken.bytes) {
      return err(memportError('INVALID_ARGUMENT', 'publish takes the slot the last acquire() gave, once'));
    }
    if (!isCount(length) || length > this.#g.recordBytes) {
      return err(memportError('INVALID_ARGUMENT', `length must be a whole number from 0 to ${this.#g.recordBytes}, got ${describe(length)}`));
    }
    try {
      this.#publish(taken.slot, length);
    } catch (e) {
      return err(toMemportError(e));
    }
    return ok(undefined);
  }

  #publish(slot: number, length: number): void {
    const g = this.#g;
    const entry = g.slotTable + slot * L.SLOT_ENTRY_BYTES;
    const seq = this.#writePos;
    this.#acquired = undefined;
    this.#writePos = seq + 1;
    if (this.#latest) {
      // The slot's seq, then its length (which readers check last), then the newest-record word.
      Atomics.store(this.#words, (entry + L.S_SEQ) / 4, seq >>> 0);
      Atomics.store(this.#words, (entry + L.S_LENGTH) / 4, length);
      Atomics.store(this.#words, L.H_LATEST / 4, slot + 1);
      this.#latestSlot = slot;
      this.#words[L.H_WRITE_POS / 4] = this.#writePos >>> 0; // informational in latest mode
    } else {
      // Plain stores, ordered before the position's sequentially consistent store.
      this.#words[(entry + L.S_SEQ) / 4] = seq >>> 0;
      this.#words[(entry + L.S_LENGTH) / 4] = length;
      Atomics.store(this.#words, L.H_WRITE_POS / 4, this.#writePos >>> 0);
    }
    for (const r of this.#readers) {
      wakeIfSleeping(r.c, L.C_READER_SLEEPING, r.wake);
    }
    // Now and then, forget readers that closed (a writer that never fills up never scans).
    if (this.#writePos % g.records === 0) this.#sweep();
  }

  /** Removes readers that closed. */
  #sweep(): void {
    for (let i = 0; i < this.#readers.length; i++) {
      if ((Atomics.load(this.#readers[i]!.c, L.C_READER_STATE / 4) & L.READER_CLOSED) !== 0) this.#remove(i--);
    }
    if (!this.#latest) this.#minPos = this.#readers.reduce((m, r) => Math.min(m, r.pos), this.#writePos);
  }

  #remove(i: number): void {
    const [r] = this.#readers.splice(i, 1);
    r!.control.close();
    if (r!.ownsWake) (r!.wake as Notifier).close();
  }

  #detach(i: number): void {
    const r = this.#readers[i]!;
    Atomics.store(r.c, L.C_WRITER_STATE / 4, L.READER_DETACHED);
    r.wake.notify();
    this.#remove(i);
    if (!this.#latest) this.#minPos = this.#readers.reduce((m, x) => Math.min(m, x.pos), this.#writePos);
  }

  /**
   * Copies `bytes` into the next slot and publishes it, waiting for room as
   * {@link StreamWriter.acquire} does. Errors: those of `acquire`, and
   * `INVALID_ARGUMENT` for bytes that are not a Uint8Array or longer than `recordBytes`.
   */
  write(bytes: Uint8Array, options?: StreamWaitOptions): ResultAsync<void, MemportError> {
    const bad = this.#checkBytes(bytes);
    if (bad) return new ResultAsync(Promise.resolve(err(bad)));
    const read = readWaitOptions(options, 'writer.write');
    if (read.isErr()) return new ResultAsync(Promise.resolve(err(read.error)));
    // Room now (the busy case): one settled promise, no acquire() chain.
    if (!this.#acquiring) {
      const now = this.#tryTake();
      if (now !== FULL) return new ResultAsync(Promise.resolve(now.andThen((slot) => this.#fill(slot, bytes))));
    }
    return this.acquire(options).andThen((slot) => this.#fill(slot, bytes));
  }

  /** {@link StreamWriter.write} without waiting: `TIMEOUT` when full. */
  tryWrite(bytes: Uint8Array): Result<void, MemportError> {
    const bad = this.#checkBytes(bytes);
    if (bad) return err(bad);
    return this.tryAcquire().andThen((slot) => this.#fill(slot, bytes));
  }

  #checkBytes(bytes: unknown): MemportError | undefined {
    if (!isUint8Array(bytes)) return memportError('INVALID_ARGUMENT', `bytes must be a Uint8Array, got ${describe(bytes)}`) as MemportError;
    const n = typedArrayLength(bytes);
    if (n > this.#g.recordBytes) return memportError('INVALID_ARGUMENT', `${n} bytes do not fit a record of ${this.#g.recordBytes}`) as MemportError;
    return undefined;
  }

  #fill(slot: Slot, bytes: Uint8Array): Result<void, MemportError> {
    slot.bytes.set(bytes);
    return this.publish(slot, typedArrayLength(bytes));
  }

  /**
   * Ends the stream: readers get the records already published, then
   * `PEER_CLOSED`. A slot acquired and not published is dropped; a waiting
   * acquire ends with `CLOSED`. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#acquired = undefined;
    try {
      Atomics.store(this.#words, L.H_STATE / 4, L.STATE_CLOSED);
      for (const r of this.#readers) {
        wakeIfSleeping(r.c, L.C_READER_SLEEPING, r.wake);
      }
    } catch {
      // A region closed under us: nothing left to tell.
    }
    for (const r of this.#readers) {
      r.control.close();
      if (r.ownsWake) (r.wake as Notifier).close();
    }
    this.#readers = [];
    this.#wakeWriter.notify(); // a waiting acquire sees the close
    this.#wakeWriterNotifier?.close();
    this.#data.close();
  }

  /** Same as {@link StreamWriter.close}. */
  [dispose](): void {
    this.close();
  }

  /** What `util.inspect` shows: mode, geometry, records published, readers. */
  [inspect](): string {
    return `StreamWriter { ${this.#label ? `label: ${JSON.stringify(this.#label)}, ` : ''}mode: ${this.mode}, recordBytes: ${this.#g.recordBytes}, records: ${this.#g.records}, published: ${this.#writePos}, readers: ${this.#readers.length}${this.#closed ? ', closed' : ''} }`;
  }
}

/** @internal The writer's writable data region (tests write garbage through it). */
export function _streamDataRegion(writer: StreamWriter): SharedRegion | undefined {
  return typeof writer === 'object' && writer !== null ? dataRegionOf(writer) : undefined;
}

/**
 * The reading end of a stream, made from a {@link ReaderBundle} by
 * {@link Stream.openReader}. Everything it reads from shared memory is
 * validated: a writer that breaks the protocol ends it with `PROTOCOL`.
 *
 * ```ts
 * for await (const record of reader) handle(record.bytes); // released as the loop moves on
 * ```
 */
export class StreamReader implements Disposable, AsyncIterable<StreamRecord> {
  readonly #bundle: ReaderBundle;
  readonly #bytes: Uint8Array;
  readonly #words: Uint32Array;
  /** This reader's control region, as 32-bit words. */
  readonly #c: Uint32Array;
  readonly #g: L.Geometry;
  readonly #latest: boolean;
  /** Queue: next record to hand out; latest: newest seen + 1. */
  #next: number;
  /** Queue: first record not released (what the control region says). */
  #released: number;
  /** Queue: records released out of order, above #released. */
  readonly #releasedAbove = new Set<number>();
  /** Queue: records known to be written (from the last load of the position). */
  #known: number;
  /** Latest: the record held (its hold is in the control region). */
  #held: Record | undefined;
  #reading = false;
  /** Latest: turns in a row in which every claim failed. */
  #contendedTurns = 0;
  #failure: MemportError | undefined;
  /** Set when the connection this reader came on was closed in this process: why next() fails. */
  #cut: MemportError | undefined;
  /** Called once when the reader closes (its connection stops tracking it). */
  #onClose: (() => void) | undefined;
  /**
   * Moved to a worker while tied to a connection: what this thread keeps to
   * pass on what the connection says (the control region's lifeline word and
   * the reader's wake-up), until the connection ends or the worker's reader closes.
   */
  #moved: { control: SharedRegion; wake: Waker } | undefined;
  #closed = false;

  /** @internal Made by {@link Stream.openReader}. */
  static _make(bundle: ReaderBundle, g: L.Geometry, start: number): StreamReader {
    return new StreamReader(bundle, g, start);
  }

  private constructor(bundle: ReaderBundle, g: L.Geometry, start: number) {
    this.#bundle = bundle;
    this.#bytes = bundle.data.bytes;
    this.#words = new Uint32Array(this.#bytes.buffer, this.#bytes.byteOffset, g.dataOffset / 4);
    this.#c = L.words(bundle.control.bytes, L.CONTROL_BYTES);
    this.#g = g;
    this.#latest = g.mode === L.MODE_LATEST;
    this.#next = start;
    this.#released = start;
    this.#known = start;
  }

  /** `'queue'` or `'latest'`. */
  get mode(): 'queue' | 'latest' {
    return this.#latest ? 'latest' : 'queue';
  }

  /** Largest record, in bytes. */
  get recordBytes(): number {
    return this.#g.recordBytes;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The next record: queue, the one after the last handed out; latest, the
   * newest this reader has not seen (a latest reader holds one record at a
   * time: the one before is released). Errors: `PEER_CLOSED` (the writer
   * closed and every record was read, or it dropped this reader), `TIMEOUT`,
   * `ABORTED`, `CLOSED`, `PROTOCOL` (the writer broke the protocol; every
   * later call says so too), `INVALID_ARGUMENT` (options; another next() waiting).
   */
  next(options?: StreamWaitOptions): ResultAsync<StreamRecord, MemportError> {
    const read = readWaitOptions(options, 'reader.next');
    if (read.isErr()) return new ResultAsync(Promise.resolve(err(read.error)));
    if (this.#reading) return new ResultAsync(Promise.resolve(err(memportError('INVALID_ARGUMENT', 'another next() is waiting'))));
    const now = this.#tryNext();
    if (now !== undefined && now !== CONTENDED) return now.isOk() ? okAsync(now.value) : new ResultAsync(Promise.resolve(now));
    this.#reading = true;
    return new ResultAsync(this.#waitForRecord(read.value).finally(() => {
      this.#reading = false;
    }));
  }

  /** A record if one is ready, an Err, or undefined to wait. */
  #tryNext(): Result<StreamRecord, MemportError> | undefined | typeof CONTENDED {
    if (this.#cut) return err(this.#cut);
    if (this.#closed) return err(memportError('CLOSED', 'the stream reader is closed'));
    if (this.#failure) return err(this.#failure);
    try {
      return this.#latest ? this.#claimLatest() : this.#takeQueued();
    } catch (e) {
      return err(toMemportError(e));
    }
  }

  /** Fails the reader for good with PROTOCOL. */
  #fail(message: string): Result<never, MemportError> {
    this.#failure = protocol(message);
    return err(this.#failure);
  }

  #takeQueued(): Result<StreamRecord, MemportError> | undefined {
    const g = this.#g;
    // Dropped: the writer no longer keeps slots for this reader (the wait says so).
    if (Atomics.load(this.#c, L.C_WRITER_STATE / 4) !== 0) return undefined;
    if (this.#next >= this.#known) {
      const w32 = Atomics.load(this.#words, L.H_WRITE_POS / 4);
      const ahead = L.diff32(w32, this.#released >>> 0);
      if (ahead > g.records) return this.#fail(`the write position is ${ahead} records past this reader's, more than the ${g.records} slots`);
      const known = this.#released + ahead;
      if (known < this.#next) return this.#fail('the write position went back past records already read');
      this.#known = known;
      if (this.#next >= known) return undefined;
    }
    const seq = this.#next;
    const slot = seq % g.records;
    const entry = (g.slotTable + slot * L.SLOT_ENTRY_BYTES) / 4;
    // Copied out once, then validated: the writer may change them under us.
    const seq32 = this.#words[entry + L.S_SEQ / 4]!;
    const length = this.#words[entry + L.S_LENGTH / 4]!;
    if (seq32 !== seq >>> 0) return this.#fail(`slot ${slot} holds record ${seq32}, expected ${seq >>> 0}`);
    if (length > g.recordBytes) return this.#fail(`record ${seq} is ${length} bytes long, more than the ${g.recordBytes} of a slot`);
    this.#next = seq + 1;
    const start = g.dataOffset + slot * g.stride;
    return ok(new Record(this, seq, this.#bytes.subarray(start, start + length)));
  }

  /**
   * Latest: claims the newest record if it is new. Announces the hold, then
   * re-reads the slot: unchanged means the writer will see the hold before
   * it reuses the slot (docs/PROTOCOL.md).
   */
  #claimLatest(): Result<StreamRecord, MemportError> | undefined | typeof CONTENDED {
    const g = this.#g;
    this.#releaseHeld();
    for (let attempt = 0; attempt < CLAIMS_PER_TURN; attempt++) {
      const newest = Atomics.load(this.#words, L.H_LATEST / 4);
      if (newest === 0) return undefined;
      if (newest > g.records) return this.#fail(`the newest-record word names slot ${newest - 1} of ${g.records}`);
      const slot = newest - 1;
      const entry = g.slotTable + slot * L.SLOT_ENTRY_BYTES;
      const seq32 = Atomics.load(this.#words, (entry + L.S_SEQ) / 4);
      const length = Atomics.load(this.#words, (entry + L.S_LENGTH) / 4);
      if (length === L.LENGTH_INVALID) continue; // reused since we read the newest word
      const ahead = L.diff32(seq32, (this.#next - 1) >>> 0);
      if (ahead === 0) {
        this.#contendedTurns = 0;
        return undefined; // seen it
      }
      // The newest word only moves to newer records, and a reused slot only
      // gets a newer one: an older record is a lie.
      if (ahead >= 2 ** 31) return this.#fail(`the newest record (${seq32}) is older than one already read (${(this.#next - 1) >>> 0})`);
      if (length > g.recordBytes) return this.#fail(`record ${seq32} is ${length} bytes long, more than the ${g.recordBytes} of a slot`);
      Atomics.store(this.#c, L.C_HOLD / 4, newest);
      if (Atomics.load(this.#words, (entry + L.S_LENGTH) / 4) !== length || Atomics.load(this.#words, (entry + L.S_SEQ) / 4) !== seq32) continue;
      const seq = this.#next - 1 + ahead;
      this.#next = seq + 1;
      this.#contendedTurns = 0;
      const start = g.dataOffset + slot * g.stride;
      const record = new Record(this, seq, this.#bytes.subarray(start, start + length));
      this.#held = record;
      return ok(record);
    }
    Atomics.store(this.#c, L.C_HOLD / 4, 0);
    // The writer reused the slot under every claim: let the event loop run,
    // then try again. An honest writer cannot win thousands of turns in a
    // row (a claim takes a microsecond); one that does is stalling us on purpose.
    if (++this.#contendedTurns > MAX_CONTENDED_TURNS) return this.#fail(`no record could be claimed in ${MAX_CONTENDED_TURNS * CLAIMS_PER_TURN} tries: the writer keeps the newest slot invalid`);
    return CONTENDED;
  }

  #releaseHeld(): void {
    if (this.#held === undefined) return;
    this.#held = undefined;
    Atomics.store(this.#c, L.C_HOLD / 4, 0);
  }

  async #waitForRecord(options: WaitOptions): Promise<Result<StreamRecord, MemportError>> {
    const deadline = deadlineOf(options);
    const wake = this.#bundle.wake;
    try {
      for (;;) {
        // Announces the sleep before the last look (docs/PROTOCOL.md, wake-ups).
        const now = this.#look(true);
        if (now === CONTENDED) {
          Atomics.store(this.#c, L.C_READER_SLEEPING / 4, 0);
          await new Promise((resolve) => setImmediate(resolve));
          if (this.#closed) return err(this.#cut ?? memportError('CLOSED', 'the stream reader was closed'));
          continue;
        }
        if (now !== undefined) {
          if (!this.#closed) Atomics.store(this.#c, L.C_READER_SLEEPING / 4, 0);
          return now;
        }
        const woke = await wake.wait(remaining(options, deadline));
        if (this.#closed) return err(this.#cut ?? memportError('CLOSED', 'the stream reader was closed'));
        if (woke.isErr()) {
          Atomics.store(this.#c, L.C_READER_SLEEPING / 4, 0);
          return err(woke.error);
        }
      }
    } catch (e) {
      return err(toMemportError(e));
    }
  }

  /**
   * One full look: a record, why the reader has ended, CONTENDED, or
   * undefined when nothing is ready yet. The end is read before the last
   * look for a record, so every record published before it is delivered
   * first. `announce`: store readerSleeping = 1 before that last look.
   */
  #look(announce: boolean): Result<StreamRecord, MemportError> | undefined | typeof CONTENDED {
    // What this process's side of the connection said comes first: a reader
    // whose connection was closed here ends for that reason, even if the
    // writer dropped it meanwhile.
    const line = this.#lifeline();
    if (typeof line !== 'number') {
      if (line.code === 'CLOSED') {
        this.#cut = line;
        this.close();
      } else {
        this.#failure = line;
      }
      return err(line);
    }
    if (Atomics.load(this.#c, L.C_WRITER_STATE / 4) !== 0) {
      return err(memportError('PEER_CLOSED', 'the stream writer dropped this reader: the connection it came on was closed on the writer\'s side, the writer called dropReader(), or this reader broke the protocol'));
    }
    if (announce) Atomics.store(this.#c, L.C_READER_SLEEPING / 4, 1);
    const writerGone = line === L.LIFELINE_WRITER_GONE;
    const state = Atomics.load(this.#words, L.H_STATE / 4) | (writerGone ? L.STATE_CLOSED : 0);
    const now = this.#tryNext();
    if (now !== undefined) return now;
    if ((state & L.STATE_CLOSED) === 0) return undefined;
    return err(memportError('PEER_CLOSED', writerGone && (Atomics.load(this.#words, L.H_STATE / 4) & L.STATE_CLOSED) === 0
      ? 'the connection that carried this stream closed (the writer\'s process closed it or exited), and every record published was read'
      : 'the stream writer closed, and every record it published was read'));
  }

  /**
   * The next record if one is ready, without waiting: `next()`'s synchronous
   * twin, for draining a busy stream with no promise per record. `Ok(undefined)`
   * when nothing is ready yet (an expected outcome, so no error is built):
   * then await `next()`. Errors: those of `next()` (`PEER_CLOSED` at the end).
   */
  tryNext(): Result<StreamRecord | undefined, MemportError> {
    if (this.#reading) return err(memportError('INVALID_ARGUMENT', 'another next() is waiting'));
    const now = this.#tryNext();
    if (now !== undefined && now !== CONTENDED) return now;
    try {
      const looked = this.#look(false);
      if (looked !== undefined && looked !== CONTENDED) return looked;
    } catch (e) {
      return err(toMemportError(e));
    }
    return ok(undefined);
  }


  /**
   * @internal The writer is gone without closing (the connection that carried
   * this reader ended from the writer's side: closed, or its process died).
   * The reader delivers what was published, then ends with `PEER_CLOSED`, as
   * if the writer had closed.
   */
  _writerGone(): void {
    this.#sayLifeline(L.LIFELINE_WRITER_GONE);
  }

  /** What the connection said, in the lifeline word (also for a reader moved to a worker), and a wake-up. */
  #sayLifeline(word: number): boolean {
    const target = this.#moved ?? (this.#closed ? undefined : { control: this.#bundle.control, wake: this.#bundle.wake });
    if (!target) return false;
    try {
      if (Atomics.compareExchange(L.words(target.control.bytes, L.CONTROL_BYTES), L.C_LIFELINE / 4, L.LIFELINE_OPEN, word) === L.LIFELINE_OPEN) target.wake.notify();
    } catch {
      // The control region was closed under us: nobody is left to tell.
    }
    if (this.#moved) this.#closeMoved();
    return true;
  }

  /** The lifeline word: LIFELINE_OPEN or LIFELINE_WRITER_GONE, or the error that ends the reader. */
  #lifeline(): number | MemportError {
    const word = Atomics.load(this.#c, L.C_LIFELINE / 4);
    if (word === L.LIFELINE_OPEN || word === L.LIFELINE_WRITER_GONE) return word;
    if (word === L.LIFELINE_CLOSED_HERE) return closedHere();
    return protocol(`the control region's lifeline word holds ${word}, which no memport reader writes`);
  }

  /** The stub a move to a worker left behind is no longer needed. */
  #closeMoved(): void {
    const moved = this.#moved;
    if (!moved) return;
    this.#moved = undefined;
    moved.control.close();
    if (moved.wake instanceof Notifier) moved.wake.close();
    const onClose = this.#onClose;
    this.#onClose = undefined;
    onClose?.();
  }

  /**
   * @internal Whether this reader is done with its connection: closed, or
   * moved to a worker whose reader has closed since (the stub is then closed).
   */
  _finished(): boolean {
    if (!this.#closed) return false;
    const moved = this.#moved;
    if (moved && (Atomics.load(L.words(moved.control.bytes, L.CONTROL_BYTES), L.C_READER_STATE / 4) & L.READER_CLOSED) === 0) return false;
    this.#closeMoved();
    return true;
  }

  /**
   * Moves this reader to a `worker_thread`: returns a plain object to
   * `postMessage`, which the worker opens with {@link Stream.openReader}. The
   * worker's reader goes on with the next record this one would have given;
   * records handed out here and not released are released. This reader is
   * closed here (not left: the stream keeps serving the worker's). A reader
   * that came over a connection stays tied to it: when the connection ends,
   * the worker's reader learns it as this one would have. Errors: `CLOSED`,
   * `INVALID_ARGUMENT` (a `next()` is waiting; options), and those of
   * `forWorker()` on regions and notifiers.
   */
  forWorker(options?: ForWorkerOptions): Result<WorkerReaderBundle, MemportError> {
    if (this.#closed) return err(memportError('CLOSED', 'the stream reader is closed'));
    if (this.#reading) return err(memportError('INVALID_ARGUMENT', 'reader.forWorker: a next() is waiting; move the reader when none is'));
    const parts = this.#bundle;
    const bundle = bundleForWorker(parts, options);
    if (bundle.isErr()) return err(bundle.error);
    const c = this.#c;
    // Everything handed out here is released, and the worker starts where this reader stops.
    if (this.#latest) {
      if (this.#held) this.#releaseHeld();
    } else if (this.#released < this.#next) {
      this.#releasedAbove.clear();
      this.#releaseTo(this.#next);
    }
    Atomics.store(c, L.C_START_LO / 4, this.#next >>> 0);
    Atomics.store(c, L.C_START_HI / 4, Math.floor(this.#next / TWO32));
    this.#closed = true;
    parts.data.close();
    if (parts.wakeWriter instanceof Notifier) parts.wakeWriter.close();
    if (this.#onClose) {
      this.#moved = { control: parts.control, wake: parts.wake };
    } else {
      parts.control.close();
      if (parts.wake instanceof Notifier) parts.wake.close();
    }
    return ok(bundle.value);
  }

  /**
   * @internal The connection this reader came on was closed in this process:
   * the writer drops the reader when it sees that, so the reader ends now,
   * and says why (a `for await` loop throws it rather than end quietly).
   */
  _connectionClosedHere(): void {
    if (this.#moved) {
      this.#sayLifeline(L.LIFELINE_CLOSED_HERE);
      return;
    }
    if (this.#closed) return;
    this.#cut = closedHere();
    this.close();
  }

  /** @internal `fn` runs once when the reader closes. */
  _setOnClose(fn: () => void): void {
    this.#onClose = fn;
  }

  /** @internal Record.release(). */
  _release(record: Record): void {
    if (this.#closed) return;
    if (this.#latest) {
      if (this.#held === record) this.#releaseHeld();
      return;
    }
    const seq = record.seq;
    if (seq < this.#released || seq >= this.#next) return;
    if (seq !== this.#released) {
      this.#releasedAbove.add(seq);
      return;
    }
    let to = seq + 1;
    while (this.#releasedAbove.delete(to)) to++;
    this.#releaseTo(to);
  }

  /** Queue: every record before `to` is released; the writer learns it (and is woken if it sleeps). */
  #releaseTo(to: number): void {
    this.#released = to;
    Atomics.store(this.#c, L.C_READ_POS / 4, to >>> 0);
    wakeIfSleeping(this.#c, L.C_WRITER_SLEEPING, this.#bundle.wakeWriter);
  }

  /**
   * Leaves the stream: what this reader held is free, its position no longer
   * holds the writer back, and a waiting `next()` ends with `CLOSED`. Record
   * views become zero-length. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const c = this.#c;
    try {
      Atomics.store(c, L.C_HOLD / 4, 0);
      Atomics.store(c, L.C_READER_STATE / 4, L.READER_CLOSED);
      wakeIfSleeping(c, L.C_WRITER_SLEEPING, this.#bundle.wakeWriter);
    } catch {
      // The control region was closed under us.
    }
    this.#bundle.wake.notify(); // a waiting next() sees the close
    closeParts(this.#bundle);
    const onClose = this.#onClose;
    this.#onClose = undefined;
    onClose?.();
  }

  /** Same as {@link StreamReader.close}. */
  [dispose](): void {
    this.close();
  }

  /**
   * `for await (const record of reader)`: each record is released when the
   * loop asks for the next one (or leaves). Ends when the writer closed and
   * every record was read (`PEER_CLOSED`) or the reader is closed; any other
   * failure is thrown as its MemportError.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<StreamRecord, void, undefined> {
    let last: StreamRecord | undefined;
    try {
      for (;;) {
        const r = await this.next();
        last?.release();
        if (r.isErr()) {
          // Ends quietly when the writer finished or this reader was closed;
          // anything else, including its connection closed here, is thrown.
          if (r.error.code === 'PEER_CLOSED' || (r.error.code === 'CLOSED' && this.#cut === undefined)) return;
          throw r.error;
        }
        last = r.value;
        yield last;
      }
    } finally {
      last?.release();
    }
  }

  /** What `util.inspect` shows: mode, geometry, next record. */
  [inspect](): string {
    return `StreamReader { mode: ${this.mode}, recordBytes: ${this.#g.recordBytes}, next: ${this.#next}${this.#closed ? ', closed' : ''} }`;
  }
}

class Record implements StreamRecord {
  readonly #reader: StreamReader;
  readonly seq: number;
  readonly bytes: Uint8Array;
  #released = false;

  constructor(reader: StreamReader, seq: number, bytes: Uint8Array) {
    this.#reader = reader;
    this.seq = seq;
    this.bytes = bytes;
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#reader._release(this);
  }
}

/** Validates a data region's header (copied out first) and a control region. */
function validateBundle(data: SharedRegion, control: SharedRegion): Result<{ g: L.Geometry; start: number }, MemportError> {
  if (data.size < L.SLOT_TABLE_OFFSET) return err(protocol(`the data region is ${data.size} bytes, smaller than a header`));
  if (control.size < L.CONTROL_BYTES) return err(protocol(`the control region is ${control.size} bytes, smaller than ${L.CONTROL_BYTES}`));
  const header = data.read(0, L.HEADER_FIXED_BYTES);
  if (header.isErr()) return err(header.error);
  const h = new DataView(header.value.buffer, header.value.byteOffset, L.HEADER_FIXED_BYTES);
  const u = (offset: number) => h.getUint32(offset, true);
  if (u(L.H_MAGIC) !== L.DATA_MAGIC) return err(protocol('the data region is not a memport stream (bad magic)'));
  if (u(L.H_VERSION) !== L.STREAM_VERSION) return err(protocol(`stream layout version ${u(L.H_VERSION)} is not supported (only ${L.STREAM_VERSION})`));
  const mode = u(L.H_MODE);
  const recordBytes = u(L.H_RECORD_BYTES);
  const records = u(L.H_RECORDS);
  const stride = u(L.H_STRIDE);
  const slotTable = u(L.H_SLOT_TABLE);
  const dataOffset = u(L.H_DATA_OFFSET);
  const maxReaders = u(L.H_MAX_READERS);
  if (mode !== L.MODE_QUEUE && mode !== L.MODE_LATEST) return err(protocol(`unknown mode ${mode}`));
  if (recordBytes < 1 || recordBytes > L.MAX_RECORD_BYTES || records < 1 || records > L.MAX_RECORDS) return err(protocol(`bad geometry: ${records} records of ${recordBytes} bytes`));
  if (stride < recordBytes || stride % 8 !== 0) return err(protocol(`bad slot stride ${stride} for records of ${recordBytes} bytes`));
  if (slotTable !== L.SLOT_TABLE_OFFSET || dataOffset < slotTable + records * L.SLOT_ENTRY_BYTES || dataOffset % 8 !== 0) return err(protocol('bad slot table or data offset'));
  // Doubles: exact far past any region size, so this cannot overflow.
  if (dataOffset + stride * records > data.size) return err(protocol(`${records} slots of ${stride} bytes at ${dataOffset} do not fit the ${data.size}-byte region`));
  if (maxReaders < 1 || maxReaders > L.MAX_READERS) return err(protocol(`bad maxReaders ${maxReaders}`));
  const control32 = control.read(0, 16);
  if (control32.isErr()) return err(control32.error);
  const c = new DataView(control32.value.buffer, control32.value.byteOffset, 16);
  if (c.getUint32(L.C_MAGIC, true) !== L.CONTROL_MAGIC || c.getUint32(L.C_VERSION, true) !== L.STREAM_VERSION) return err(protocol('the control region is not a memport stream reader\'s'));
  const hi = c.getUint32(L.C_START_HI, true);
  if (hi >= 2 ** 21) return err(protocol('the start position is out of range'));
  const start = hi * TWO32 + c.getUint32(L.C_START_LO, true);
  return ok({ g: { mode, recordBytes, records, stride, slotTable, dataOffset, maxReaders, size: data.size }, start });
}

/** A waker as something a worker can rebuild: a ThreadWaker's buffer, a Notifier's token. */
function wakerForWorker(waker: Waker, options: ForWorkerOptions | undefined): Result<SharedArrayBuffer | NotifierToken, MemportError> {
  if (waker instanceof ThreadWaker) return ok(waker.buffer);
  if (waker instanceof Notifier) return waker.forWorker(options);
  return err(memportError('UNSUPPORTED', 'only ThreadWakers and Notifiers can go to a worker thread'));
}

/** The waker a worker rebuilds from {@link wakerForWorker}'s result. */
function wakerFromWorker(part: unknown): Result<Waker, MemportError> {
  if (part instanceof SharedArrayBuffer) return ok(new ThreadWaker(part));
  if (typeof part === 'object' && part !== null && (part as NotifierToken).memport === 'notifier-token') return Notifier.fromWorkerToken(part as NotifierToken);
  return err(memportError('INVALID_ARGUMENT', 'Stream.openReader: not a bundle made by reader.forWorker() or Stream.readerBundleForWorker()'));
}

/** Tokens for a worker of a reader's four parts (the parts here stay open). */
function bundleForWorker(parts: ReaderBundle, options?: ForWorkerOptions): Result<WorkerReaderBundle, MemportError> {
  return Result.combine([parts.data.forWorker(options), parts.control.forWorker(options)]).andThen(([data, control]) =>
    Result.combine([wakerForWorker(parts.wake, options), wakerForWorker(parts.wakeWriter, options)]).map(([wake, wakeWriter]) => ({
      memport: 'stream-reader' as const,
      id: parts.id,
      data,
      control,
      wake,
      wakeWriter,
    })),
  );
}

/**
 * The notifying rule (docs/PROTOCOL.md, "Wake-ups"): if the other side
 * announced that it sleeps (the word at byte `offset` is 1), whoever swaps it
 * 1 → 0 notifies, so a sleeper is woken once and a busy side costs no system call.
 */
function wakeIfSleeping(control: Uint32Array, offset: number, waker: Waker): void {
  if (Atomics.load(control, offset / 4) === 1 && Atomics.compareExchange(control, offset / 4, 1, 0) === 1) waker.notify();
}

/** Closes what a reader's parts own: its regions, and Notifier wakers (a reader from another process owns its notifiers; ThreadWakers need no closing). */
function closeParts(parts: ReaderBundle): void {
  parts.data.close();
  parts.control.close();
  for (const waker of [parts.wake, parts.wakeWriter]) if (waker instanceof Notifier) waker.close();
}

/** Validates a reader's parts and opens it; on failure every part it owns is closed. */
function openParts(parts: ReaderBundle): Result<StreamReader, MemportError> {
  const checked = validateBundle(parts.data, parts.control);
  if (checked.isErr()) {
    closeParts(parts);
    return err(checked.error);
  }
  try {
    return ok(StreamReader._make(parts, checked.value.g, checked.value.start));
  } catch (e) {
    closeParts(parts);
    return err(toMemportError(e));
  }
}

function isWaker(value: unknown): value is Waker {
  return typeof value === 'object' && value !== null && typeof (value as Waker).notify === 'function' && typeof (value as Waker).wait === 'function';
}

function isBundle(value: unknown): value is ReaderBundle {
  try {
    const b = value as ReaderBundle;
    return typeof value === 'object' && value !== null && b.data instanceof SharedRegion && b.control instanceof SharedRegion && isWaker(b.wake) && isWaker(b.wakeWriter);
  } catch {
    return false; // a Proxy or a throwing getter
  }
}

function isWorkerBundle(value: unknown): value is WorkerReaderBundle {
  return typeof value === 'object' && value !== null && (value as { memport?: unknown }).memport === 'stream-reader';
}

/**
 * Makes streams. A stream is one writer ({@link StreamWriter}) and readers
 * ({@link StreamReader}) over one shared region. Another process gets a
 * reader in a message: `conn.send({ streams: [writer] })`, received as
 * `message.streams`; a reader lives as long as the connection it came on.
 */
export class Stream {
  private constructor() {}

  /**
   * Creates a stream of `records` slots of `recordBytes` each and returns its
   * writer. Errors: `INVALID_ARGUMENT`, `OUT_OF_MEMORY`/`OS` from the OS.
   *
   * ```ts
   * const writer = Stream.create({ mode: 'latest', recordBytes: 1920 * 1080 * 4, records: 4 });
   * ```
   */
  static create(options: StreamOptions): Result<StreamWriter, MemportError> {
    const read = readOptions(options, ['mode', 'recordBytes', 'records', 'maxReaders', 'label'], 'Stream.create');
    if (read.isErr()) return err(read.error);
    const { mode, recordBytes, records, label } = read.value;
    const bad = (message: string) => err(memportError('INVALID_ARGUMENT', `Stream.create: ${message}`) as MemportError);
    if (mode !== 'queue' && mode !== 'latest') return bad(`options.mode must be 'queue' or 'latest', got ${describe(mode)}`);
    if (!isCount(recordBytes) || recordBytes < 1 || recordBytes > L.MAX_RECORD_BYTES) return bad(`options.recordBytes must be a whole number from 1 to 2^31, got ${describe(recordBytes)}`);
    if (!isCount(records) || records < 1 || records > L.MAX_RECORDS) return bad(`options.records must be a whole number from 1 to 2^20, got ${describe(records)}`);
    const latest = mode === 'latest';
    if (latest && records < 3) return bad('latest mode needs at least 3 records (the newest, one being written, and one a reader holds)');
    const maxReaders = read.value.maxReaders ?? (latest ? records - 2 : 64);
    if (!isCount(maxReaders) || maxReaders < 1 || maxReaders > L.MAX_READERS) return bad(`options.maxReaders must be a whole number from 1 to ${L.MAX_READERS}, got ${describe(maxReaders)}`);
    if (latest && records < maxReaders + 2) return bad(`latest mode needs records >= maxReaders + 2 (each reader may hold one), got ${records} records for ${maxReaders} readers`);
    if (label !== undefined && typeof label !== 'string') return bad(`options.label must be a string, got ${describe(label)}`);
    const binding = loadNative();
    if (binding.isErr()) return err(binding.error);
    const g = L.geometry(latest ? L.MODE_LATEST : L.MODE_QUEUE, recordBytes, records, maxReaders);
    if (g.size > SharedRegion.maxViewLength) return bad(`${g.size} bytes exceed this Node.js typed-array limit of ${SharedRegion.maxViewLength}`);
    const data = SharedRegion.create(g.size, { label: label ?? 'stream' });
    if (data.isErr()) return err(data.error);
    try {
      const bytes = data.value.bytes;
      const w = new Uint32Array(bytes.buffer, bytes.byteOffset, g.dataOffset / 4);
      w[L.H_VERSION / 4] = L.STREAM_VERSION;
      w[L.H_MODE / 4] = g.mode;
      w[L.H_RECORD_BYTES / 4] = recordBytes;
      w[L.H_RECORDS / 4] = records;
      w[L.H_STRIDE / 4] = g.stride;
      w[L.H_SLOT_TABLE / 4] = g.slotTable;
      w[L.H_DATA_OFFSET / 4] = g.dataOffset;
      w[L.H_MAX_READERS / 4] = maxReaders;
      Atomics.store(w, L.H_MAGIC / 4, L.DATA_MAGIC);
      return ok(StreamWriter._make(data.value, g, new ThreadWaker(), label as string | undefined));
    } catch (e) {
      data.value.close();
      return err(toMemportError(e));
    }
  }

  /**
   * Opens a reader from its bundle ({@link StreamWriter.addReader}, or
   * {@link Stream.readerBundleForWorker} in a worker). Takes ownership of the
   * bundle's regions, also when it fails. Errors: `PROTOCOL` (the regions
   * are not a valid stream), `INVALID_ARGUMENT`, `NOT_FOUND` (a worker
   * bundle already opened).
   */
  static openReader(bundle: ReaderBundle | WorkerReaderBundle): Result<StreamReader, MemportError> {
    const binding = loadNative();
    if (binding.isErr()) return err(binding.error);
    let parts: ReaderBundle;
    if (isWorkerBundle(bundle)) {
      // Every part adopted, or those that were closed again.
      const data = SharedRegion.fromWorkerToken(bundle.data);
      const control = SharedRegion.fromWorkerToken(bundle.control);
      const wake = wakerFromWorker(bundle.wake);
      const wakeWriter = wakerFromWorker(bundle.wakeWriter);
      if (data.isErr() || control.isErr() || wake.isErr() || wakeWriter.isErr()) {
        for (const part of [data, control, wake, wakeWriter]) {
          if (part.isOk() && (part.value instanceof SharedRegion || part.value instanceof Notifier)) part.value.close();
        }
        return err([data, control, wake, wakeWriter].find((part) => part.isErr())!._unsafeUnwrapErr());
      }
      parts = { id: bundle.id, data: data.value, control: control.value, wake: wake.value, wakeWriter: wakeWriter.value };
    } else {
      if (!isBundle(bundle)) return err(memportError('INVALID_ARGUMENT', 'Stream.openReader: pass the bundle writer.addReader(), reader.forWorker() or Stream.readerBundleForWorker() made'));
      parts = bundle;
    }
    return openParts(parts);
  }

  /**
   * @internal Opens a reader that arrived in a message: the data region (which
   * must be read-only), its control region, its wake-up and the writer's.
   * Takes ownership of all four, also when it fails. Errors: `PROTOCOL`.
   */
  static _openReceived(data: SharedRegion, control: SharedRegion, wake: Notifier, wakeWriter: Notifier): Result<StreamReader, MemportError> {
    const parts = { id: 0, data, control, wake, wakeWriter };
    if (!data.readOnly) {
      closeParts(parts);
      return err(protocol('a stream\'s data region arrived writable; a writer hands readers a read-only one'));
    }
    return openParts(parts);
  }

  /**
   * A reader bundle as a plain object to `postMessage` to a worker thread,
   * where {@link Stream.openReader} opens it. Consumes `bundle` (its regions
   * here are closed; the worker adopts duplicates). Errors: `UNSUPPORTED`
   * (wakers that are neither {@link ThreadWaker}s nor {@link Notifier}s),
   * those of `forWorker()` on regions and notifiers. A reader already open
   * moves with {@link StreamReader.forWorker}.
   */
  static readerBundleForWorker(bundle: ReaderBundle): Result<WorkerReaderBundle, MemportError> {
    if (!isBundle(bundle)) return err(memportError('INVALID_ARGUMENT', 'Stream.readerBundleForWorker: pass the bundle writer.addReader() made'));
    const made = bundleForWorker(bundle);
    if (made.isErr()) return err(made.error);
    closeParts(bundle);
    return made;
  }

}
