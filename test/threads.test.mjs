// Connections read on the JS thread's own event loop (Linux: an fd watch on
// libuv's loop). A worker thread that ends or is terminated with connections
// still open must close those watches itself: Node refuses to close a loop
// that still has handles (the process would abort). Runs on both platforms.
import { Worker } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion, listen } from '../dist/index.js';
import { unwrap } from './helpers.mjs';

const dist = new URL('../dist/index.js', import.meta.url).href;
// No top-level await in the worker: V8 aborts ("Check failed: (location_) !=
// nullptr") when a worker is terminated while a module's top-level await is
// still settling (nodejs/node#42501; seen with Windows Node 22 under Wine and
// reproduced there with no memport code at all). An async function is not
// module evaluation, so terminating it is safe.
const workerCode = (name, linger) => `
import { connect } from ${JSON.stringify(dist)};
import { parentPort } from 'node:worker_threads';
(async () => {
  const conn = (await connect(${JSON.stringify(name)}, { timeoutMs: 15000 }))._unsafeUnwrap();
  const first = (await conn.receive({ timeoutMs: 15000 }))._unsafeUnwrap();
  parentPort.postMessage(first.regions[0].bytes[0]);
  ${linger ? '' : 'await conn.receive();'}
})();
`;

const Threads = suite('worker threads');

Threads('workers that end or are terminated with open connections leave the process healthy', async () => {
  const name = `test-threads-${process.pid}-${randomBytes(4).toString('hex')}`;
  const listener = unwrap(await listen(name));
  try {
    for (let i = 0; i < 6; i++) {
      const terminate = i % 2 === 1;
      const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(workerCode(name, terminate))}`));
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      // Listening before sending: the worker may report before send() resolves.
      const report = new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
      const conn = unwrap(await listener.accept({ timeoutMs: 15_000 }), `accept worker ${i}`);
      const region = unwrap(SharedRegion.create(4096));
      region.bytes[0] = 40 + i;
      unwrap(await conn.send({ regions: [region] }), `send to worker ${i}`);
      const seen = await report;
      assert.is(seen, 40 + i, `worker ${i} read the region`);
      if (terminate) {
        await worker.terminate(); // its connection is still open
      } else {
        conn.close(); // the worker's receive() ends with PEER_CLOSED and it finishes
      }
      await exited;
      conn.close();
      region.close();
    }
  } finally {
    listener.close();
  }
});

Threads.run();
