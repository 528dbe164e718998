// The consumer side of `measure.mjs memport`: connects to the producer's
// channel and, for every region it receives, does what --mode says, closes
// the region (so its mapping can go) and, unless the mode is 'ack', replies.
//   node memport-consumer.mjs <channel-name> touch|read|ack
import { connect } from '../../dist/index.js';
import { readEveryByte } from '../lib/bytes.mjs';

const [name, mode] = process.argv.slice(2);
const connected = await connect(name, { timeoutMs: 30_000 });
if (connected.isErr()) {
  console.error(`memport-consumer: ${connected.error.code} ${connected.error.message}`);
  process.exit(3);
}
const conn = connected.value;
for (;;) {
  const received = await conn.receive();
  if (received.isErr() || received.value.data === 'stop') break;
  let seen = 0;
  for (const region of received.value.regions) {
    seen += mode === 'read' ? readEveryByte(region.bytes) : region.bytes[0];
    region.close();
  }
  // Not awaited: the producer's receive() is the end of its timed round trip,
  // and this send's own ACK needs nothing more from us.
  if (mode !== 'ack') void conn.send({ data: seen });
}
conn.close();
