// The consumer side of `measure.mjs socket-records`: connects to the
// producer's Unix socket / named pipe, parses length-prefixed records (u32 LE
// length, then that many bytes) as a careful user would (records split across
// chunks are reassembled), reads each record's first byte, and after every
// <batch> records answers with one byte.
//   node records-consumer.mjs <address> <batch>
import net from 'node:net';

const [address, batchText] = process.argv.slice(2);
const batch = Number(batchText);
let pending = Buffer.alloc(0);
let count = 0;
let sink = 0;
const socket = net.connect(address);
socket.on('data', (chunk) => {
  let buffer = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  let offset = 0;
  while (buffer.length - offset >= 4) {
    const length = buffer.readUInt32LE(offset);
    if (buffer.length - offset - 4 < length) break;
    sink ^= buffer[offset + 4];
    offset += 4 + length;
    if (++count === batch) {
      count = 0;
      socket.write(Buffer.of(sink & 1));
    }
  }
  pending = offset === buffer.length ? Buffer.alloc(0) : buffer.subarray(offset);
});
socket.on('end', () => socket.end());
socket.on('error', (error) => {
  console.error(`records-consumer: ${error.message}`);
  process.exit(3);
});
