// Nothing is leaked over many create/close cycles: fds on Linux, handles on
// Windows (a slot probe under Wine), and mappings.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion } from '../dist/index.js';
import { assertNoHandleLeak, handleCensus, handleTable, isLinux, memportMappings, settle, underWine, unwrap } from './helpers.mjs';

const Leaks = suite('leaks');

// The runtime allocates some handles once, on first heavy use (GC helper
// threads, the thread pool); a warm-up round of the same workload keeps those
// out of the baseline. A per-cycle leak would still show as thousands.
async function measured(what, cycles, workload) {
  for (let i = 0; i < 200; i++) workload(i);
  await settle();
  const tableBefore = underWine ? handleTable() : undefined;
  const before = handleCensus();
  for (let i = 0; i < cycles; i++) workload(i);
  await settle();
  assertNoHandleLeak(before, what, tableBefore);
  if (isLinux) assert.is(await memportMappings(), 0, 'every mapping was released');
}

Leaks('10,000 create/view/close cycles leave handle counts at baseline', async () => {
  await measured('10,000 create/close cycles', 10_000, (i) => {
    const region = unwrap(SharedRegion.create(4096 + (i % 7)));
    region.bytes[i % 4096] = i & 0xff;
    unwrap(region.view(i % 100, 10));
    region.close();
  });
});

Leaks('1,000 cycles with read-only twins and failures leave handle counts at baseline', async () => {
  await measured('1,000 read-only twin cycles', 1_000, (i) => {
    const region = unwrap(SharedRegion.create(8192));
    const ro = unwrap(region.toReadOnly());
    ro.bytes[0] = 1; // copy-on-write page
    region.view(9000, 1); // Err: out of range
    if (i % 2) region.close(), ro.close();
    else ro.close(), region.close();
    region.view(0, 1); // Err: closed
  });
});

Leaks('regions dropped without close() are released by the garbage collector', async () => {
  if (!globalThis.gc) return; // the runner passes --expose-gc
  await settle();
  const tableBefore = underWine ? handleTable() : undefined;
  const before = handleCensus();
  for (let i = 0; i < 1_000; i++) unwrap(SharedRegion.create(4096)).bytes[0] = 1;
  await settle();
  await new Promise((r) => setTimeout(r, 50));
  await settle();
  assertNoHandleLeak(before, 'regions left to the GC', tableBefore);
  if (isLinux) assert.is(await memportMappings(), 0, 'every mapping was released');
});

Leaks.run();

const Limits = suite('limits');

Limits('Linux: a synchronous loop past the kernel mapping limit gets OUT_OF_MEMORY, never a crash', async () => {
  if (!isLinux) return; // Windows has no per-process limit on views like vm.max_map_count
  const { readFileSync } = await import('node:fs');
  const maxMapCount = Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8'));
  let refused = 0;
  let firstRefusal;
  // Closed regions are released on a later event-loop turn; this loop never yields.
  for (let i = 0; i < maxMapCount; i++) {
    const r = SharedRegion.create(4096);
    if (r.isErr()) {
      refused++;
      firstRefusal ??= r.error;
      continue;
    }
    r.value.bytes[0] = 1;
    r.value.close();
  }
  assert.ok(refused > 0, 'the budget was reached');
  assert.is(firstRefusal.code, 'OUT_OF_MEMORY');
  assert.match(firstRefusal.message, /let the event loop run/);
  await settle();
  await new Promise((r) => setTimeout(r, 50));
  await settle();
  const again = unwrap(SharedRegion.create(4096), 'create after yielding');
  again.close();
});

Limits('Linux: close() returns the memory at once, before any garbage collection', async () => {
  if (!isLinux) return;
  const { readFileSync } = await import('node:fs');
  const shmem = () => Number(/RssShmem:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
  const before = shmem();
  const region = unwrap(SharedRegion.create(64 << 20));
  region.bytes.fill(7);
  const view = region.bytes;
  assert.ok(shmem() - before >= 60 << 20, 'touching 64 MiB shows in shared RSS');
  region.close(); // no await, no GC: the view object is still referenced here
  assert.ok(shmem() - before < 4 << 20, `shared RSS after close: +${shmem() - before} bytes`);
  assert.is(view.length, 0);
});

Limits.run();
