// The stream ring engine (src/stream.ts, docs/PROTOCOL.md "Streams"): order
// and content, backpressure, fan-out, readers and writers leaving, hostile
// writers and readers, latest mode under a racing writer in worker threads,
// the native atomics, and the handle census. Runs on Linux and under Wine.
import { spawn, spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as memport from '../dist/index.js';
import { Stream, StreamReader, StreamWriter } from '../dist/index.js';
import { streamDataRegion } from '../dist/testing.js';
import { assertNoHandleLeak, expectErr, handleCensus, handleTable, isLinux, settleHandles, tick, underWine, unwrap } from './helpers.mjs';

const dist = new URL('../dist/index.js', import.meta.url).href;

// Layout offsets (docs/PROTOCOL.md, "Streams").
const H = { magic: 0, version: 4, mode: 8, recordBytes: 12, records: 16, stride: 20, slotTable: 24, dataOffset: 28, maxReaders: 32, writePos: 64, latest: 68, state: 72 };
const C = { magic: 0, version: 4, startLo: 8, startHi: 12, readPos: 16, hold: 20, readerSleeping: 24, writerSleeping: 28, readerState: 32, writerState: 36 };
const SLOT_TABLE = 128;

const u32 = (bytes, offset) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, true);
const setU32 = (bytes, offset, value) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(offset, value >>> 0, true);

/** A record of `size` bytes whose content is a function of `n`. */
function recordOf(n, size) {
  const bytes = new Uint8Array(size);
  setU32(bytes, 0, n);
  for (let i = 4; i < size; i++) bytes[i] = (n * 31 + i) & 0xff;
  return bytes;
}
function checkRecord(bytes, n, size, what) {
  assert.is(bytes.length, size, `${what}: length`);
  assert.is(u32(bytes, 0), n, `${what}: number`);
  for (let i = 4; i < size; i++) if (bytes[i] !== ((n * 31 + i) & 0xff)) assert.unreachable(`${what}: byte ${i} is ${bytes[i]}`);
}

function newStream(options) {
  return unwrap(Stream.create(options), `Stream.create(${JSON.stringify(options)})`);
}
function newReader(writer) {
  return unwrap(Stream.openReader(unwrap(writer.addReader(), 'addReader')), 'openReader');
}

/** Writes records 0..count-1 (sizes cycle 1..recordBytes), waiting for room. */
async function produce(writer, count, size = (n) => 4 + (n % (writer.recordBytes - 3))) {
  for (let n = 0; n < count; n++) unwrap(await writer.write(recordOf(n, size(n))), `write ${n}`);
}

/** Reads until PEER_CLOSED; calls `pace` between records (a slow reader); returns how many. */
async function consume(reader, what, { size = (n) => 4 + (n % (reader.recordBytes - 3)), pace, stopAt } = {}) {
  let n = 0;
  for (;;) {
    if (stopAt !== undefined && n === stopAt) return n;
    const r = await reader.next();
    if (r.isErr()) {
      assert.is(r.error.code, 'PEER_CLOSED', `${what}: ${r.error.message}`);
      return n;
    }
    assert.is(r.value.seq, n, `${what}: seq`);
    checkRecord(r.value.bytes, n, size(n), `${what} record ${n}`);
    r.value.release();
    n++;
    if (pace) await pace(n);
  }
}

const started = [];
async function stopWorkers() {
  await Promise.all(started.splice(0).map((w) => w.terminate()));
}

// A worker that opens a reader bundle and reads until PEER_CLOSED, checking
// every record (queue: consecutive numbers and exact content; latest: content
// matching the number it carries, numbers increasing), then reports.
const readerWorkerCode = `
import { Stream } from ${JSON.stringify(dist)};
import { parentPort, workerData } from 'node:worker_threads';
(async () => {
  const reader = Stream.openReader(workerData.bundle);
  if (reader.isErr()) return parentPort.postMessage({ error: reader.error.code + ': ' + reader.error.message });
  const r = reader.value;
  let count = 0, last = -1, bad = '';
  for (;;) {
    const next = await r.next();
    if (next.isErr()) { if (next.error.code !== 'PEER_CLOSED') bad ||= next.error.code + ': ' + next.error.message; break; }
    const { bytes, seq } = next.value;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = view.getUint32(0, true);
    if (workerData.mode === 'queue' && (n !== count || seq !== count)) bad ||= 'record ' + count + ' carried ' + n + ' seq ' + seq;
    if (workerData.mode === 'latest' && (seq <= last || n !== seq)) bad ||= 'latest seq ' + seq + ' after ' + last + ' carried ' + n;
    if (workerData.size && bytes.length !== workerData.size(n)) bad ||= 'length';
    // Every byte a function of the record's number: a torn record fails here.
    let sum = 0;
    for (let i = 4; i < bytes.length; i++) { if (bytes[i] !== ((n * 31 + i) & 0xff)) { bad ||= 'record ' + n + ' torn at byte ' + i; break; } sum += bytes[i]; }
    last = seq;
    count++;
    next.value.release();
  }
  r.close();
  parentPort.postMessage({ count, last, bad });
})();
`;

