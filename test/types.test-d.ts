// Compile-time checks of the public types (run by `npm run typecheck`).
import type { Result } from 'neverthrow';
import { Notifier, SharedRegion, Stream, isMemportError, type Connection, type Message, type NotifierToken, type OutgoingMessage, type WorkerReaderBundle, type ResultAsync, type Slot, type StreamReader, type StreamRecord, type StreamWriter, type ConnectOptions, type ListenOptions, type MemportError, type MemportErrorCode, type RegionToken } from '../dist/index.js';

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

const created = SharedRegion.create(4096);
expectType<Equals<typeof created, Result<SharedRegion, MemportError>>>();

const view = created.andThen((r) => r.view(0, 16));
expectType<Equals<typeof view, Result<Uint8Array, MemportError>>>();

const twin = created.andThen((r) => r.toReadOnly());
expectType<Equals<typeof twin, Result<SharedRegion, MemportError>>>();

if (created.isErr()) {
  const e = created.error;
  expectType<Equals<typeof e.code, MemportErrorCode>>();
  if (e.code === 'OUT_OF_MEMORY') {
    expectType<Equals<typeof e.code, 'OUT_OF_MEMORY'>>();
  }
  // @ts-expect-error not a MemportError code
  if (e.code === 'ENOMEM') void 0;
  const os: number | undefined = e.osCode;
  void os;
}

declare const unknownValue: unknown;
if (isMemportError(unknownValue)) {
  const code: MemportErrorCode = unknownValue.code;
  void code;
}

// Regions are Disposable.
const disposable: Disposable = created._unsafeUnwrap();
void disposable;

// Sizes must be numbers.
// @ts-expect-error bigint sizes are not accepted
SharedRegion.create(10n);

// Named regions (README, "Interop with named shared memory").
const opened = SharedRegion.openNamed('telemetry', { readOnly: true, size: 4096 });
expectType<Equals<typeof opened, Result<SharedRegion, MemportError>>>();
const made = SharedRegion.createNamed('Local\\x', 4096, { readOnly: false });
expectType<Equals<typeof made, Result<SharedRegion, MemportError>>>();
const unlinked = SharedRegion.unlinkNamed('/x');
expectType<Equals<typeof unlinked, Result<void, MemportError>>>();
const copied = opened.andThen((r) => r.copyToUnnamed());
expectType<Equals<typeof copied, Result<SharedRegion, MemportError>>>();
const name: string | undefined = opened._unsafeUnwrap().name;
const named: boolean = opened._unsafeUnwrap().named;
void name;
void named;
// @ts-expect-error the size is required
SharedRegion.createNamed('x');
// Receiving named regions is an option of connect and listen, a boolean.
const namedOptions: ConnectOptions & ListenOptions = { acceptNamedRegions: true };
void namedOptions;
// @ts-expect-error acceptNamedRegions is a boolean
const badNamedOption: ConnectOptions = { acceptNamedRegions: 'yes' };
void badNamedOption;

// typedView gives the array of the constructor passed, nothing vaguer (over
// an ArrayBuffer, never a SharedArrayBuffer), and it is usable as the plain type.
const floats = created.andThen((r) => r.typedView(Float32Array, 64, 4));
expectType<Equals<typeof floats, Result<Float32Array<ArrayBuffer>, MemportError>>>();
const asPlain: Result<Float32Array, MemportError> = floats;
void asPlain;
const bigs = created.andThen((r) => r.typedView(BigInt64Array));
expectType<Equals<typeof bigs, Result<BigInt64Array<ArrayBuffer>, MemportError>>>();
const doubles = created.andThen((r) => r.typedView(Float64Array, 8));
expectType<Equals<typeof doubles, Result<Float64Array<ArrayBuffer>, MemportError>>>();
const clamped = created.andThen((r) => r.typedView(Uint8ClampedArray, 0, 1));
expectType<Equals<typeof clamped, Result<Uint8ClampedArray<ArrayBuffer>, MemportError>>>();
// @ts-expect-error a Float32Array view is not a Float64Array
const wrong: Result<Float64Array, MemportError> = floats;
void wrong;
// @ts-expect-error DataView is not a typed-array constructor
created.andThen((r) => r.typedView(DataView, 0, 1));
// @ts-expect-error nor is Array
created.andThen((r) => r.typedView(Array, 0, 1));

