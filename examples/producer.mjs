// Producer: draws frames into a 'latest' stream and hands every consumer that
// connects by name its own reader of it. Each frame is drawn into a slot the
// stream gives the producer and only then published, so a consumer never sees
// a half-drawn frame. Run: node examples/producer.mjs [--name N] [--seconds S] [--fps F]
import { parseArgs } from 'node:util';
import { Stream, listen } from 'memport';
import { checksum } from './frame-checksum.mjs';

const { values } = parseArgs({
  options: { name: { type: 'string', default: 'memport-demo' }, seconds: { type: 'string', default: '0' }, fps: { type: 'string', default: '30' } },
});
const fail = (e) => {
  console.error(`producer: ${e.code}: ${e.message}`);
  process.exit(1);
};

const WIDTH = 1280;
const HEIGHT = 720;
// Frame header: bytes 0-3 frame number, 4-7 and 8-11 the checksum of the
// pixels (uint32, little-endian). 64 bytes keep the pixels 64-byte aligned.
const HEADER = 64;
const FRAME_BYTES = HEADER + WIDTH * HEIGHT * 4;
const MAX_CONSUMERS = 6;

// 'latest': the producer never waits for a slow consumer; each consumer gets
// the newest frame it has not seen, and the slot it is reading is never
// drawn into. That needs a slot per consumer, the newest frame and one to
// draw: records = MAX_CONSUMERS + 2.
const writer = Stream.create({ mode: 'latest', recordBytes: FRAME_BYTES, records: MAX_CONSUMERS + 2, maxReaders: MAX_CONSUMERS, label: 'frames' }).match((w) => w, fail);
const listener = (await listen(values.name)).match((l) => l, fail);
console.log(`producer ${process.pid}: streaming ${WIDTH}x${HEIGHT} frames (${(FRAME_BYTES / 2 ** 20).toFixed(1)} MiB each) on '${values.name}'`);

let frame = 0;
function draw() {
  // Latest mode never waits for consumers: tryAcquire always has a free slot.
  const slot = writer.tryAcquire().match((s) => s, fail);
  frame++;
  const header = new DataView(slot.bytes.buffer, slot.bytes.byteOffset, HEADER);
  const pixels = new Uint32Array(slot.bytes.buffer, slot.bytes.byteOffset + HEADER, WIDTH * HEIGHT);
  // Every frame differs from the ones before it in every row (the green
  // level changes with the frame, the bands move down), so a frame mixed
  // from two frames cannot match either one's checksum.
  const green = (frame * 5) & 0xff;
  for (let y = 0; y < HEIGHT; y++) {
    const red = (y + frame * 4) & 0xff;
    const blue = (y >> 2) & 0xff;
    pixels.fill((0xff000000 | (blue << 16) | (green << 8) | red) >>> 0, y * WIDTH, (y + 1) * WIDTH);
  }
  const [a, b] = checksum(pixels);
  header.setUint32(0, frame, true);
  header.setUint32(4, a, true);
  header.setUint32(8, b, true);
  // Only now does any consumer see it.
  writer.publish(slot, FRAME_BYTES).match(() => {}, fail);
}
const timer = setInterval(draw, 1000 / Number(values.fps));

// Each consumer is served on its own: nothing in the loop body is awaited, so
// one that connects and never receives cannot hold up the next. Its send ends
// with TIMEOUT (30 s by default: DEFAULT_SEND_TIMEOUT_MS) and its connection
// is closed.
const connections = new Set();
(async () => {
  for await (const next of listener) {
    if (next.isErr()) {
      console.error(`producer: the listener failed: ${next.error.code}: ${next.error.message}`);
      break;
    }
    const conn = next.value;
    connections.add(conn);
    const hangUp = () => {
      connections.delete(conn);
      conn.close();
    };
    console.log(`producer: consumer ${conn.peer.pid} connected; handing it a reader of the frames`);
    conn.send({ streams: [writer], data: { width: WIDTH, height: HEIGHT, header: HEADER } }).match(
      // The reader lives as long as this connection: keep it open until the
      // consumer hangs up (then the stream stops counting that reader).
      () => conn.receive().then(hangUp),
      (e) => {
        console.error(`producer: consumer ${conn.peer.pid}: ${e.code}: ${e.message}`);
        hangUp();
      },
    );
  }
})();

function stop() {
  clearInterval(timer);
  listener.close();
  // Consumers get the frames already published, then the end of the stream.
  writer.close();
  for (const conn of connections) conn.close();
  console.log(`producer: stopped after ${frame} frames`);
}
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
if (Number(values.seconds) > 0) setTimeout(stop, Number(values.seconds) * 1000);