function readerWorker(writer, mode) {
  const bundle = unwrap(Stream.readerBundleForWorker(unwrap(writer.addReader())), 'readerBundleForWorker');
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(readerWorkerCode)}`), { workerData: { bundle, mode } });
  started.push(worker);
  return new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
}

// ---------------------------------------------------------------------------
const API = suite('stream API');

API('the package exports the stream engine', () => {
  for (const name of ['Stream', 'StreamWriter', 'StreamReader', 'ThreadWaker']) assert.type(memport[name], 'function', name);
  assert.type(Stream.create, 'function');
  assert.type(Stream.openReader, 'function');
});

API('Stream.create validates its options', () => {
  for (const bad of [undefined, null, 5, {}, { mode: 'ring', recordBytes: 8, records: 4 }, { mode: 'queue', recordBytes: 0, records: 4 },
    { mode: 'queue', recordBytes: 8, records: 0 }, { mode: 'queue', recordBytes: 1.5, records: 4 }, { mode: 'queue', recordBytes: 8, records: 2 ** 21 },
    { mode: 'latest', recordBytes: 8, records: 2 }, { mode: 'latest', recordBytes: 8, records: 4, maxReaders: 3 }, { mode: 'queue', recordBytes: 8, records: 4, maxReaders: 0 },
    { mode: 'queue', recordBytes: 8, records: 4, label: 7 }, { get mode() { throw new Error('boom'); } }]) {
    expectErr(Stream.create(bad), 'INVALID_ARGUMENT', `Stream.create(${Object.keys(bad ?? {}).map((k) => `${k}: ${String(Object.getOwnPropertyDescriptor(bad, k).value)}`).join(', ')})`);
  }
  const writer = newStream({ mode: 'queue', recordBytes: 100, records: 3, label: 'x' });
  assert.ok(writer instanceof StreamWriter);
  assert.equal([writer.mode, writer.recordBytes, writer.records, writer.readers, writer.published, writer.closed], ['queue', 100, 3, 0, 0, false]);
  writer.close();
  assert.ok(writer.closed);
  expectErr(writer.tryAcquire(), 'CLOSED');
  expectErr(writer.addReader(), 'CLOSED');
});

API('acquire, fill, publish; the reader sees exactly the published bytes, read-only, with no copy', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 32, records: 4 });
  const reader = newReader(writer);
  assert.ok(reader instanceof StreamReader);
  const slot = unwrap(await writer.acquire());
  assert.is(slot.bytes.length, 32);
  assert.is(slot.seq, 0);
  slot.bytes.set([9, 8, 7]);
  expectErr(writer.tryAcquire(), 'INVALID_ARGUMENT', 'a second slot before publishing');
  expectErr(writer.publish(slot, 33), 'INVALID_ARGUMENT', 'a length over recordBytes');
  expectErr(writer.publish({ bytes: new Uint8Array(32), seq: 0 }, 3), 'INVALID_ARGUMENT', 'a slot the writer did not give');
  unwrap(writer.publish(slot, 3));
  expectErr(writer.publish(slot, 3), 'INVALID_ARGUMENT', 'publishing twice');
  const record = unwrap(await reader.next());
  assert.equal([...record.bytes], [9, 8, 7]);
  assert.is(record.seq, 0);
  // A view of the reader's read-only twin: the writer's later writes show through it.
  slot.bytes[0] = 1;
  assert.is(record.bytes[0], 1, 'no copy');
  record.bytes[1] = 99; // stays private to this reader's mapping
  assert.is(slot.bytes[1], 8, 'the reader cannot write the data');
  record.release();
  record.release();
  expectErr(writer.tryWrite(new Uint8Array(33)), 'INVALID_ARGUMENT');
  expectErr(writer.tryWrite('bytes'), 'INVALID_ARGUMENT');
  expectErr(await reader.next({ timeoutMs: 0 }), 'TIMEOUT', 'nothing published');
  const controller = new AbortController();
  const pending = reader.next({ signal: controller.signal });
  expectErr(await reader.next(), 'INVALID_ARGUMENT', 'a second next() while one waits');
  controller.abort();
  expectErr(await pending, 'ABORTED');
  expectErr(await reader.next({ timeoutMs: -1 }), 'INVALID_ARGUMENT');
  reader.close();
  expectErr(await reader.next(), 'CLOSED');
  writer.close();
});

// ---------------------------------------------------------------------------
const Queue = suite('stream: queue mode');
Queue.after.each(stopWorkers);

Queue('100k records through 8 slots arrive in order with their content (in-process)', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 64, records: 8 });
  const reader = newReader(writer);
  const [, count] = await Promise.all([produce(writer, 100_000).then(() => writer.close()), consume(reader, 'reader')]);
  assert.is(count, 100_000);
  reader.close();
});

Queue('100k records through 8 slots arrive in order with their content (reader in a worker thread)', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 64, records: 8 });
  const report = readerWorker(writer, 'queue');
  await produce(writer, 100_000, () => 64);
  writer.close();
  const { count, bad, error } = await report;
  assert.is(error, undefined);
  assert.is(bad, '');
  assert.is(count, 100_000);
});

Queue('tryNext drains without waiting: records in order, Ok(undefined) when none is ready, PEER_CLOSED once the writer closed and all were read', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 16, records: 8 });
  const reader = newReader(writer);
  assert.is(unwrap(reader.tryNext()), undefined, 'nothing published yet');
  for (let n = 0; n < 5; n++) unwrap(writer.tryWrite(recordOf(n, 16)));
  for (let n = 0; n < 5; n++) {
    const record = unwrap(reader.tryNext(), `record ${n}`);
    checkRecord(record.bytes, n, 16, `record ${n}`);
    record.release();
  }
  assert.is(unwrap(reader.tryNext()), undefined, 'drained');
  const waiting = reader.next({ timeoutMs: 50 });
  expectErr(reader.tryNext(), 'INVALID_ARGUMENT', 'while a next() waits');
  expectErr(await waiting, 'TIMEOUT');
  unwrap(writer.tryWrite(recordOf(5, 16)));
  writer.close();
  const last = unwrap(reader.tryNext(), 'the record published before the close');
  assert.is(last.seq, 5);
  last.release();
  expectErr(reader.tryNext(), 'PEER_CLOSED', 'closed and drained');
  reader.close();
  expectErr(reader.tryNext(), 'CLOSED');
});

Queue('backpressure: the writer waits for the slow reader and no record is lost or overwritten', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 16, records: 4 });
  const reader = newReader(writer);
  for (let n = 0; n < 4; n++) unwrap(writer.tryWrite(recordOf(n, 16)));
  expectErr(writer.tryAcquire(), 'TIMEOUT', 'full');
  expectErr(await writer.acquire({ timeoutMs: 0 }), 'TIMEOUT', 'full, not waiting');
  const timedOut = expectErr(await writer.acquire({ timeoutMs: 20 }), 'TIMEOUT', 'full, after waiting');
  assert.match(timedOut.message, /reader 1 \(the slowest\).*writer\.dropReader\(1\)/, 'says which reader holds the writer back and what to do');
  const first = unwrap(await reader.next());
  const waiting = writer.acquire();
  expectErr(await writer.acquire(), 'INVALID_ARGUMENT', 'a second acquire while one waits');
  for (let i = 0; i < 5; i++) await tick();
  checkRecord(first.bytes, 0, 16, 'the unreleased record, while the writer waits');
  first.release();
  const slot = unwrap(await waiting, 'acquire after the release');
  slot.bytes.set(recordOf(4, 16));
  unwrap(writer.publish(slot, 16));
  const produced = (async () => {
    for (let n = 5; n < 400; n++) unwrap(await writer.write(recordOf(n, 16)), `write ${n}`);
    writer.close();
  })();
  // A slow reader: several event-loop turns per record, so the writer keeps waiting.
  let n = 1;
  for (;;) {
    const r = await reader.next();
    if (r.isErr()) {
      assert.is(r.error.code, 'PEER_CLOSED');
      break;
    }
    assert.is(r.value.seq, n);
    checkRecord(r.value.bytes, n, 16, `record ${n}`);
    r.value.release();
    n++;
    for (let i = 0; i < 3; i++) await tick();
  }
  await produced;
  assert.is(n, 400);
  reader.close();
});

Queue('a reader may hold several records and release them out of order; the slots come back in order', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 8, records: 3 });
  const reader = newReader(writer);
  for (let n = 0; n < 3; n++) unwrap(writer.tryWrite(recordOf(n, 8)));
  const held = [];
  for (let n = 0; n < 3; n++) held.push(unwrap(await reader.next()));
  held[2].release();
  held[1].release();
  expectErr(writer.tryAcquire(), 'TIMEOUT', 'record 0 is still held');
  held[0].release();
  for (let n = 3; n < 6; n++) unwrap(writer.tryWrite(recordOf(n, 8)), `write ${n} after the releases`);
  expectErr(writer.tryAcquire(), 'TIMEOUT');
  writer.close();
  for (let n = 3; n < 6; n++) {
    const r = unwrap(await reader.next());
    assert.is(r.seq, n);
    checkRecord(r.bytes, n, 8, `record ${n}`);
    r.release();
  }
  expectErr(await reader.next(), 'PEER_CLOSED');
  reader.close();
});

Queue('fan-out: three readers at different speeds each get every record in order', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 48, records: 5 });
  const readers = [newReader(writer), newReader(writer), newReader(writer)];
  const paces = [undefined, async () => tick(), async (n) => { if (n % 7 === 0) for (let i = 0; i < 10; i++) await tick(); }];
  const counts = await Promise.all([
    produce(writer, 3000).then(() => writer.close()),
    ...readers.map((r, i) => consume(r, `reader ${i}`, { pace: paces[i] })),
  ]);
  assert.equal(counts.slice(1), [3000, 3000, 3000]);
  for (const r of readers) r.close();
});

Queue('fan-out to worker threads: three readers in three workers each get all 20k records', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 256, records: 8 });
  const reports = [readerWorker(writer, 'queue'), readerWorker(writer, 'queue'), readerWorker(writer, 'queue')];
  await produce(writer, 20_000, () => 256);
  writer.close();
  for (const { count, bad, error } of await Promise.all(reports)) {
    assert.is(error, undefined);
    assert.is(bad, '');
    assert.is(count, 20_000);
  }
});

Queue('a reader closing mid-stream frees its place: the writer continues, the other reader gets everything', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 16, records: 4 });
  const stays = newReader(writer);
  const leaves = newReader(writer);
  assert.is(writer.readers, 2);
  const left = (async () => {
    const n = await consume(leaves, 'leaving reader', { stopAt: 10 });
    // Holding one record unreleased when it leaves: its slot must come back too.
    unwrap(await leaves.next());
    leaves.close();
    return n;
  })();
  const [, stayed, leftAfter] = await Promise.all([produce(writer, 500).then(() => writer.close()), consume(stays, 'staying reader'), left]);
  assert.is(stayed, 500);
  assert.is(leftAfter, 10);
  stays.close();
});

Queue('a reader closing while the writer waits on it wakes the writer', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 8, records: 2 });
  const reader = newReader(writer);
  unwrap(writer.tryWrite(new Uint8Array(1)));
  unwrap(writer.tryWrite(new Uint8Array(1)));
  const waiting = writer.acquire();
  await tick();
  reader.close();
  const slot = unwrap(await waiting, 'acquire after the only reader left');
  unwrap(writer.publish(slot, 0));
  assert.is(writer.readers, 0);
  writer.close();
});

Queue('writer close: readers drain what was published, then PEER_CLOSED; a waiting next() wakes with it', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 16, records: 8 });
  const a = newReader(writer);
  const b = newReader(writer);
  for (let n = 0; n < 5; n++) unwrap(writer.tryWrite(recordOf(n, 4 + (n % 13))));
  for (let n = 0; n < 5; n++) {
    const r = unwrap(await b.next());
    r.release();
  }
  const pending = b.next();
  const acquired = unwrap(writer.tryAcquire()); // acquired, never published: dropped by close
  acquired.bytes[0] = 1;
  writer.close();
  expectErr(await pending, 'PEER_CLOSED', 'the waiting reader');
  assert.is(await consume(a, 'draining reader'), 5);
  expectErr(await a.next(), 'PEER_CLOSED', 'and again');
  a.close();
  b.close();
});

Queue('a writer that vanishes without closing (told by its connection): the reader drains, then PEER_CLOSED', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 16, records: 8 });
  const reader = newReader(writer);
  unwrap(writer.tryWrite(recordOf(0, 16)));
  unwrap(writer.tryWrite(recordOf(1, 16)));
  unwrap(await reader.next()).release();
  const pending = (async () => [unwrap(await reader.next()).seq, await reader.next()])();
  await tick();
  reader._writerGone(); // what the connection layer will call
  const [seq, end] = await pending;
  assert.is(seq, 1);
  expectErr(end, 'PEER_CLOSED');
  reader.close();
  writer.close();
});

Queue('dropReader: the dropped reader ends with PEER_CLOSED and no longer holds the writer back', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 8, records: 2 });
  const reader = newReader(writer);
  const other = newReader(writer);
  unwrap(writer.tryWrite(new Uint8Array(1)));
  unwrap(writer.tryWrite(new Uint8Array(1)));
  assert.ok(writer.dropReader(1));
  assert.not.ok(writer.dropReader(1));
  // `other` is still a reader: the writer waits for it, not for the dropped one.
  expectErr(writer.tryAcquire(), 'TIMEOUT');
  for (let i = 0; i < 2; i++) unwrap(await other.next()).release();
  unwrap(writer.tryWrite(new Uint8Array(1)), 'room again');
  expectErr(await reader.next(), 'PEER_CLOSED');
  reader.close();
  other.close();
  writer.close();
});

Queue('for await reads every record, releasing each as the loop moves on, and ends at PEER_CLOSED', async () => {
  const writer = newStream({ mode: 'queue', recordBytes: 16, records: 2 });
  const reader = newReader(writer);
  const produced = produce(writer, 50).then(() => writer.close());
  let n = 0;
  for await (const record of reader) {
    checkRecord(record.bytes, n, 4 + (n % 13), `record ${n}`);
    n++;
  }
  await produced;
  assert.is(n, 50);
  reader.close();
});

// ---------------------------------------------------------------------------
const Latest = suite('stream: latest mode');
Latest.after.each(stopWorkers);

Latest('tryNext gives the newest record not yet seen, then Ok(undefined) until a newer one is published', async () => {
  const writer = newStream({ mode: 'latest', recordBytes: 16, records: 4 });
  const reader = newReader(writer);
  assert.is(unwrap(reader.tryNext()), undefined, 'nothing yet');
  for (let n = 0; n < 3; n++) unwrap(writer.tryWrite(recordOf(n, 16)));
  const newest = unwrap(reader.tryNext());
  assert.is(newest.seq, 2);
  assert.is(unwrap(reader.tryNext()), undefined, 'seen it');
  unwrap(writer.tryWrite(recordOf(3, 16)));
  assert.is(unwrap(reader.tryNext()).seq, 3);
  reader.close();
  writer.close();
});

Latest('the writer never waits; next() gives the newest record not yet seen', async () => {
  const writer = newStream({ mode: 'latest', recordBytes: 16, records: 4 });
  const reader = newReader(writer);
  expectErr(await reader.next({ timeoutMs: 0 }), 'TIMEOUT', 'nothing yet');
  for (let n = 0; n < 100; n++) unwrap(writer.tryWrite(recordOf(n, 16)), `write ${n}: never full`);
  const r = unwrap(await reader.next());
  assert.is(r.seq, 99);
  checkRecord(r.bytes, 99, 16, 'newest');
  expectErr(await reader.next({ timeoutMs: 0 }), 'TIMEOUT', 'seen it');
  unwrap(writer.tryWrite(recordOf(100, 16)));
  const s = unwrap(await reader.next());
  assert.is(s.seq, 100);
  // A reader that joins late starts with the newest record.
  const late = newReader(writer);
  assert.is(unwrap(await late.next()).seq, 100);
  writer.close();
  expectErr(await reader.next(), 'PEER_CLOSED');
  late.close();
  reader.close();
});

Latest('a held record is never overwritten, however much the writer writes', async () => {
  const writer = newStream({ mode: 'latest', recordBytes: 64, records: 4 });
  const readers = [newReader(writer), newReader(writer)];
  unwrap(writer.tryWrite(recordOf(7, 64)));
  const held = unwrap(await readers[0].next());
  unwrap(writer.tryWrite(recordOf(8, 64)));
  const held2 = unwrap(await readers[1].next());
  for (let n = 9; n < 1000; n++) unwrap(writer.tryWrite(recordOf(n, 64)));
  checkRecord(held.bytes, 7, 64, 'reader 0 held record');
  checkRecord(held2.bytes, 8, 64, 'reader 1 held record');
  held.release();
  // Once released, the slot is used again.
  for (let n = 1000; n < 1010; n++) unwrap(writer.tryWrite(recordOf(n, 64)));
  const newest = unwrap(await readers[0].next());
  assert.is(newest.seq, 1002, 'the 1003rd record published');
  checkRecord(newest.bytes, 1009, 64, 'the newest');
  writer.close();
  for (const r of readers) r.close();
});

Latest('never torn under load: two worker readers check every record while the writer races', async () => {
  const size = 16 * 1024;
  const writer = newStream({ mode: 'latest', recordBytes: size, records: 5, maxReaders: 3 });
  const reports = [readerWorker(writer, 'latest'), readerWorker(writer, 'latest')];
  const local = newReader(writer);
  let localSeen = 0;
  for (let n = 0; n < 20_000; n++) {
    unwrap(writer.tryWrite(recordOf(n, size)), `write ${n}`);
    if (n % 500 === 0) {
      await tick(); // let the local reader (and the workers' messages) in now and then
      const r = await local.next({ timeoutMs: 0 });
      if (r.isOk()) {
        localSeen++;
        checkRecord(r.value.bytes, r.value.seq, size, 'local reader');
      }
    }
  }
  writer.close();
  for (const { count, last, bad, error } of await Promise.all(reports)) {
    assert.is(error, undefined);
    assert.is(bad, '');
    assert.ok(count >= 1, 'each worker read records');
    assert.is(last, 19_999, 'and ended with the newest');
  }
  assert.ok(localSeen > 0);
  local.close();
});

// ---------------------------------------------------------------------------
const Hostile = suite('stream: hostile writers and readers');
Hostile.after.each(stopWorkers);

function hostileWriter(mode, records = 4) {
  const writer = newStream({ mode, recordBytes: 32, records, maxReaders: 2 });
  const data = streamDataRegion(writer);
  assert.ok(data && !data.readOnly, 'the writer’s writable data region');
  return { writer, bytes: data.bytes };
}

Hostile('a forged header makes openReader fail with PROTOCOL and closes what it was given', () => {
  const forgeries = [
    ['magic', (b) => setU32(b, H.magic, 0x12345678)],
    ['version', (b) => setU32(b, H.version, 2)],
    ['mode', (b) => setU32(b, H.mode, 9)],
    ['recordBytes 0', (b) => setU32(b, H.recordBytes, 0)],
    ['recordBytes huge', (b) => setU32(b, H.recordBytes, 0xffffffff)],
    ['records huge', (b) => setU32(b, H.records, 0xfffffff0)],
    ['stride below recordBytes', (b) => setU32(b, H.stride, 8)],
    ['slots past the region', (b) => setU32(b, H.stride, 0x7ffffff8)],
    ['data offset inside the slot table', (b) => setU32(b, H.dataOffset, 64)],
    ['maxReaders 0', (b) => setU32(b, H.maxReaders, 0)],
  ];
  for (const [what, forge] of forgeries) {
    const { writer, bytes } = hostileWriter('queue');
    const bundle = unwrap(writer.addReader());
    forge(bytes);
    const e = expectErr(Stream.openReader(bundle), 'PROTOCOL', what);
    assert.type(e.message, 'string');
    assert.ok(bundle.data.closed && bundle.control.closed, `${what}: the bundle's regions are closed`);
    writer.close();
  }
  const { writer } = hostileWriter('queue');
  const bundle = unwrap(writer.addReader());
  setU32(bundle.control.bytes, C.magic, 0);
  expectErr(Stream.openReader(bundle), 'PROTOCOL', 'a forged control region');
  writer.close();
  expectErr(Stream.openReader({ data: 1, control: 2 }), 'INVALID_ARGUMENT');
  expectErr(Stream.openReader(null), 'INVALID_ARGUMENT');
});

