// node bench/stream.mjs [--quick] — the stream ring's costs (issue 11 §2):
// the native atomics per call, in-process queue records/s (64-byte records),
// the same with the reader in a worker thread, and GB/s for 1 MiB records
// (the writer copies each record in; the reader reads it in place).
// Needs `npm run build` first. Prints one line per metric.
import { Worker } from 'node:worker_threads';
import { SharedRegion, Stream } from '../dist/index.js';
import { streamAtomics } from '../dist/testing.js';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { addonSearchPaths } from '../dist/index.js';

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

// The raw binding (what src/stream.ts calls): the first addon the loader
// would consider that is built for this OS; then the Result-wrapped test hook.
const magic = process.platform === 'win32' ? 'MZ' : '\x7fELF';
const addonPath = addonSearchPaths().find((p) => existsSync(p) && readFileSync(p).subarray(0, 4).toString('latin1').startsWith(magic));
const addon = createRequire(import.meta.url)(addonPath);
const region = SharedRegion.create(64)._unsafeUnwrap();
const view = region.bytes;
perCall('load32', () => addon.atomicLoad32(view, 8));
perCall('store32', (i) => addon.atomicStore32(view, 8, i));
perCall('compareExchange32', (i) => addon.atomicCompareExchange32(view, 8, i, i + 1));
perCall('add32', () => addon.atomicAdd32(view, 8, 1));
perCall('load32 (Result)', () => streamAtomics.load32(view, 8));
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
