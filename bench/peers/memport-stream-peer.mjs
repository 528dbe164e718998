// The other process of memport's own stream benchmarks (section 6,
// `measure.mjs notifier-pingpong | stream-records | stream-bytes | stream-frames`).
// Connects to the producer's channel, receives what the role needs in the
// first message, and then:
//   pingpong  gets two Notifiers [ping, pong]: each wake on ping is answered
//             with pong.notify(), until the producer sends 'stop'
//   records   gets a queue StreamReader: for every record checks its first and
//             last byte (both are the record's seq & 0xff: order and no tearing),
//             releases it, and after every <batch> records sends one message
//   bytes     the same, but reads every byte of each record (memchr for a byte
//             the writer never writes, as every "reads every byte" path here)
//   frames    gets a latest StreamReader: for every frame takes the receive time
//             at once, reads the writer's timestamp from the frame's header, reads
//             every byte, and when the stream ends sends its latencies and its
//             per-frame times, in chunks (a message's data is at most 128 KiB)
// Before anything else it answers <clock> requests with its process.hrtime,
// so the producer can check that both processes read one clock.
//   node memport-stream-peer.mjs <channel-name> <role> [<batch>]
import { connect } from '../../dist/index.js';
import { readEveryByte } from '../lib/bytes.mjs';
import { FRAME_HEADER, frameLayout } from '../lib/frames.mjs';

const [name, role, batchText, style] = process.argv.slice(2);
const batch = Number(batchText ?? 0);

function fail(text) {
  console.error(`memport-stream-peer (${role}): ${text}`);
  process.exit(3);
}
function must(result, what) {
  if (result.isErr()) fail(`${what}: ${result.error.code} ${result.error.message}`);
  return result.value;
}

const conn = must(await connect(name, { timeoutMs: 30_000 }), 'connect');
let first;
for (;;) {
  const message = must(await conn.receive(), 'receive');
  if (message.data === 'clock') {
    must(await conn.send({ data: String(process.hrtime.bigint()) }), 'send clock');
    continue;
  }
  first = message;
  break;
}

const roles = {
  async pingpong({ notifiers }) {
    const [ping, pong] = notifiers;
    if (!ping || !pong) fail('expected two notifiers');
    const stopped = conn.receive();
    let stop = false;
    void stopped.then(() => {
      stop = true;
      ping.close(); // ends the pending wait
    });
    while (!stop) {
      const woke = await ping.wait();
      if (woke.isErr()) {
        if (stop) break;
        fail(`wait: ${woke.error.code} ${woke.error.message}`);
      }
      must(pong.notify(), 'notify');
    }
    pong.close();
  },

  async records({ streams }) {
    const reader = streams?.[0];
    if (!reader) fail('expected a stream');
    let n = 0;
    let sink = 0;
    for (;;) {
      // 'batched': take what is ready without a promise each; await only when empty.
      let next = style === 'batched' ? reader.tryNext() : undefined;
      if (next === undefined || (next.isOk() && next.value === undefined)) next = await reader.next();
      if (next.isErr()) {
        if (next.error.code === 'PEER_CLOSED') break;
        fail(`next: ${next.error.code} ${next.error.message}`);
      }
      const record = next.value;
      const bytes = record.bytes;
      const expect = record.seq & 0xff;
      if (bytes[0] !== expect || bytes[bytes.length - 1] !== expect) fail(`record ${record.seq} is torn or out of order`);
      sink ^= bytes[0];
      record.release();
      if (++n === batch) {
        n = 0;
        // Not awaited: the writer's receive() ends its timed batch.
        void conn.send({ data: sink & 1 });
      }
    }
    reader.close();
  },

  async bytes({ streams }) {
    const reader = streams?.[0];
    if (!reader) fail('expected a stream');
    let n = 0;
    let seen = 0;
    for (;;) {
      const next = await reader.next();
      if (next.isErr()) {
        if (next.error.code === 'PEER_CLOSED') break;
        fail(`next: ${next.error.code} ${next.error.message}`);
      }
      const record = next.value;
      seen += readEveryByte(record.bytes);
      record.release();
      if (++n === batch) {
        n = 0;
        void conn.send({ data: seen });
      }
    }
    reader.close();
  },

  async frames({ streams, data }) {
    const reader = streams?.[0];
    if (!reader) fail('expected a stream');
    const { warmupFrames, window } = data;
    const latencies = [];
    const perFrame = [];
    let windowStart;
    let inWindow = 0;
    let lastSeq = -1;
    let received = 0;
    for (;;) {
      const next = await reader.next();
      const now = process.hrtime.bigint();
      if (next.isErr()) {
        if (next.error.code === 'PEER_CLOSED') break;
        fail(`next: ${next.error.code} ${next.error.message}`);
      }
      const record = next.value;
      const frame = frameLayout(record.bytes);
      if (frame.seq !== record.seq >>> 0 || frame.trailerSeq !== frame.seq) fail(`frame ${record.seq} is torn (header ${frame.seq}, trailer ${frame.trailerSeq})`);
      if (record.seq <= lastSeq) fail(`frame ${record.seq} after ${lastSeq}`);
      lastSeq = record.seq;
      // Every byte between the header and the trailer (which were just read).
      readEveryByte(record.bytes.subarray(FRAME_HEADER, record.bytes.length - FRAME_HEADER));
      record.release();
      if (record.seq < warmupFrames) continue;
      received++;
      latencies.push(Number(now - frame.publishedAt));
      if (windowStart === undefined) windowStart = now;
      else if (++inWindow === window) {
        const t = process.hrtime.bigint();
        perFrame.push(Number(t - windowStart) / window);
        windowStart = t;
        inWindow = 0;
      }
    }
    reader.close();
    const CHUNK = 4000;
    for (let i = 0; i < Math.max(latencies.length, perFrame.length); i += CHUNK) {
      must(await conn.send({ data: { latencies: latencies.slice(i, i + CHUNK), perFrame: perFrame.slice(i, i + CHUNK) } }), 'send results');
    }
    must(await conn.send({ data: { done: true, received, lastSeq } }), 'send done');
  },
};

const run = roles[role];
if (!run) fail(`unknown role '${role}'`);
await run(first);
// Wait for the producer to close: a reader's lifeline is its connection.
await conn.receive();
conn.close();