Hostile('queue: a forged write position, slot length or slot sequence ends the reader with PROTOCOL, for good', async () => {
  const cases = [
    ['write position far ahead', (b) => setU32(b, H.writePos, 1000)],
    ['write position just past the ring', (b) => setU32(b, H.writePos, 5)],
    ['slot length over recordBytes', (b) => { setU32(b, H.writePos, 1); setU32(b, SLOT_TABLE + 4, 33); }],
    ['slot length 2^32-1', (b) => { setU32(b, H.writePos, 1); setU32(b, SLOT_TABLE + 4, 0xffffffff); }],
    ['slot sequence wrong', (b) => { setU32(b, H.writePos, 1); setU32(b, SLOT_TABLE, 77); }],
  ];
  for (const [what, forge] of cases) {
    const { writer, bytes } = hostileWriter('queue');
    const reader = newReader(writer);
    forge(bytes);
    expectErr(await reader.next(), 'PROTOCOL', what);
    expectErr(await reader.next(), 'PROTOCOL', `${what}, asked again`);
    reader.close();
    writer.close();
  }
  // The position moving back past what was read.
  const { writer, bytes } = hostileWriter('queue');
  const reader = newReader(writer);
  for (let n = 0; n < 3; n++) unwrap(writer.tryWrite(recordOf(n, 8)));
  for (let n = 0; n < 2; n++) unwrap(await reader.next()).release();
  setU32(bytes, H.writePos, 2 ** 32 - 1);
  unwrap(await reader.next(), 'record 2 was known before the lie');
  expectErr(await reader.next(), 'PROTOCOL', 'write position moved back');
  reader.close();
  writer.close();
});

