// The receive side keeps the mappings of regions it was sent
// (native/received_mappings.h): memory that arrives again is not mapped
// afresh. These tests check what must not change because of it — every
// receive sees the current shared bytes, close() still detaches views, a
// read-only mapping never serves a writable region or hides the shared bytes
// behind private writes — and that the cache is bounded. Windows keeps no
// mappings yet, so there only the semantics are checked.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { listen } from '../dist/index.js';
import { receivedMappings, setReceivedMappingLimits, trimReceivedMappings } from '../dist/testing.js';
import { assertCensusUnchanged, handleCensus, handleTable, isLinux, memportMappings, settle, settleHandles, underWine, unwrap } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PEER = join(here, 'fixtures', 'peer.mjs');
const DEFAULT_ENTRIES = 64;
const DEFAULT_BYTES = 2 ** 31;

/** A sender peer and its connection; `send` and `peek` drive it. */
async function startSender() {
  const name = `test-cache-${process.pid}-${randomBytes(4).toString('hex')}`;
  const listener = unwrap(await listen(name));
  const child = spawn(process.execPath, [PEER, 'sender', name], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const conn = unwrap(await listener.accept({ timeoutMs: 15_000 }), 'accept the sender');
  listener.close();
  return {
    /** Asks for region `id` (after writing `value` into its first byte) and returns the received region. */
    async send(id, options = {}) {
      unwrap(await conn.send({ data: { op: 'send', id, ...options } }));
      const { regions } = unwrap(await conn.receive({ timeoutMs: 15_000 }), `receive region ${id}`);
      assert.is(regions.length, 1);
      return regions[0];
    },
    /** The first byte of region `id` as the sender sees it. */
    async peek(id) {
      unwrap(await conn.send({ data: { op: 'peek', id } }));
      return unwrap(await conn.receive({ timeoutMs: 15_000 }), 'peek').data;
    },
    async stop() {
      unwrap(await conn.send({ data: { op: 'stop' } }));
      await exited;
      conn.close();
    },
    /** Teardown that also works after a failed assertion. */
    kill() {
      child.kill();
      conn.close();
    },
  };
}

/** Runs `body` with a sender peer, which is killed whatever happens. */
async function withSender(body) {
  const peer = await startSender();
  try {
    await body(peer);
    await peer.stop();
  } finally {
    peer.kill();
  }
}

const fresh = () => {
  trimReceivedMappings(0);
  setReceivedMappingLimits(DEFAULT_ENTRIES, DEFAULT_BYTES);
  return receivedMappings();
};
const pagemapScan = () => {
  const [major, minor] = release().split('.').map(Number);
  return isLinux && (major > 6 || (major === 6 && minor >= 7));
};

const Cache = suite('received mappings');

Cache.after.each(() => {
  setReceivedMappingLimits(DEFAULT_ENTRIES, DEFAULT_BYTES);
  trimReceivedMappings(0);
});

Cache('a region sent again reuses the mapping and shows the current shared bytes', async () => {
  const start = fresh();
  await withSender(async (peer) => {
    for (let i = 1; i <= 5; i++) {
      const region = await peer.send('a', { value: 10 + i });
      assert.is(region.bytes[0], 10 + i, `receive ${i} sees the sender's latest write`);
      region.bytes[0] = 100 + i; // writable: must reach the sender
      region.close();
      assert.is(await peer.peek('a'), 100 + i, `the receiver's write ${i} reached the sender`);
    }
    const stats = receivedMappings();
    if (isLinux) {
      assert.is(stats.misses - start.misses, 1, 'mapped once');
      assert.is(stats.hits - start.hits, 4, 'reused four times');
      assert.is(stats.entries, 1);
      assert.is(await memportMappings(), 1, 'one mapping is kept after close');
    } else {
      assert.is(stats.entries, 0, 'Windows keeps no mappings');
    }
  });
  trimReceivedMappings(0);
  assert.is(receivedMappings().entries, 0, 'trimmed');
  await settle();
  if (isLinux) assert.is(await memportMappings(), 0, 'and unmapped once trimmed');
});

Cache('close() still detaches the views of a region whose mapping is kept; open twins stay usable', async () => {
  fresh();
  await withSender(async (peer) => {
    const first = await peer.send('b', { value: 1 });
    const second = await peer.send('b', { value: 2 }); // the same memory, both open
    const firstView = first.bytes;
    const secondView = second.bytes;
    assert.is(firstView[0], 2, 'both see the shared bytes');
    first.close();
    assert.is(firstView.length, 0, "the closed region's view is detached");
    assert.is(secondView.length, 4096, "the other region's view is untouched");
    secondView[0] = 77;
    assert.is(await peer.peek('b'), 77, 'and still writes the shared memory');
    second.close();
    assert.is(secondView.length, 0);
    const third = await peer.send('b', { value: 3 });
    assert.is(third.bytes[0], 3, 'a later receive gets a working view again');
    assert.is(firstView.length, 0, 'old views stay detached');
    third.close();
  });
});

Cache('read-only and writable receives of the same memory never share a mapping', async () => {
  fresh();
  await withSender(async (peer) => {
    const writable = await peer.send('c', { value: 5 });
    writable.close(); // kept: a writable entry for this memory
    const ro = await peer.send('c', { readOnly: true }); // now only read-only twins may leave the sender
    assert.ok(ro.readOnly);
    assert.is(ro.bytes[0], 5);
    ro.bytes[0] = 0xee; // private copy-on-write page
    assert.is(await peer.peek('c'), 5, "the read-only region's write did not reach the shared memory");
    ro.close();
    if (isLinux) assert.is(receivedMappings().entries, 2, 'one entry per mode');
  });
});

Cache('a read-only mapping written into is not reused: the next receive sees the shared bytes', async () => {
  const start = fresh();
  await withSender(async (peer) => {
    const clean = await peer.send('d', { value: 1, readOnly: true });
    assert.is(clean.bytes[0], 1);
    clean.close();
    const again = await peer.send('d', { value: 2, readOnly: true });
    assert.is(again.bytes[0], 2, 'a clean read-only mapping shows the current shared bytes');
    again.bytes[0] = 0xee; // a private page now hides the shared one in this mapping
    again.close();
    const third = await peer.send('d', { value: 3, readOnly: true });
    assert.is(third.bytes[0], 3, 'the written mapping was not handed out again');
    third.close();
    if (pagemapScan()) {
      const stats = receivedMappings();
      assert.is(stats.hits - start.hits, 1, 'only the clean mapping was reused');
      assert.is(stats.misses - start.misses, 2);
    }
    // Two open read-only regions of the same memory must not share private pages.
    const one = await peer.send('d', { value: 4, readOnly: true });
    const two = await peer.send('d', { readOnly: true });
    one.bytes[0] = 0xaa;
    assert.is(two.bytes[0], 4, "one read-only region's private write is invisible to the other");
    one.close();
    two.close();
  });
});

Cache('the cache is bounded by entries and bytes, and keeps no fds', async () => {
  fresh();
  setReceivedMappingLimits(2, DEFAULT_BYTES);
  await withSender(async (peer) => {
    // A warm-up round first: the runtime allocates some handles on first use
    // (see region-leaks.test.mjs), which must not count as leaked.
    for (let i = 0; i < 3; i++) (await peer.send(`warm${i}`, { value: i })).close();
    await settleHandles();
    const tableBefore = underWine ? handleTable() : undefined;
    const before = handleCensus();
    for (let i = 0; i < 6; i++) (await peer.send(`e${i}`, { value: i })).close();
    if (isLinux) {
      assert.is(receivedMappings().entries, 2, 'at most two entries');
      assert.is(await memportMappings(), 2, 'the evicted ones are unmapped');
    }
    assert.ok(receivedMappings().entries <= 2);
    setReceivedMappingLimits(DEFAULT_ENTRIES, 8192);
    assert.ok(receivedMappings().bytes <= 8192, 'lowering the byte limit evicts');
    (await peer.send('big', { size: 16384, value: 1 })).close();
    assert.ok(receivedMappings().bytes <= 8192, 'a region over the byte limit is not kept');
    await settleHandles();
    assertCensusUnchanged(before, 'received regions whose mappings are kept', tableBefore);
    trimReceivedMappings(0);
    await settle();
    if (isLinux) assert.is(await memportMappings(), 0, 'nothing mapped after a trim');
  });
});

Cache('kept mappings of closed regions are retired when idle', async () => {
  fresh();
  await withSender(async (peer) => {
    (await peer.send('f', { value: 1 })).close();
    const kept = receivedMappings().entries;
    trimReceivedMappings(60_000);
    assert.is(receivedMappings().entries, kept, 'not yet idle long enough');
    trimReceivedMappings(0);
    assert.is(receivedMappings().entries, 0);
    const open = await peer.send('f', { value: 2 });
    trimReceivedMappings(0);
    assert.is(open.bytes[0], 2, 'a mapping in use is never trimmed');
    if (isLinux) assert.is(receivedMappings().entries, 1);
    open.close();
  });
});

Cache.run();
