// The child side of the child_process benchmarks in measure.mjs. It announces
// itself with one 'ready' message, then for every message:
//   echo            sends the same message back
//   handle          closes the handle that came with the message, replies
//   buffer touch    replies at once (the Buffer has arrived, deserialised)
//   buffer read     reads every byte of the Buffer, then replies
//   node ipc-child.mjs echo|handle|buffer [touch|read]
import { readEveryByte } from '../lib/bytes.mjs';

const [role, mode] = process.argv.slice(2);
const handlers = {
  echo: (message) => process.send(message),
  handle: (_message, handle) => {
    handle?.destroy();
    process.send(handle ? 1 : 0);
  },
  buffer: (message) => {
    const bytes = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
    process.send(mode === 'read' ? readEveryByte(bytes) : bytes[0]);
  },
};
const handler = handlers[role];
if (!handler) {
  console.error(`ipc-child: unknown role '${role}'`);
  process.exit(2);
}
process.on('message', handler);
process.on('disconnect', () => process.exit(0));
process.send('ready');