Hostile('queue: garbage sprayed over the header and slot table: every next() is a record within bounds, a TIMEOUT or PROTOCOL, never a throw', async () => {
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0);
  const outcomes = new Map();
  for (let round = 0; round < 300; round++) {
    const { writer, bytes } = hostileWriter('queue', 3);
    const reader = newReader(writer);
    for (let n = 0; n < round % 4; n++) unwrap(writer.tryWrite(recordOf(n, 8)));
    for (let k = 0; k < 4; k++) {
      const word = 16 + (random() % ((SLOT_TABLE + 3 * 16) / 4 - 16)); // from the changing words on
      setU32(bytes, word * 4, random() % 3 === 0 ? random() % 8 : random());
    }
    for (let i = 0; i < 5; i++) {
      const r = await reader.next({ timeoutMs: 0 });
      const code = r.isOk() ? 'ok' : r.error.code;
      outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
      if (r.isOk()) {
        assert.ok(r.value.bytes.length <= 32, 'a record within the slot');
        r.value.release();
      } else {
        assert.ok(['TIMEOUT', 'PROTOCOL', 'PEER_CLOSED'].includes(code), `${code}: ${r.error.message}`);
      }
    }
    reader.close();
    writer.close();
  }
  assert.ok(outcomes.get('PROTOCOL') > 0, `some forgeries were caught: ${JSON.stringify([...outcomes])}`);
});

