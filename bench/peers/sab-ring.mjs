// The in-process ceiling for small records: a producer and a consumer
// worker_thread share a SharedArrayBuffer ring of fixed-size slots; positions
// are Int32 words read and written with Atomics, and a side sleeps in
// Atomics.wait (and is woken by Atomics.notify) only when the ring is full or
// empty. No system call per record while both sides are busy.
//   a module loaded by measure.mjs (kind sab-records); runs as the worker too.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

// Int32 words: 0 written (records published), 1 read (records released),
// 2 consumer sleeping, 3 producer sleeping, 4 go (both start when it is 1).
const WRITTEN = 0;
const READ = 1;
const CONSUMER_SLEEPS = 2;
const PRODUCER_SLEEPS = 3;
const GO = 4;

function produce({ control, data, slots, recordBytes, count }) {
  const words = new Int32Array(control);
  const bytes = new Uint8Array(data);
  for (let seq = 0; seq < count; seq++) {
    while (seq - Atomics.load(words, READ) >= slots) {
      Atomics.store(words, PRODUCER_SLEEPS, 1);
      const read = Atomics.load(words, READ);
      if (seq - read >= slots) Atomics.wait(words, READ, read);
      Atomics.store(words, PRODUCER_SLEEPS, 0);
    }
    const at = (seq % slots) * recordBytes;
    bytes[at] = seq & 0xff;
    bytes[at + recordBytes - 1] = seq & 0xff;
    Atomics.store(words, WRITTEN, seq + 1);
    if (Atomics.load(words, CONSUMER_SLEEPS)) Atomics.notify(words, WRITTEN);
  }
}

function consume({ control, data, slots, recordBytes, count }) {
  const words = new Int32Array(control);
  const bytes = new Uint8Array(data);
  let sink = 0;
  for (let seq = 0; seq < count; seq++) {
    while (Atomics.load(words, WRITTEN) <= seq) {
      Atomics.store(words, CONSUMER_SLEEPS, 1);
      const written = Atomics.load(words, WRITTEN);
      if (written <= seq) Atomics.wait(words, WRITTEN, written);
      Atomics.store(words, CONSUMER_SLEEPS, 0);
    }
    const at = (seq % slots) * recordBytes;
    if (bytes[at] !== (seq & 0xff) || bytes[at + recordBytes - 1] !== (seq & 0xff)) throw new Error(`record ${seq} is torn`);
    sink ^= bytes[at];
    Atomics.store(words, READ, seq + 1);
    if (Atomics.load(words, PRODUCER_SLEEPS)) Atomics.notify(words, READ);
  }
  return sink;
}

if (!isMainThread && workerData?.sabRole) {
  const run = workerData.sabRole === 'produce' ? produce : consume;
  const words = new Int32Array(workerData.control);
  parentPort.postMessage('ready');
  Atomics.wait(words, GO, 0);
  parentPort.postMessage(run(workerData) ?? 0);
}

/**
 * Moves `count` records of `recordBytes` through a ring of `slots`; resolves
 * with the nanoseconds from "go" to the last record read (the workers'
 * start-up is not timed).
 */
export async function sabRecords({ count, recordBytes, slots }) {
  const control = new SharedArrayBuffer(64);
  const data = new SharedArrayBuffer(slots * recordBytes);
  const shared = { control, data, slots, recordBytes, count };
  const url = new URL(import.meta.url);
  const start = (role) => {
    const worker = new Worker(url, { workerData: { ...shared, sabRole: role } });
    const messages = [];
    const waiting = [];
    worker.on('message', (m) => (waiting.length ? waiting.shift().resolve(m) : messages.push(m)));
    worker.on('error', (e) => waiting.splice(0).forEach((w) => w.reject(e)));
    const next = () => (messages.length ? Promise.resolve(messages.shift()) : new Promise((resolve, reject) => waiting.push({ resolve, reject })));
    return { next, worker };
  };
  const workers = [start('consume'), start('produce')];
  await Promise.all(workers.map((w) => w.next()));
  const words = new Int32Array(control);
  const t0 = process.hrtime.bigint();
  Atomics.store(words, GO, 1);
  Atomics.notify(words, GO);
  await Promise.all(workers.map((w) => w.next()));
  const elapsed = Number(process.hrtime.bigint() - t0);
  await Promise.all(workers.map((w) => w.worker.terminate()));
  return elapsed;
}
