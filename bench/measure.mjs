// Runs ONE Node-side benchmark on the platform it runs on (Linux natively, or
// Windows Node under Wine) and prints its samples as one line:
//   BENCH-RESULT {"samples":{"<series>":[ns, ...]}, ...}
// bench/run.mjs starts it once per metric (a fresh process each time, so no
// metric inherits another's heap or GC state) and parses that line; under Wine
// stdout is a file, so a result line is the only channel needed.
//
//   node bench/measure.mjs <kind> [--size N] [--mode M] [--warmup N] [--min N] [--max N] [--budget-ms N]
//
// kinds (the producer is this process, the consumer a child process):
//   memport       send one region (the same one every time) over a memport connection;
//                 --mode touch: the consumer views it, reads its first byte, closes it and replies
//                 --mode read:  the consumer reads every byte, closes it and replies
//                 --mode ack:   time send() alone, which resolves on the protocol ACK
//   stream        write --size bytes over a Unix socket (Linux) / named pipe (Windows);
//                 --mode touch: the consumer keeps the chunks, replies after the last byte
//                 --mode read:  the consumer reads every byte of every chunk, then replies
//   cp-buffer     child.send(buffer) over the child_process IPC channel ('advanced'
//                 serialization), the child replies; --mode touch|read as for stream
//   ipc           child_process IPC round trip of a 64-byte JSON message
//   handle        child.send(msg, socket) of a TCP net.Socket (keepOpen), the child
//                 closes its copy and replies
//   region-create SharedRegion.create(--size) + region.bytes, in this process
//   socket-records  --count records of --size bytes (64), each u32-length-prefixed and
//                 written with its own socket.write() over a Unix socket / named pipe;
//                 the consumer parses them and answers once per --count; a sample is
//                 the nanoseconds per record
//   sab-records   the in-process ceiling: --count records of --size bytes through a
//                 SharedArrayBuffer ring of --slots between two worker_threads
//                 (Atomics, sleeping only when full/empty); nanoseconds per record
//
// memport's own streams (issue 11); the other process is peers/memport-stream-peer.mjs,
// handed what it needs in one conn.send():
//   notifier-pingpong  two Notifiers: this side notify()s ping and awaits pong.wait(),
//                 the peer answers each wake on ping with pong.notify(); one round trip
//   stream-records  a queue stream of --slots records of --size bytes (64), its reader
//                 sent to the peer: --count records per sample, each acquired (await
//                 writer.acquire(), which waits while the ring is full), filled and published; the peer checks
//                 each one and answers once per --count; nanoseconds per record
//   stream-bytes  the same with records of --size bytes (1 MiB) that the writer copies
//                 in (await writer.write()) and the peer reads every byte of; nanoseconds per record
//   stream-frames a latest stream of 1920x1080 RGBA frames to --readers peers that read
//                 every byte; the writer fills, stamps and publishes frames for
//                 --budget-ms (flat out, or --fps per second); samples: publish ->
//                 receive latencies, each reader's nanoseconds per frame received, the
//                 writer's per frame published
import { fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Notifier, SharedRegion, Stream, listen } from '../dist/index.js';
import { sabRecords } from './peers/sab-ring.mjs';
import { FILL_BYTE } from './lib/bytes.mjs';
import { FRAME_BYTES, fillFrame, stampFrame } from './lib/frames.mjs';
import { eventQueue, sampleIterations, timeIterations } from './lib/loop.mjs';

const peers = fileURLToPath(new URL('./peers/', import.meta.url));
const [kind, ...rest] = process.argv.slice(2);
const option = (name, fallback) => {
  const i = rest.indexOf(`--${name}`);
  return i === -1 ? fallback : rest[i + 1];
};
const size = Number(option('size', 1 << 20));
const mode = option('mode', 'touch');
const plan = {
  warmup: Number(option('warmup', 10)),
  min: Number(option('min', 10)),
  max: Number(option('max', 10_000)),
  budgetMs: Number(option('budget-ms', 2000)),
};
const unique = `${process.pid}-${randomBytes(4).toString('hex')}`;
// Extra Node flags for the consumer processes only, for profiling them
// (e.g. MEMPORT_BENCH_PEER_ARGS='--cpu-prof --trace-gc'; NODE_OPTIONS refuses some flags).
const peerArgs = (process.env.MEMPORT_BENCH_PEER_ARGS ?? '').split(/\s+/).filter(Boolean);

function must(result, what) {
  if (result.isErr()) throw new Error(`${what}: ${result.error.code} ${result.error.message}`);
  return result.value;
}

/**
 * Runs `body(socket, replies)` against a consumer from bench/peers/ connected
 * over a Unix socket (Linux) / named pipe (Windows): the consumer gets the
 * address and `args`; `replies.next()` is its next answer. Tears both down.
 */