Hostile('latest: a forged newest-record word, length or sequence ends the reader with PROTOCOL', async () => {
  const cases = [
    ['newest slot out of range', (b) => setU32(b, H.latest, 5)],
    ['newest slot 2^32-1', (b) => setU32(b, H.latest, 0xffffffff)],
    ['length over recordBytes', (b, slot) => setU32(b, SLOT_TABLE + slot * 16 + 4, 4096)],
    ['sequence older than one read', (b, slot) => setU32(b, SLOT_TABLE + slot * 16, 0xfffffff0)],
    ['newest slot kept invalid', (b, slot) => setU32(b, SLOT_TABLE + slot * 16 + 4, 0xffffffff)],
  ];
  for (const [what, forge] of cases) {
    const { writer, bytes } = hostileWriter('latest');
    const reader = newReader(writer);
    unwrap(writer.tryWrite(recordOf(0, 8)));
    unwrap(await reader.next());
    unwrap(writer.tryWrite(recordOf(1, 8)));
    forge(bytes, u32(bytes, H.latest) - 1);
    expectErr(await reader.next(), 'PROTOCOL', what);
    reader.close();
    writer.close();
  }
});

Hostile('a reader lying about its position in its control region is detached; the writer and the honest reader carry on', async () => {
  for (const [what, lie] of [['ahead of the writer', () => 1000], ['back behind what it had released', (pos) => pos - 1], ['2^32-1', () => 0xffffffff]]) {
    const writer = newStream({ mode: 'queue', recordBytes: 16, records: 4 });
    const honest = newReader(writer);
    const liarBundle = unwrap(writer.addReader());
    const liar = unwrap(Stream.openReader(liarBundle));
    // The writer fills the ring, both readers release some, and the writer
    // sees the liar's honest position once (a scan when it was full).
    for (let n = 0; n < 4; n++) unwrap(writer.tryWrite(recordOf(n, 16)));
    for (let n = 0; n < 2; n++) unwrap(await liar.next()).release();
    for (let n = 0; n < 4; n++) unwrap(await honest.next()).release();
    unwrap(writer.tryWrite(recordOf(4, 16)), 'room after the releases');
    // (Lying backwards only about records the writer never saw released is
    // indistinguishable from a slow reader: queue mode waits for it, and the
    // writer's way out is acquire({ timeoutMs }) and dropReader.)
    setU32(liarBundle.control.bytes, C.readPos, lie(u32(liarBundle.control.bytes, C.readPos)));
    // Sleeping flags set for ever only cost the writer notifications.
    setU32(liarBundle.control.bytes, C.readerSleeping, 1);
    const [, count] = await Promise.all([
      (async () => {
        for (let n = 5; n < 200; n++) unwrap(await writer.write(recordOf(n, 16)), `${what}: write ${n}`);
        writer.close();
      })(),
      (async () => {
        let n = 4;
        for (let r = await honest.next(); r.isOk(); r = await honest.next()) {
          assert.is(r.value.seq, n);
          checkRecord(r.value.bytes, n++, 16, `${what}: honest reader`);
          r.value.release();
        }
        return n;
      })(),
    ]);
    assert.is(count, 200, what);
    assert.is(writer.readers, 0);
    const r = await liar.next();
    assert.ok(r.isErr() && ['PEER_CLOSED', 'PROTOCOL'].includes(r.error.code), `${what}: the liar is cut off (${r.isErr() ? r.error.code : 'ok'})`);
    liar.close();
    honest.close();
  }
});

