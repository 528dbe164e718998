// The consumer side of `measure.mjs stream`: connects to the producer's Unix
// socket / named pipe and, every time a whole payload of <bytes> has arrived,
// answers with one byte.
//   --mode touch: only counts the bytes: the transport's own cost, a lower bound
//                 for a consumer that keeps them (keeping 1 GiB of 64 KiB chunks,
//                 or copying them into one buffer, only adds time)
//   --mode read:  reads every byte of each chunk as it arrives
//   node stream-consumer.mjs <address> <bytes> touch|read
import net from 'node:net';
import { readEveryByte } from '../lib/bytes.mjs';

const [address, sizeText, mode] = process.argv.slice(2);
const size = Number(sizeText);
let received = 0;
const socket = net.connect(address);
socket.on('data', (chunk) => {
  if (mode === 'read') readEveryByte(chunk);
  received += chunk.length;
  if (received > size) throw new Error(`got ${received} bytes, more than the ${size} expected`);
  if (received === size) {
    received = 0;
    socket.write(Buffer.of(1));
  }
});
socket.on('end', () => socket.end());
socket.on('error', (error) => {
  console.error(`stream-consumer: ${error.message}`);
  process.exit(3);
});
