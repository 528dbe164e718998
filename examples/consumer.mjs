// Consumer: connects to a producer by name, gets its own reader of the
// producer's frame stream, and checks every frame it receives, in place (no
// copy): the checksum in the frame's header must match its pixels, and frame
// numbers must go up. Exits with 1 if any frame was torn.
// Run: node examples/consumer.mjs [--name N] [--seconds S]   (S = 0: until the producer stops)
import { parseArgs } from 'node:util';
import { connect } from 'memport';
import { checksum } from './frame-checksum.mjs';

const { values } = parseArgs({ options: { name: { type: 'string', default: 'memport-demo' }, seconds: { type: 'string', default: '2' } } });
const fail = (e) => {
  console.error(`consumer: ${e.code}: ${e.message}${e.code === 'NOT_FOUND' ? ' (start the producer first: node examples/producer.mjs)' : ''}`);
  process.exit(1);
};

const conn = (await connect(values.name, { timeoutMs: 5000 })).match((c) => c, fail);
const { streams, data } = (await conn.receive({ timeoutMs: 5000 })).match((m) => m, fail);
const [frames] = streams;
if (!frames) fail({ code: 'PROTOCOL', message: 'the producer sent no stream (is it an older producer.mjs?)' });
console.log(`consumer ${process.pid}: reading ${data.width}x${data.height} frames (a ${frames.mode} stream) from producer ${conn.peer.pid}`);
const frameBytes = data.header + data.width * data.height * 4;

let received = 0;
let torn = 0;
let outOfOrder = 0;
let last = 0;
let stoppedHere = false;
const started = performance.now();
const fps = () => (received / ((performance.now() - started) / 1000)).toFixed(1);
const status = setInterval(() => {
  const line = `consumer: frame ${last}, ${received} received, ${fps()} fps, ${torn} torn`;
  if (process.stdout.isTTY) process.stdout.write(`\r${line}   `);
  else console.log(line);
}, 1000);
if (Number(values.seconds) > 0) {
  setTimeout(() => {
    stoppedHere = true;
    frames.close(); // ends the loop below
  }, Number(values.seconds) * 1000);
}

try {
  // Each record is the newest frame this consumer has not seen; it is ours
  // (the producer draws elsewhere) until the loop asks for the next one.
  for await (const record of frames) {
    received++;
    const bytes = record.bytes;
    const header = new DataView(bytes.buffer, bytes.byteOffset, data.header);
    const number = header.getUint32(0, true);
    const [a, b] = bytes.length === frameBytes ? checksum(new Uint32Array(bytes.buffer, bytes.byteOffset + data.header, data.width * data.height)) : [];
    if (a !== header.getUint32(4, true) || b !== header.getUint32(8, true)) {
      torn++;
      console.error(`consumer: frame ${number} (record ${record.seq}) is torn: its pixels do not match its checksum`);
    }
    if (number <= last) {
      outOfOrder++;
      console.error(`consumer: frame ${number} came after frame ${last}`);
    }
    last = number;
  }
} catch (e) {
  // The stream itself failed (e.g. PROTOCOL: the producer broke the stream's rules).
  fail(e);
}
clearInterval(status);
// The reader lived as long as this connection; both can go now.
frames.close();
conn.close();
if (process.stdout.isTTY) process.stdout.write('\n');
if (!stoppedHere) console.log('consumer: the producer ended the stream');
console.log(`consumer: received ${received} frames (${fps()} fps), ${torn} torn, ${outOfOrder} out of order; every frame checked in place`);
process.exitCode = torn > 0 || outOfOrder > 0 ? 1 : 0;