Hostile('latest: a reader holding a slot id out of range, or holding a slot for ever, cannot stop the writer', async () => {
  const writer = newStream({ mode: 'latest', recordBytes: 16, records: 4 });
  const bundle = unwrap(writer.addReader());
  const reader = unwrap(Stream.openReader(bundle));
  const honest = newReader(writer);
  for (const hold of [0xffffffff, 5, 1, 2, 3, 4]) {
    setU32(bundle.control.bytes, C.hold, hold);
    for (let n = 0; n < 20; n++) unwrap(writer.tryWrite(recordOf(n, 16)), `hold ${hold}: write ${n}`);
    const r = unwrap(await honest.next());
    checkRecord(r.bytes, 19, 16, `hold ${hold}: the honest reader's newest`);
  }
  reader.close();
  honest.close();
  writer.close();
});

Hostile('latest: a reader thrashing its hold from another thread cannot stop the writer or touch what an honest reader holds', async () => {
  const writer = newStream({ mode: 'latest', recordBytes: 256, records: 4, maxReaders: 2 });
  const thrasher = unwrap(writer.addReader());
  const token = unwrap(thrasher.control.forWorker());
  thrasher.control.close();
  thrasher.data.close();
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const code = `
    import { SharedRegion } from ${JSON.stringify(dist)};
    import { parentPort, workerData } from 'node:worker_threads';
    const control = SharedRegion.fromWorkerToken(workerData.token)._unsafeUnwrap();
    const words = new Uint32Array(control.bytes.buffer, control.bytes.byteOffset, 16);
    parentPort.postMessage('started');
    let i = 0;
    while (Atomics.load(workerData.stop, 0) === 0) words[${C.hold / 4}] = i++ % 6; // 0 (none), slots 1..4, 5 (out of range)
    control.close();
    parentPort.postMessage(i);
  `;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), { workerData: { token, stop } });
  started.push(worker);
  assert.is(await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject)), 'started');
  const honest = newReader(writer);
  let checked = 0;
  for (let n = 0; n < 5000; n++) {
    unwrap(writer.tryWrite(recordOf(n, 256)), `write ${n}: the writer never waits`);
    if (n % 50 === 49) {
      const r = unwrap(await honest.next({ timeoutMs: 0 }), `read after write ${n}`);
      checkRecord(r.bytes, r.seq, 256, 'the honest reader’s newest');
      // Held while the writer writes on and the thrasher thrashes.
      for (let k = 0; k < 20; k++) unwrap(writer.tryWrite(recordOf(++n, 256)), `write ${n} while a record is held`);
      checkRecord(r.bytes, r.seq, 256, 'the held record, untouched');
      checked++;
    }
  }
  Atomics.store(stop, 0, 1);
  const thrashes = await new Promise((resolve) => worker.once('message', resolve));
  assert.ok(thrashes > 0);
  assert.ok(checked > 50);
  honest.close();
  writer.close();
});