// A worker token is plain data; adopting one gives a region.
const token = created.andThen((r) => r.forWorker({ timeoutMs: 1000 }));
expectType<Equals<typeof token, Result<RegionToken, MemportError>>>();
const adopted = token.andThen((t) => SharedRegion.fromWorkerToken(t));
expectType<Equals<typeof adopted, Result<SharedRegion, MemportError>>>();
// @ts-expect-error a token is not a handle number
SharedRegion.fromWorkerToken(3);

// Notifiers: Result for create/notify, ResultAsync for wait, Results per wake, Disposable.
const notifier = Notifier.create();
expectType<Equals<typeof notifier, Result<Notifier, MemportError>>>();
if (notifier.isOk()) {
  const n = notifier.value;
  expectType<Equals<ReturnType<typeof n.notify>, Result<void, MemportError>>>();
  const waited = n.wait({ timeoutMs: 10 });
  expectType<Equals<Awaited<typeof waited>, Result<void, MemportError>>>();
  const notifierDisposable: Disposable = n;
  const iterable: AsyncIterable<Result<void, MemportError>> = n;
  void notifierDisposable;
  void iterable;
  // @ts-expect-error wait takes wait options only
  void n.wait({ timeout: 10 });
  // @ts-expect-error a Notifier comes from Notifier.create()
  void new Notifier();
}

// Streams (the engine): every call a Result or ResultAsync of the documented type.
const writer = Stream.create({ mode: 'queue', recordBytes: 64, records: 8 });
expectType<Equals<typeof writer, Result<StreamWriter, MemportError>>>();
if (writer.isOk()) {
  const w = writer.value;
  const acquired = w.acquire({ timeoutMs: 5 });
  expectType<Equals<typeof acquired, ResultAsync<Slot, MemportError>>>();
  const tried = w.tryAcquire();
  expectType<Equals<typeof tried, Result<Slot, MemportError>>>();
  if (tried.isOk()) {
    const published = w.publish(tried.value, 3);
    expectType<Equals<typeof published, Result<void, MemportError>>>();
  }
  const reader = w.addReader().andThen((bundle) => Stream.openReader(bundle));
  expectType<Equals<typeof reader, Result<StreamReader, MemportError>>>();
  if (reader.isOk()) {
    const next = reader.value.next({ signal: AbortSignal.timeout(5) });
    expectType<Equals<typeof next, ResultAsync<StreamRecord, MemportError>>>();
  }
  // @ts-expect-error mode is 'queue' or 'latest'
  Stream.create({ mode: 'ring', recordBytes: 64, records: 8 });
}

// Streams over connections: send takes writers, a received message has readers.
export async function streamsOverConnections(conn: Connection, w: StreamWriter): Promise<void> {
  const sent = conn.send({ streams: [w], data: { hello: 1 } });
  expectType<Equals<typeof sent, ResultAsync<void, MemportError>>>();
  const outgoing: OutgoingMessage = { streams: [w] };
  void outgoing;
  const got = await conn.receive();
  if (got.isOk()) {
    expectType<Equals<typeof got.value, Message<unknown>>>();
    expectType<Equals<typeof got.value.streams, StreamReader[]>>();
  }
  // @ts-expect-error a reader cannot be sent: send the writer
  void conn.send({ streams: [(await conn.receive())._unsafeUnwrap().streams[0]!] });
}

// Worker threads: readers and notifiers move as tokens.
export function toWorkers(reader: StreamReader, n: Notifier): void {
  const bundle = reader.forWorker();
  expectType<Equals<typeof bundle, Result<WorkerReaderBundle, MemportError>>>();
  const token = n.forWorker({ timeoutMs: 1000 });
  expectType<Equals<typeof token, Result<NotifierToken, MemportError>>>();
  if (token.isOk()) {
    const adopted = Notifier.fromWorkerToken(token.value);
    expectType<Equals<typeof adopted, Result<Notifier, MemportError>>>();
  }
}
