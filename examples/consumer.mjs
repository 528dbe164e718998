// Consumer: connects to a producer by name, maps its frame buffer (no copy)
// and reads it as it changes. Run: node examples/consumer.mjs [--name N] [--seconds S]
import { parseArgs } from 'node:util';
import { connect } from 'memport';

const { values } = parseArgs({ options: { name: { type: 'string', default: 'memport-demo' }, seconds: { type: 'string', default: '2' } } });
const fail = (e) => {
  console.error(`consumer: ${e.code}: ${e.message}${e.code === 'NOT_FOUND' ? ' (start the producer first: node examples/producer.mjs)' : ''}`);
  process.exit(1);
};

const conn = (await connect(values.name, { timeoutMs: 5000 })).match((c) => c, fail);
const { regions, data } = (await conn.receive({ timeoutMs: 5000 })).match((m) => m, fail);
const [frames] = regions;
console.log(`consumer ${process.pid}: got a ${data.width}x${data.height} ${frames.readOnly ? 'read-only' : 'writable'} frame buffer from producer ${conn.peer.pid}`);
conn.close();

const header = new DataView(frames.bytes.buffer, frames.bytes.byteOffset, data.header);
const pixels = frames.view(data.header).match((v) => v, fail);
let last = -1n;
let seen = 0;
let ticks = 0;
const timer = setInterval(() => {
  const frame = header.getBigUint64(0, true);
  if (frame !== last) {
    seen++;
    last = frame;
  }
  // Reading the middle pixel straight out of the producer's memory.
  const mid = (data.width * (data.height / 2) + data.width / 2) * 4;
  const status = `consumer: frame ${frame}, middle pixel rgb(${pixels[mid + 2]}, ${pixels[mid + 1]}, ${pixels[mid]})`;
  if (process.stdout.isTTY) process.stdout.write(`\r${status}   `);
  else if (ticks++ % 5 === 0) console.log(status);
}, 100);
setTimeout(() => {
  clearInterval(timer);
  pixels[0] = 1; // a write into a read-only share stays private to this process (copy-on-write)
  console.log(`${process.stdout.isTTY ? '\n' : ''}consumer: saw ${seen} different frames without copying a byte; done`);
  frames.close();
}, Number(values.seconds) * 1000);
