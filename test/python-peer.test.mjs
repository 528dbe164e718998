// docs/PROTOCOL.md is enough to interoperate: a Python consumer written from it
// alone (examples/python-consumer.py, standard library only) receives regions,
// and reads a stream handed to it over the connection.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion, Stream, listen } from '../dist/index.js';
import { isLinux, unwrap } from './helpers.mjs';

const CONSUMER = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'python-consumer.py');
const Python = suite('third-party peer (Python, Linux)');
const hasPython = isLinux && spawnSync('python3', ['--version']).status === 0;

Python('a Python consumer built from docs/PROTOCOL.md receives, validates, maps and acknowledges', async () => {
  if (!isLinux) return; // the example is the Linux half of the protocol
  assert.ok(hasPython, 'python3 is installed (the test suite needs it on Linux)');
  const name = `py-${process.pid}-${randomBytes(4).toString('hex')}`;
  const listener = unwrap(await listen(name));
  const py = spawn('python3', [CONSUMER, name, '--messages', '2', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  py.stdout.on('data', (d) => (out += d));
  py.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => py.once('exit', resolve));
  const conn = unwrap(await listener.accept({ timeoutMs: 10_000 }));
  assert.is(conn.peer.pid, py.pid);

  const frame = unwrap(SharedRegion.create(4096));
  frame.bytes.set([1, 2, 3, 4, 5, 6, 7, 8]);
  const ro = unwrap(frame.toReadOnly());
  const scratch = unwrap(SharedRegion.create(100));
  scratch.bytes[0] = 9;
  unwrap(await conn.send({ regions: [ro, scratch], data: { hello: 'python' } }, { timeoutMs: 10_000 }), 'send 1 (acknowledged by Python)');
  unwrap(await conn.send({ data: [1, 2] }, { timeoutMs: 10_000 }), 'send 2');
  assert.is(await exited, 0, out);
  const [first, second] = out.trim().split('\n').map((l) => JSON.parse(l));
  assert.is(first.listener_pid, process.pid);
  assert.equal(first.data, { hello: 'python' });
  assert.equal(first.regions, [
    { size: 4096, readOnly: true, head: [1, 2, 3, 4, 5, 6, 7, 8] },
    { size: 100, readOnly: false, head: [9, 0, 0, 0, 0, 0, 0, 0] },
  ]);
  assert.equal(second.data, [1, 2]);
  for (const r of [frame, ro, scratch]) r.close();
  conn.close();
  listener.close();
});

/** Starts the Python peer on a new listener; resolves once it connected. */
async function startPeer(args) {
  const name = `py-${process.pid}-${randomBytes(4).toString('hex')}`;
  const listener = unwrap(await listen(name));
  const py = spawn('python3', [CONSUMER, name, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const peer = { py, out: '', err: '', listener };
  const seen = [];
  py.stdout.on('data', (d) => {
    peer.out += d;
    for (const s of seen) s();
  });
  py.stderr.on('data', (d) => (peer.err += d));
  peer.exited = new Promise((resolve) => py.once('exit', resolve));
  /** Its exit code; a peer that never ends (say, it slept through a wake-up) is killed and fails the test. */
  peer.ended = async () => {
    const guard = setTimeout(() => py.kill(), 30_000);
    const code = await peer.exited;
    clearTimeout(guard);
    assert.is(code, 0, `the Python peer ${code === null ? 'never ended (killed after 30 s)' : `exited with ${code}`}:\n${peer.out}${peer.err}`);
  };
  /** Resolves when the peer said it waits with this many records read (it prints one JSON line per event). */
  peer.waitingAfter = (records) => {
    let guard;
    return new Promise((resolve, reject) => {
      const check = () => peer.out.split('\n').some((l) => l.startsWith('{"waiting"') && JSON.parse(l).waiting === records) && resolve();
      seen.push(check);
      // A peer that never gets there (it slept through a wake-up, say) is killed, which fails the test.
      guard = setTimeout(() => py.kill(), 30_000);
      peer.exited.then(() => reject(new Error(`the Python peer exited before it waited with ${records} records read:\n${peer.out}${peer.err}`)));
      check();
    }).finally(() => clearTimeout(guard));
  };
  peer.conn = unwrap(await listener.accept({ timeoutMs: 10_000 }));
  listener.close();
  assert.is(peer.conn.peer.pid, py.pid);
  return peer;
}

/** Record n: 1 to 512 bytes, every byte a function of n and its place (so a wrong, stale or shifted record shows). */
function recordOf(n) {
  const bytes = new Uint8Array(1 + ((n * 37) % 512));
  for (let i = 0; i < bytes.length; i++) bytes[i] = (n * 31 + i * 7 + (n >> 8)) & 0xff;
  return bytes;
}

/** What the peer hashes: each record's length (uint32 LE), then its bytes. */
function digestOf(records) {
  const hash = createHash('sha256');
  for (const r of records) {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(r.length);
    hash.update(length).update(r);
  }
  return hash.digest('hex');
}

const lastJson = (out) => JSON.parse(out.trim().split('\n').at(-1));

Python('a Python reader (mmap, os.eventfd, select) reads a queue stream sent over the connection: every record, in order, through backpressure, many wrap-arounds', async () => {
  if (!isLinux) return;
  assert.ok(hasPython, 'python3 is installed (the test suite needs it on Linux)');
  const peer = await startPeer(['--stream', '--json']);
  // 4 slots for 3000 records: 750 wrap-arounds, and a Python reader much
  // slower than this writer, so the ring is full again and again.
  const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 512, records: 4 }));
  unwrap(await peer.conn.send({ streams: [writer], data: { hello: 'stream' } }, { timeoutMs: 10_000 }), 'send the reader (acknowledged by Python)');
  const COUNT = 3000;
  const written = [];
  let full = 0;
  for (let n = 0; n < COUNT; n++) {
    const record = recordOf(n);
    const now = writer.tryWrite(record);
    if (now.isErr()) {
      assert.is(now.error.code, 'TIMEOUT', now.error.message);
      full++;
      // Backpressure: wait for the reader to release a slot. It notifies this
      // writer's eventfd when it sees the writer sleeping; if it did not, this
      // wait would end with TIMEOUT and fail the test.
      unwrap(await writer.write(record, { timeoutMs: 10_000 }), `write ${n} after waiting for room`);
    }
    written.push(record);
  }
  assert.ok(full > 0, 'the ring was full at times: the writer waited for the reader');
  // Python read everything and sleeps on its eventfd; closing must wake it.
  await peer.waitingAfter(COUNT);
  writer.close();
  await peer.ended();
  const summary = lastJson(peer.out);
  assert.is(summary.listener_pid, process.pid);
  assert.equal(summary.data, { hello: 'stream' });
  assert.equal([summary.recordBytes, summary.slots], [512, 4]);
  assert.is(summary.records, COUNT, 'every record, none twice');
  assert.equal([summary.first, summary.last], [0, COUNT - 1], 'positions 0 to the last, in order');
  assert.is(summary.bytes, written.reduce((n, r) => n + r.length, 0));
  assert.is(summary.sha256, digestOf(written), 'every record has exactly the bytes written, in order');
  assert.ok(summary.writer_wakes > 0, 'Python woke the sleeping writer (its eventfd)');
  assert.ok(summary.waits > 0, 'Python slept on its eventfd');
  assert.is(summary.ended, 'the writer closed the stream');
  peer.conn.close();
});

Python('the connection closing ends the Python reader after the records already published (the reader lives as long as its connection)', async () => {
  if (!isLinux) return;
  assert.ok(hasPython, 'python3 is installed');
  const peer = await startPeer(['--stream', '--json']);
  const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 512, records: 16 }));
  unwrap(await peer.conn.send({ streams: [writer] }, { timeoutMs: 10_000 }));
  const written = [];
  for (let n = 0; n < 10; n++) {
    written.push(recordOf(n));
    unwrap(writer.tryWrite(written[n]), `write ${n}`);
  }
  await peer.waitingAfter(10);
  // The writer does not close: only the connection goes.
  peer.conn.close();
  await peer.ended();
  const summary = lastJson(peer.out);
  assert.is(summary.records, 10);
  assert.is(summary.sha256, digestOf(written));
  // Python sees the socket end, or the writer dropping its reader for it (the
  // writer's side of the same rule), whichever reaches it first.
  assert.ok(['the connection closed', 'the writer dropped this reader'].includes(summary.ended), summary.ended);
  writer.close();
});

Python.run();
