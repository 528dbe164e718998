// node bench/stream.mjs [--quick] — the stream ring's costs (issue 11 §2):
// JavaScript's Atomics per call on a region's memory (what the stream's shared
// words use), in-process queue records/s (64-byte records), the same with the
// reader in a worker thread, and GB/s for 1 MiB records (the writer copies
// each record in; the reader reads it in place).
// Needs `npm run build` first. Prints one line per metric.
import { Worker } from 'node:worker_threads';
import { SharedRegion, Stream } from '../dist/index.js';

const quick = process.argv.includes('--quick');
const seconds = quick ? 0.3 : 1.5;

function perCall(name, fn) {
  const n = quick ? 200_000 : 2_000_000;
  for (let i = 0; i < 10_000; i++) fn(i);
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  const ns = Number(process.hrtime.bigint() - t) / n;
  console.log(`atomics ${name.padEnd(18)} ${ns.toFixed(1)} ns/call`);
}

// A region's memory is an external, non-shared ArrayBuffer: Atomics on it are
// the same instructions as on a SharedArrayBuffer (src/stream/layout.ts, words()).
const region = SharedRegion.create(64)._unsafeUnwrap();
const words = new Uint32Array(region.bytes.buffer, region.bytes.byteOffset, 16);
perCall('load', () => Atomics.load(words, 2));
perCall('store', (i) => Atomics.store(words, 2, i));
perCall('compareExchange', (i) => Atomics.compareExchange(words, 2, i, i + 1));
region.close();

/** In one thread: fill the ring without waiting, then drain it; repeat. */
async function inProcess(recordBytes, records, label) {
  const writer = Stream.create({ mode: 'queue', recordBytes, records })._unsafeUnwrap();
  const reader = Stream.openReader(writer.addReader()._unsafeUnwrap())._unsafeUnwrap();
  const payload = new Uint8Array(recordBytes).fill(7);
  let count = 0;
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < records; i++) writer.tryWrite(payload)._unsafeUnwrap();
    for (let i = 0; i < records; i++) {
      const r = await reader.next();
      r._unsafeUnwrap().release();
    }
    count += records;
  }
  const s = (performance.now() - start) / 1000;
  reader.close();
  writer.close();
  console.log(`${label.padEnd(44)} ${(count / s).toFixed(0).padStart(10)} records/s  ${((count * recordBytes) / s / 1e9).toFixed(2)} GB/s`);
}

/** Writer here, reader in a worker thread: real concurrency and wake-ups. */
async function crossThread(recordBytes, records, label) {
  const writer = Stream.create({ mode: 'queue', recordBytes, records })._unsafeUnwrap();
  const bundle = Stream.readerBundleForWorker(writer.addReader()._unsafeUnwrap())._unsafeUnwrap();
  const code = `
    import { Stream } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
    import { parentPort, workerData } from 'node:worker_threads';
    (async () => {
      const r = Stream.openReader(workerData)._unsafeUnwrap();
      let n = 0;
      for (;;) { const x = await r.next(); if (x.isErr()) break; x.value.release(); n++; }
      r.close();
      parentPort.postMessage(n);
    })();`;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), { workerData: bundle });
  const done = new Promise((resolve) => worker.once('message', resolve));
  const payload = new Uint8Array(recordBytes).fill(7);
  let count = 0;
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) {
      if (writer.tryWrite(payload).isErr()) (await writer.write(payload))._unsafeUnwrap();
    }
    count += 1000;
  }
  writer.close();
  const read = await done;
  const s = (performance.now() - start) / 1000;
  await worker.terminate();
  console.log(`${label.padEnd(44)} ${(count / s).toFixed(0).padStart(10)} records/s  ${((count * recordBytes) / s / 1e9).toFixed(2)} GB/s  (read ${read})`);
}

await inProcess(64, 8, 'queue 64 B x 8 slots, one thread');
await inProcess(64, 256, 'queue 64 B x 256 slots, one thread');
await inProcess(1 << 20, 8, 'queue 1 MiB x 8 slots, one thread');
await crossThread(64, 256, 'queue 64 B x 256 slots, reader in a worker');
await crossThread(1 << 20, 8, 'queue 1 MiB x 8 slots, reader in a worker');
