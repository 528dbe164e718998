// Connections read on the JS thread's own event loop (Linux: an fd watch on
// libuv's loop). A worker thread that ends or is terminated with connections
// still open must close those watches itself: Node refuses to close a loop
// that still has handles (the process would abort). Runs on both platforms.
import { Worker } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion, listen } from '../dist/index.js';
import { expectErr, memoryHandles, memoryHandlesAre, settleHandles, unwrap } from './helpers.mjs';

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

// A worker that adopts region tokens on request and reports back. Commands:
// adopt (token) -> its first byte, or the error code; write (index, value);
// read (index) -> value; close; makeToken -> a token for a region it creates
// (writes 77 at 0), for the main thread to adopt.
const regionWorkerCode = `
import { SharedRegion } from ${JSON.stringify(dist)};
import { parentPort } from 'node:worker_threads';
let region;
let own;
parentPort.on('message', (m) => {
  if (m.op === 'adopt') {
    const adopted = SharedRegion.fromWorkerToken(m.token);
    if (adopted.isErr()) return parentPort.postMessage({ error: adopted.error.code, message: adopted.error.message });
    region = adopted.value;
    parentPort.postMessage({ first: region.bytes[0], size: region.size, readOnly: region.readOnly });
  } else if (m.op === 'write') {
    region.bytes[m.index] = m.value;
    parentPort.postMessage({ done: true });
  } else if (m.op === 'read') {
    parentPort.postMessage({ value: region.bytes[m.index] });
  } else if (m.op === 'close') {
    region.close();
    parentPort.postMessage({ closed: region.closed });
  } else if (m.op === 'makeToken') {
    own = SharedRegion.create(4096)._unsafeUnwrap();
    own.bytes[0] = 77;
    parentPort.postMessage({ token: own.forWorker()._unsafeUnwrap() });
  } else if (m.op === 'exit') {
    parentPort.close();
  }
});
`;

// Terminated after each test, so a failed one cannot leave the process waiting for its worker.
const started = [];
Threads.after.each(async () => {
  await Promise.all(started.splice(0).map((worker) => worker.terminate()));
});

function startRegionWorker() {
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(regionWorkerCode)}`));
  started.push(worker);
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  const ask = (message) =>
    new Promise((resolve, reject) => {
      const onError = (e) => reject(e);
      worker.once('error', onError);
      worker.once('message', (reply) => {
        worker.off('error', onError);
        resolve(reply);
      });
      worker.postMessage(message);
    });
  return { worker, exited, ask };
}

Threads('posting bytes.buffer to a worker copies it, and transferring it copies or throws (by Node version): the worker’s writes never reach the region (the documented trap)', async () => {
  const region = unwrap(SharedRegion.create(4096));
  region.bytes[0] = 7;
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads');
     parentPort.on('message', (buffer) => { const bytes = new Uint8Array(buffer); bytes[1] = 9; parentPort.postMessage(bytes[0]); });`,
    { eval: true },
  );
  started.push(worker);
  for (const transfer of [false, true]) {
    const seen = new Promise((resolve) => worker.once('message', resolve));
    try {
      worker.postMessage(region.bytes.buffer, transfer ? [region.bytes.buffer] : []);
    } catch (e) {
      // Node 22 refuses to transfer an external buffer; newer ones copy it.
      assert.ok(transfer, `posting without transfer threw: ${e.message}`);
      assert.match(e.message, /transfer/i);
      continue;
    }
    assert.is(await seen, 7, 'the worker got the bytes as they were');
    assert.is(region.bytes[1], 0, `${transfer ? 'transferred' : 'posted'}: the worker wrote into a copy`);
    assert.is(region.bytes.length, 4096, 'the region keeps its memory');
  }
  region.close();
});

