// Regions beyond the 4 GiB the classic Win32 examples stop at.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion } from '../dist/index.js';
import { GiB, MiB, expectErr, isLinux, unwrap } from './helpers.mjs';

const Large = suite('large regions');

function rssShmemBytes() {
  if (!isLinux) return 0;
  return import('node:fs').then(({ readFileSync }) => {
    const kb = /RssShmem:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return kb ? Number(kb[1]) * 1024 : 0;
  });
}

Large('an 8 GiB region: a byte written and read back at its last page', async () => {
  const size = 8 * GiB;
  const rssBefore = process.memoryUsage().rss;
  const shmemBefore = await rssShmemBytes();
  const region = unwrap(SharedRegion.create(size), 'create(8 GiB)');
  assert.is(region.size, size);

  const lastPage = unwrap(region.view(size - 4096, 4096), 'view(last page)');
  lastPage[4095] = 0x5a;
  lastPage[0] = 0xa5;
  const again = unwrap(region.view(size - 1, 1), 'view(last byte)');
  assert.is(again[0], 0x5a, 'the byte is visible through a second view');
  const past4G = unwrap(region.view(4 * GiB + 3, 5), 'view past 4 GiB');
  past4G[0] = 1;
  assert.is(unwrap(region.view(4 * GiB + 3, 1))[0], 1);

  if (size <= SharedRegion.maxViewLength) {
    assert.is(region.bytes.length, size, 'Node 22+: bytes spans the whole 8 GiB');
    assert.is(region.bytes[size - 1], 0x5a);
  } else {
    // Node 20: one typed array cannot exceed 4 GiB. A typed error, never a truncation.
    let thrown;
    try {
      void region.bytes;
    } catch (e) {
      thrown = e;
    }
    assert.is(thrown?.code, 'UNSUPPORTED');
    expectErr(region.view(0, size), 'UNSUPPORTED', 'view(0, 8 GiB) on Node 20');
  }

  // Pages are committed when touched: three touched pages, not 8 GiB.
  const rssGrowth = process.memoryUsage().rss - rssBefore;
  assert.ok(rssGrowth < 256 * MiB, `RSS grew by ${rssGrowth} bytes`);
  if (isLinux) {
    const shmemGrowth = (await rssShmemBytes()) - shmemBefore;
    assert.ok(shmemGrowth < 16 * MiB, `shared memory RSS grew by ${shmemGrowth} bytes`);
  }

  const ro = unwrap(region.toReadOnly(), 'toReadOnly(8 GiB)');
  assert.is(unwrap(ro.view(size - 1, 1))[0], 0x5a, 'the read-only twin sees the last byte');
  ro.close();
  region.close();
  assert.is(lastPage.length, 0);
});

Large.run();
