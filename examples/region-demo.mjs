// The region demo: an unnamed shared region, zero-copy views, a read-only
// twin the OS enforces, and a clean close. Run: npm run demo
import { SharedRegion } from 'memport';
import { tryWriteEscalation } from 'memport/testing';

const MiB = 1 << 20;
const fail = (e) => {
  console.error(`✘ ${e.code}: ${e.message}`);
  process.exit(1);
};

// 1. A 64 MiB region with no name anywhere: its OS handle is the only key.
const region = SharedRegion.create(64 * MiB, { label: 'demo' }).match((r) => r, fail);
console.log(`created ${region.size / MiB} MiB region (${process.platform === 'linux' ? 'sealed memfd' : 'unnamed section'})`);

// 2. Views are Uint8Arrays over the shared pages — no copies.
const header = region.view(0, 16).match((v) => v, fail);
header.set(new TextEncoder().encode('hello, memport!'));
const frame = region.view(4096, 1920 * 1080 * 4).match((v) => v, fail);
for (let i = 0; i < frame.length; i += 4) frame[i] = i & 0xff;
console.log(`wrote a ${frame.length} byte "frame" at offset 4096; header reads "${new TextDecoder().decode(region.bytes.subarray(0, 15))}"`);

// 3. A read-only twin: the OS refuses every way to write through it.
const ro = region.toReadOnly().match((r) => r, fail);
const attempts = tryWriteEscalation(ro).match((a) => a, fail);
const allowed = Object.keys(attempts).filter((path) => attempts[path]);
console.log(`read-only twin: the OS refused ${Object.keys(attempts).length - allowed.length} of ${Object.keys(attempts).length} ways to regain write access${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`);
ro.bytes[0] = 0x21; // a JS write lands in a private copy-on-write page (that page stops tracking the region)
console.log(`writing into the read-only view left the shared byte as '${String.fromCharCode(region.bytes[0])}'`);
frame[1] = 0x45; // the creator keeps writing, and the twin sees it on every page it never wrote to
console.log(`a later write by the creator is visible through the twin: 0x${ro.bytes[4097].toString(16)}`);

// 4. Errors are values, never exceptions.
const bad = region.view(region.size - 1, 2);
console.log(`an out-of-range view is ${bad.isErr() ? `Err(${bad.error.code})` : 'Ok?!'}`);

// 5. close() detaches every view handed out: stale views are empty, not dangling.
region.close();
ro.close();
console.log(`after close: header view length ${header.length}, frame view length ${frame.length}`);
console.log('✔ demo finished');