// ---------------------------------------------------------------------------
const Python = suite('stream: a Python reader written from docs/PROTOCOL.md (Linux)');

Python('a Python reader (mmap and struct only) reads 300 records in order through 8 slots, releasing as it goes', async () => {
  if (!isLinux) return; // fd inheritance through spawn's stdio is the Linux way in
  assert.is(spawnSync('python3', ['--version']).status, 0, 'python3 is installed (the test suite needs it on Linux)');
  const writer = newStream({ mode: 'queue', recordBytes: 64, records: 8 });
  const bundle = unwrap(writer.addReader());
  const script = new URL('./fixtures/stream_reader.py', import.meta.url).pathname;
  const py = spawn('python3', [script], { stdio: ['ignore', 'pipe', 'pipe', bundle.data.osHandle, bundle.control.osHandle] });
  bundle.data.close(); // the child has its own fds
  bundle.control.close();
  let out = '';
  py.stdout.on('data', (d) => (out += d));
  py.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => py.once('exit', resolve));
  let bytes = 0;
  for (let n = 0; n < 300; n++) {
    // The Python reader cannot notify (no wake-up object): the writer looks again every few ms.
    let slot;
    while (slot === undefined) {
      const r = await writer.acquire({ timeoutMs: 5 });
      if (r.isOk()) slot = r.value;
      else assert.is(r.error.code, 'TIMEOUT', r.error.message);
    }
    const record = recordOf(n, 4 + (n % 61));
    slot.bytes.set(record);
    unwrap(writer.publish(slot, record.length));
    bytes += record.length;
  }
  writer.close();
  assert.is(await exited, 0, out);
  assert.equal(JSON.parse(out), { count: 300, bytes });
});