async function withSocketPeer(script, args, body) {
  const address = streamAddress();
  const server = net.createServer();
  await new Promise((resolve, reject) => server.once('error', reject).listen(address, resolve));
  const child = spawn(process.execPath, [...peerArgs, join(peers, script), address, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  const socket = await new Promise((resolve, reject) => {
    server.once('connection', resolve);
    child.once('exit', (code) => reject(new Error(`${script} exited (code ${code})`)));
  });
  const result = await body(socket, eventQueue(socket, 'data'));
  socket.end();
  await new Promise((resolve) => child.once('exit', resolve));
  server.close();
  if (process.platform !== 'win32') rmSync(address, { force: true });
  return result;
}

/** Where a Node stream server listens: a Unix socket path or a Windows pipe name. */
function streamAddress() {
  return process.platform === 'win32' ? `\\\\.\\pipe\\memport-bench-${unique}` : join(tmpdir(), `memport-bench-${unique}.sock`);
}

/**
 * Starts `count` peers/memport-stream-peer.mjs processes in `role`, each
 * connected to this process over memport, and runs `body(conns)`. Then
 * closes the connections (a reader's lifeline) and waits for the peers to
 * exit, failing if one did not exit cleanly.
 */
async function withStreamPeers(role, args, count, body) {
  const name = `bench-${unique}`;
  const listener = must(await listen(name), 'listen');
  const children = [];
  const conns = [];
  try {
    for (let i = 0; i < count; i++) {
      const child = spawn(process.execPath, [...peerArgs, join(peers, 'memport-stream-peer.mjs'), name, role, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
      const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
      children.push(exited);
      const early = exited.then((code) => {
        throw new Error(`memport-stream-peer.mjs (${role}) exited before connecting (${code})`);
      });
      conns.push(must(await Promise.race([listener.accept({ timeoutMs: 30_000 }), early]), 'accept'));
      early.catch(() => {});
    }
  } finally {
    listener.close();
  }
  const result = await body(conns);
  for (const conn of conns) conn.close();
  const codes = await Promise.all(children);
  if (codes.some((code) => code !== 0)) throw new Error(`memport-stream-peer.mjs (${role}) exited with ${codes.join(', ')}`);
  return result;
}

/**
 * Checks that this process and the peer read one clock (process.hrtime):
 * each time, the peer's reading must fall between this side's readings
 * before the request and after the answer. Passing every round bounds any
 * offset between the two clocks: returns that bound in nanoseconds (the
 * offsets every round allows, intersected).
 */
async function checkSharedClock(conn, rounds = 50) {
  let low = -Infinity; // the peer's clock minus ours is at least this...
  let high = Infinity; // ...and at most this
  for (let i = 0; i < rounds; i++) {
    const before = process.hrtime.bigint();
    must(await conn.send({ data: 'clock' }), 'send clock');
    const theirs = BigInt(must(await conn.receive(), 'receive clock').data);
    const after = process.hrtime.bigint();
    if (theirs < before || theirs > after) {
      throw new Error(`the peer's process.hrtime (${theirs}) is outside [${before}, ${after}]: the two processes do not share a clock, so publish -> receive latency cannot be measured this way`);
    }
    low = Math.max(low, Number(theirs - after));
    high = Math.min(high, Number(theirs - before));
  }
  return Math.max(-low, high);
}

const benchmarks = {
  async memport() {
    const name = `bench-${unique}`;
    const listener = must(await listen(name), 'listen');
    const child = spawn(process.execPath, [...peerArgs, join(peers, 'memport-consumer.mjs'), name, mode], { stdio: ['ignore', 'inherit', 'inherit'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const conn = must(await listener.accept({ timeoutMs: 30_000 }), 'accept');
    listener.close();
    const region = must(SharedRegion.create(size), 'create');
    fillRegion(region);
    const samples = await timeIterations(async () => {
      must(await conn.send({ regions: [region] }), 'send');
      if (mode !== 'ack') must(await conn.receive(), 'receive reply');
    }, plan);
    must(await conn.send({ data: 'stop' }), 'send stop');
    await exited;
    conn.close();
    region.close();
    return { samples: { main: samples } };
  },

  async 'socket-records'() {
    const count = Number(option('count', 100_000));
    const recordBytes = Number(option('size', 64));
    const samples = await withSocketPeer('records-consumer.mjs', [String(count)], (socket, replies) =>
      sampleIterations(async () => {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < count; i++) {
          // A fresh record per write, as a producer of changing data has.
          const record = Buffer.allocUnsafe(4 + recordBytes);
          record.writeUInt32LE(recordBytes, 0);
          record.fill(i & 0xff, 4);
          if (!socket.write(record)) await new Promise((resolve) => socket.once('drain', resolve));
        }
        await replies.next();
        return Number(process.hrtime.bigint() - t0) / count;
      }, plan),
    );
    return { samples: { main: samples } };
  },

  async 'sab-records'() {
    const count = Number(option('count', 1_000_000));
    const recordBytes = Number(option('size', 64));
    const slots = Number(option('slots', 256));
    const samples = await sampleIterations(async () => (await sabRecords({ count, recordBytes, slots })) / count, plan);
    return { samples: { main: samples } };
  },

  async stream() {
    const payload = Buffer.alloc(size, FILL_BYTE);
    const samples = await withSocketPeer('stream-consumer.mjs', [String(size), mode], (socket, replies) =>
      timeIterations(async () => {
        socket.write(payload);
        await replies.next();
      }, plan),
    );
    return { samples: { main: samples } };
  },

  async 'cp-buffer'() {
    const child = fork(join(peers, 'ipc-child.mjs'), ['buffer', mode], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: peerArgs });
    const replies = eventQueue(child, 'message');
    await replies.next(); // ready
    const payload = Buffer.alloc(size, FILL_BYTE);
    const samples = await timeIterations(async () => {
      child.send(payload);
      await replies.next();
    }, plan);
    child.disconnect();
    return { samples: { main: samples } };
  },

  async ipc() {
    const child = fork(join(peers, 'ipc-child.mjs'), ['echo'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: peerArgs });
    const replies = eventQueue(child, 'message');
    await replies.next();
    // 64 bytes of JSON on the wire (plus the channel's newline delimiter).
    const message = { seq: 0, pad: '' };
    message.pad = 'x'.repeat(64 - JSON.stringify(message).length);
    if (JSON.stringify(message).length !== 64) throw new Error('the IPC message is not 64 bytes of JSON');
    const samples = await timeIterations(async () => {
      child.send(message);
      await replies.next();
    }, plan);
    child.disconnect();
    return { samples: { main: samples } };
  },

  async handle() {
    // A real connected TCP socket (TCP because Windows Node can pass only TCP
    // handles); each round trip passes the server-side end, kept open here.
    const server = net.createServer();
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise((resolve) => server.once('connection', resolve));
    const client = net.connect(server.address().port, '127.0.0.1');
    const socket = await accepted;
    const child = fork(join(peers, 'ipc-child.mjs'), ['handle'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: peerArgs });
    const replies = eventQueue(child, 'message');
    await replies.next();
    const samples = await timeIterations(async () => {
      child.send('socket', socket, { keepOpen: true });
      await replies.next();
    }, plan);
    child.disconnect();
    client.destroy();
    socket.destroy();
    server.close();
    return { samples: { main: samples } };
  },

  async 'notifier-pingpong'() {
    return withStreamPeers('pingpong', [], 1, async ([conn]) => {
      const ping = must(Notifier.create(), 'Notifier.create');
      const pong = must(Notifier.create(), 'Notifier.create');
      must(await conn.send({ notifiers: [ping, pong] }), 'send notifiers');
      const samples = await timeIterations(async () => {
        must(ping.notify(), 'notify');
        must(await pong.wait(), 'wait');
      }, plan);
      must(await conn.send({ data: 'stop' }), 'send stop');
      ping.close();
      pong.close();
      return { samples: { main: samples } };
    });
  },

  async 'stream-records'() {
    const count = Number(option('count', 100_000));
    const recordBytes = Number(option('size', 64));
    const slots = Number(option('slots', 256));
    // --batched: both sides take records without a promise each (tryAcquire,
    // tryNext) and await only when the ring is full or empty.
    const batched = option('batched', '0') === '1';
    return withStreamPeers('records', [String(count), batched ? 'batched' : 'await'], 1, async ([conn]) => {
      const writer = must(Stream.create({ mode: 'queue', recordBytes, records: slots }), 'Stream.create');
      must(await conn.send({ streams: [writer] }), 'send stream');
      const samples = await sampleIterations(async () => {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < count; i++) {
          // As the README's example writes it: acquire() resolves at once while
          // there is room and waits (for the reader's wake-up) when the ring is full.
          let slot;
          if (batched) {
            const now = writer.tryAcquire();
            slot = now.isOk() ? now.value : now.error.code === 'TIMEOUT' ? must(await writer.acquire(), 'acquire') : must(now, 'tryAcquire');
          } else {
            slot = must(await writer.acquire(), 'acquire');
          }
          slot.bytes.fill(slot.seq & 0xff); // a new record each time, as a producer of changing data writes
          must(writer.publish(slot, recordBytes), 'publish');
        }
        must(await conn.receive(), 'receive batch reply');
        return Number(process.hrtime.bigint() - t0) / count;
      }, plan);
      writer.close();
      return { samples: { main: samples } };
    });
  },

  async 'stream-bytes'() {
    const count = Number(option('count', 256));
    const slots = Number(option('slots', 8));
    const payload = Buffer.alloc(size, FILL_BYTE);
    return withStreamPeers('bytes', [String(count)], 1, async ([conn]) => {
      const writer = must(Stream.create({ mode: 'queue', recordBytes: size, records: slots }), 'Stream.create');
      must(await conn.send({ streams: [writer] }), 'send stream');
      const samples = await sampleIterations(async () => {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < count; i++) {
          must(await writer.write(payload), 'write'); // copies in; waits while the ring is full
        }
        const reply = must(await conn.receive(), 'receive batch reply');
        if (reply.data % (count * size) !== 0) throw new Error(`the reader read ${reply.data} bytes, not a multiple of ${count} x ${size}`);
        return Number(process.hrtime.bigint() - t0) / count;
      }, plan);
      writer.close();
      return { samples: { main: samples } };
    });
  },

  async 'stream-frames'() {
    const readers = Number(option('readers', 2));
    const fps = Number(option('fps', 0));
    const window = Number(option('window', 20));
    const warmupFrames = plan.warmup;
    return withStreamPeers('frames', [], readers, async (conns) => {
      let clockBound = 0;
      for (const conn of conns) clockBound = Math.max(clockBound, await checkSharedClock(conn));
      // Each latest reader may hold one frame; the writer needs the newest and one to write.
      const writer = must(Stream.create({ mode: 'latest', recordBytes: FRAME_BYTES, records: readers + 2 }), 'Stream.create');
      for (const conn of conns) must(await conn.send({ streams: [writer], data: { warmupFrames, window } }), 'send stream');
      const written = [];
      let measuring;
      let windowStart;
      let inWindow = 0;
      const interval = fps > 0 ? 1000 / fps : 0;
      const start = performance.now();
      for (let seq = 0; ; seq++) {
        if (seq === warmupFrames) measuring = performance.now();
        if (measuring !== undefined && performance.now() - measuring >= plan.budgetMs && seq - warmupFrames >= plan.min) break;
        if (interval) {
          const due = start + seq * interval;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        } else {
          await new Promise((resolve) => setImmediate(resolve)); // a real producer lets its event loop run
        }
        const slot = must(await writer.acquire(), 'acquire');
        fillFrame(slot.bytes, slot.seq);
        stampFrame(slot.bytes);
        must(writer.publish(slot, FRAME_BYTES), 'publish');
        if (seq < warmupFrames) continue;
        const now = process.hrtime.bigint();
        if (windowStart === undefined) windowStart = now;
        else if (++inWindow === window) {
          written.push(Number(now - windowStart) / window);
          windowStart = now;
          inWindow = 0;
        }
      }
      const published = writer.published;
      writer.close();
      const latencies = [];
      const perFrame = [];
      const received = [];
      for (const conn of conns) {
        for (;;) {
          const { data } = must(await conn.receive(), 'receive results');
          if (data.done) {
            received.push(data.received);
            break;
          }
          latencies.push(...data.latencies);
          perFrame.push(...data.perFrame);
        }
      }
      return { samples: { main: latencies, perFrame, written }, published, received, clockBoundNs: clockBound };
    });
  },

  async 'region-create'() {
    // Timed: create + the first view. Not timed: close(), as in the C baseline
    // (munmap + close happen outside its timed part too), and a turn of the
    // event loop every 32 regions: memport unmaps a closed region only once
    // its ArrayBuffer is collected and the finalizer has run on a later turn,
    // so a loop that never yields keeps every mapping until the process hits
    // vm.max_map_count (65530) — no real program creates regions that way.
    let sink = 0;
    let count = 0;
    const samples = await sampleIterations(async () => {
      if (++count % 32 === 0) await new Promise((resolve) => setImmediate(resolve));
      const t0 = process.hrtime.bigint();
      const region = must(SharedRegion.create(size), 'create');
      sink += region.bytes.length;
      const ns = Number(process.hrtime.bigint() - t0);
      region.close();
      return ns;
    }, plan);
    return { samples: { main: samples }, sink };
  },
};

/** Fills a region with FILL_BYTE in pieces (Node 20 caps one view at 4 GiB). */
function fillRegion(region) {
  const piece = 1 << 30;
  for (let offset = 0; offset < region.size; offset += piece) {
    must(region.view(offset, Math.min(piece, region.size - offset)), 'view').fill(FILL_BYTE);
  }
}

const run = benchmarks[kind];
if (!run) {
  console.error(`unknown benchmark kind '${kind}'; one of: ${Object.keys(benchmarks).join(', ')}`);
  process.exit(2);
}
const result = await run();
// Exit only once the line is flushed: stdout is a pipe on Linux (asynchronous
// in Node), and process.exit() would cut a long sample list short.
const line = `BENCH-RESULT ${JSON.stringify({ kind, size, mode, platform: process.platform, node: process.version, ...result })}\n`;
process.stdout.write(line, () => process.exit(0));
