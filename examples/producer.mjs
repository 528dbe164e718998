// Producer: shares a read-only frame buffer with every consumer that connects
// by name, and keeps drawing into it. Run: node examples/producer.mjs [--name N] [--seconds S]
import { parseArgs } from 'node:util';
import { SharedRegion, listen } from 'memport';

const { values } = parseArgs({ options: { name: { type: 'string', default: 'memport-demo' }, seconds: { type: 'string', default: '0' } } });
const fail = (e) => {
  console.error(`producer: ${e.code}: ${e.message}`);
  process.exit(1);
};

const WIDTH = 1280;
const HEIGHT = 720;
const HEADER = 64; // bytes 0-7: frame number (little-endian u64), 8-15: checksum of the pixels
const frameBytes = WIDTH * HEIGHT * 4;
const region = SharedRegion.create(HEADER + frameBytes, { label: 'frames' }).match((r) => r, fail);
// Consumers get a handle the OS will not let them write through.
const readOnly = region.toReadOnly().match((r) => r, fail);
const header = new DataView(region.bytes.buffer, region.bytes.byteOffset, HEADER);
const pixels = region.view(HEADER, frameBytes).match((v) => v, fail);
const pixels32 = new Uint32Array(pixels.buffer, pixels.byteOffset, pixels.length / 4);

const listener = (await listen(values.name)).match((l) => l, fail);
console.log(`producer ${process.pid}: sharing a ${WIDTH}x${HEIGHT} frame buffer (${(region.size / 2 ** 20).toFixed(1)} MiB) on '${values.name}'`);

let frame = 0;
function draw() {
  frame++;
  const shade = (frame * 5) & 0xff;
  pixels32.fill(0xff000000 | (shade << 16) | ((255 - shade) << 8));
  header.setBigUint64(8, BigInt(shade), true);
  header.setBigUint64(0, BigInt(frame), true); // written last: consumers read the frame number first
}
const timer = setInterval(draw, 1000 / 30);

// Each consumer is served on its own: nothing in the loop body is awaited, so
// one that connects and never receives cannot hold up the next. Its send ends
// with TIMEOUT (30 s by default: DEFAULT_SEND_TIMEOUT_MS) and its connection
// is closed.
(async () => {
  for await (const next of listener) {
    if (next.isErr()) {
      console.error(`producer: the listener failed: ${next.error.code}: ${next.error.message}`);
      break;
    }
    const conn = next.value;
    console.log(`producer: consumer ${conn.peer.pid} connected; handing it the read-only frame buffer`);
    conn.send({ regions: [readOnly], data: { width: WIDTH, height: HEIGHT, header: HEADER } }).match(
      // The consumer owns its copy now; the connection is not needed once it hangs up.
      () => conn.receive().then(() => conn.close()),
      (e) => {
        console.error(`producer: consumer ${conn.peer.pid}: ${e.code}: ${e.message}`);
        conn.close();
      },
    );
  }
})();

function stop() {
  clearInterval(timer);
  listener.close();
  readOnly.close();
  region.close();
  console.log(`producer: stopped after ${frame} frames`);
}
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
if (Number(values.seconds) > 0) setTimeout(stop, Number(values.seconds) * 1000);