// ---------------------------------------------------------------------------
const Ordering = suite('stream: memory ordering of the shared words');

// The stream's wake-up rule is a store-then-load race: each side stores its
// own word, then loads the other's, and at least one must see the other's
// store (docs/PROTOCOL.md, "Wake-ups"). Two threads play it over a memport
// region (the same non-shared external memory a stream uses) for many
// rounds. With JavaScript's Atomics no round may see both words unset; with
// plain typed-array stores, which the CPU may hold in its store buffer past
// the load, some rounds do — which shows the check can fail.
const orderingCode = `
import { SharedRegion } from ${JSON.stringify(dist)};
import { parentPort, workerData } from 'node:worker_threads';
const region = SharedRegion.fromWorkerToken(workerData.token)._unsafeUnwrap();
const u = new Uint32Array(region.bytes.buffer, region.bytes.byteOffset, 64);
const { me, rounds, atomics } = workerData;
const other = 1 - me;
const saw = new Uint8Array(rounds);
for (let r = 1; r <= rounds; r++) {
  Atomics.store(u, 16 + me, r); // meet the other thread at round r
  while (Atomics.load(u, 16 + other) < r) {}
  if (atomics) Atomics.store(u, me, r); else u[me] = r;
  saw[r - 1] = (atomics ? Atomics.load(u, other) : u[other]) >= r ? 1 : 0;
}
region.close();
parentPort.postMessage(saw);
`;

async function storeLoadRace(atomics, rounds) {
  const region = unwrap(memport.SharedRegion.create(4096));
  const play = (me) =>
    new Promise((resolve, reject) => {
      const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(orderingCode)}`), { workerData: { token: unwrap(region.forWorker()), me, rounds, atomics } });
      worker.once('message', resolve).once('error', reject);
    });
  const [a, b] = await Promise.all([play(0), play(1)]);
  region.close();
  let neither = 0;
  for (let i = 0; i < rounds; i++) if (a[i] === 0 && b[i] === 0) neither++;
  return neither;
}

Ordering('Atomics on region memory are sequentially consistent: a store-then-load race between two threads never loses both stores', async () => {
  assert.is(await storeLoadRace(true, 200_000), 0, 'rounds in which neither thread saw the other\'s store');
});

Ordering('the same race with plain stores does lose both stores on a machine with two or more cores (the check above can fail)', async () => {
  const { availableParallelism, cpus } = await import('node:os');
  if ((availableParallelism?.() ?? cpus().length) < 2) return; // one core: the threads never overlap
  assert.ok((await storeLoadRace(false, 200_000)) > 0, 'plain stores let both threads miss each other at least once');
});

const Census = suite('stream: handles');

Census('streams, readers (here and in workers) and their closes leave the handle census where it was', async () => {
  await settleHandles();
  // Under Wine the census is a slot probe: the table says what moved (test/helpers.mjs).
  const table = underWine ? handleTable() : undefined;
  const before = handleCensus();
  for (const mode of ['queue', 'latest']) {
    const writer = newStream({ mode, recordBytes: 64, records: 6, maxReaders: 4 });
    const readers = [newReader(writer), newReader(writer)];
    const report = readerWorker(writer, mode);
    const drain = async (reader, stopAt) => {
      for (let n = 0; n !== stopAt; n++) {
        const r = await reader.next();
        if (r.isErr()) return r.error.code;
        r.value.release();
      }
      return 'stopped';
    };
    const [, first, second] = await Promise.all([
      (async () => {
        for (let n = 0; n < 50; n++) unwrap(await writer.write(recordOf(n, 64)));
        writer.close();
      })(),
      drain(readers[0], 10).then((how) => (readers[0].close(), how)), // leaves before the writer
      drain(readers[1]),
    ]);
    // A latest reader skips records, so it may reach the end before its tenth.
    assert.ok(first === 'stopped' || (mode === 'latest' && first === 'PEER_CLOSED'), `${mode}: first reader ${first}`);
    assert.is(second, 'PEER_CLOSED');
    readers[1].close(); // after the writer
    const { bad } = await report;
    assert.is(bad, '');
  }
  // A bundle nobody opened: closing its regions is enough.
  const writer = newStream({ mode: 'queue', recordBytes: 8, records: 2 });
  const bundle = unwrap(writer.addReader());
  bundle.data.close();
  bundle.control.close();
  writer.close();
  await stopWorkers();
  await settleHandles();
  assertNoHandleLeak(before, 'streams', table);
});

API.run();
Queue.run();
Latest.run();
Hostile.run();
Python.run();
Ordering.run();
Census.run();