Threads('region.forWorker(): the worker adopts its own handle; writes seen both ways; each side closes on its own; nothing owned twice', async () => {
  await settleHandles();
  const baseline = memoryHandles() ?? 0;
  const { worker, exited, ask } = startRegionWorker();
  try {
    const region = unwrap(SharedRegion.create(8192, { label: 'shared with a worker' }));
    region.bytes[0] = 11;
    const token = unwrap(region.forWorker());
    assert.equal(Object.keys(token).sort(), ['id', 'label', 'memport', 'readOnly', 'size'], 'a small plain object');
    memoryHandlesAre(baseline + 2, 'the token holds a duplicate handle until adopted');
    const adopted = await ask({ op: 'adopt', token });
    assert.equal({ first: adopted.first, size: adopted.size, readOnly: adopted.readOnly }, { first: 11, size: 8192, readOnly: false }, 'the worker sees the region');
    memoryHandlesAre(baseline + 2, 'adoption moved the duplicate to the worker: still one handle per region');
    // The token was taken: a copy of it, or the same one again, owns nothing.
    const again = await ask({ op: 'adopt', token });
    assert.is(again.error, 'NOT_FOUND', `adopting the token twice: ${again.message}`);
    assert.match(again.message, /already adopted/);
    expectErr(SharedRegion.fromWorkerToken(token), 'NOT_FOUND', 'adopting the worker’s token on this thread too');
    memoryHandlesAre(baseline + 2, 'refused adoptions made no handle');

    await ask({ op: 'write', index: 100, value: 42 });
    assert.is(region.bytes[100], 42, 'the worker’s write reached this thread');
    region.bytes[200] = 43;
    assert.is((await ask({ op: 'read', index: 200 })).value, 43, 'this thread’s write reached the worker');

    region.close(); // this side first: the worker's region lives on
    memoryHandlesAre(baseline + 1, 'closing here closed only this thread’s handle');
    await ask({ op: 'write', index: 300, value: 44 });
    assert.is((await ask({ op: 'read', index: 300 })).value, 44, 'the worker’s region works after this one closed');
    assert.equal(await ask({ op: 'close' }), { closed: true });
    memoryHandlesAre(baseline, 'both handles closed, each by its owner');
  } finally {
    worker.postMessage({ op: 'exit' });
    await exited;
  }
});

Threads('a token can go from a worker to the main thread; one that nobody adopted is closed when its thread ends', async () => {
  await settleHandles();
  const baseline = memoryHandles() ?? 0;
  for (const adopt of [true, false]) {
    const { worker, exited, ask } = startRegionWorker();
    const { token } = await ask({ op: 'makeToken' });
    if (adopt) {
      const region = unwrap(SharedRegion.fromWorkerToken(token), 'adopting the worker’s token');
      assert.is(region.bytes[0], 77, 'the main thread sees the worker’s region');
      worker.postMessage({ op: 'exit' });
      await exited;
      assert.is(region.bytes[0], 77, 'the memory outlives the worker that made it');
      region.close();
    } else {
      memoryHandlesAre(baseline + 2, 'the worker’s region and the pending duplicate');
      worker.postMessage({ op: 'exit' });
      await exited;
      await settleHandles();
      expectErr(SharedRegion.fromWorkerToken(token), 'NOT_FOUND', 'a token whose thread has ended');
    }
    await settleHandles();
    memoryHandlesAre(baseline, `${adopt ? 'adopted' : 'never adopted'}: nothing left open`);
  }
});

Threads('a token nobody adopts is dropped after timeoutMs; read-only regions give read-only tokens', async () => {
  await settleHandles();
  const baseline = memoryHandles() ?? 0;
  const region = unwrap(SharedRegion.create(4096));
  const token = unwrap(region.forWorker({ timeoutMs: 20 }));
  memoryHandlesAre(baseline + 2);
  await new Promise((resolve) => setTimeout(resolve, 100));
  memoryHandlesAre(baseline + 1, 'the unadopted duplicate was closed');
  expectErr(SharedRegion.fromWorkerToken(token), 'NOT_FOUND', 'a timed-out token');
  for (const bad of [0, -1, 1.5, 2 ** 31, '10', Infinity]) expectErr(region.forWorker({ timeoutMs: bad }), 'INVALID_ARGUMENT', `timeoutMs ${String(bad)}`);
  const fresh = unwrap(region.forWorker());
  for (const forged of [null, 3, {}, { ...fresh, memport: 'x' }, { ...fresh, size: 8192 }, { ...fresh, readOnly: true }, { ...fresh, id: -1 }, { ...fresh, label: 5 }]) {
    const e = expectErr(SharedRegion.fromWorkerToken(forged), 'INVALID_ARGUMENT', `fromWorkerToken(${JSON.stringify(forged)})`);
    assert.match(e.message, /forWorker/);
  }
  const kept = unwrap(SharedRegion.fromWorkerToken(fresh), 'the real token, after the forged ones were refused');
  region.bytes[1] = 2;
  assert.is(kept.bytes[1], 2);
  kept.close();
  const ro = unwrap(region.toReadOnly());
  const roToken = unwrap(ro.forWorker());
  assert.is(roToken.readOnly, true);
  const { worker, exited, ask } = startRegionWorker();
  try {
    region.bytes[5] = 6;
    assert.equal((await ask({ op: 'adopt', token: roToken })).readOnly, true);
    region.bytes[6] = 7;
    assert.is((await ask({ op: 'read', index: 6 })).value, 7, 'the worker’s read-only region sees the writer’s writes');
    // (After this, the worker's copy-on-write page is private: as for any read-only view.)
    await ask({ op: 'write', index: 5, value: 99 });
    assert.is(region.bytes[5], 6, 'the worker’s read-only region keeps its writes private');
  } finally {
    worker.postMessage({ op: 'exit' });
    await exited;
  }
  ro.close();
  region.close();
  expectErr(region.forWorker(), 'CLOSED');
});

Threads.run();
