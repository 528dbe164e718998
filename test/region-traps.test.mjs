// Traps a first program falls into with regions (issue 10, section 4): one OS
// handle owned by two regions, and typed arrays over a view's whole-mapping
// `.buffer`. The worker-thread trap is in threads.test.mjs. Runs on Linux and
// under Wine.
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion, connect, listen } from '../dist/index.js';
import { expectErr, handleCensus, isLinux, isWindows, memoryHandles, memoryHandlesAre, settleHandles, underWine, unwrap } from './helpers.mjs';

const Ownership = suite('one handle, one owner');

Ownership('fromHandle of a handle a live region owns is ALREADY_EXISTS, and that region keeps working', async () => {
  const name = `traps-owned-${process.pid}-${randomBytes(4).toString('hex')}`;
  const listener = unwrap(await listen(name));
  const created = unwrap(SharedRegion.create(4096));
  // Adopted and sent before the read-only twin exists: after it, no new
  // writable handle to this memory may be made.
  const adopted = unwrap(SharedRegion.fromWorkerToken(unwrap(created.forWorker())));
  const namedName = isWindows ? `Local\\memport-traps-${process.pid}-${randomBytes(4).toString('hex')}` : `memport-traps-${process.pid}-${randomBytes(4).toString('hex')}`;
  const named = unwrap(SharedRegion.createNamed(namedName, 4096));
  if (isLinux) unwrap(SharedRegion.unlinkNamed(namedName));
  const client = unwrap(await connect(name));
  const server = unwrap(await listener.accept());
  const [sent, received] = await Promise.all([client.send({ regions: [created] }), server.receive()]);
  unwrap(sent);
  const arrived = unwrap(received).regions[0];
  const twin = unwrap(created.toReadOnly());
  expectErr(created.forWorker(), 'ACCESS_DENIED', 'a writable token once a read-only twin exists');
  const owners = { created, 'its read-only twin': twin, 'a named region': named, 'a region adopted from a worker token': adopted, 'a received region': arrived };
  const before = memoryHandles() ?? 0;
  for (const [what, region] of Object.entries(owners)) {
    const e = expectErr(SharedRegion.fromHandle(region.osHandle, { size: region.size, readOnly: region.readOnly }), 'ALREADY_EXISTS', `fromHandle(${what}.osHandle)`);
    assert.match(e.message, /already belongs to a live memport region/, what);
    assert.match(e.message, /use that region/, `${what}: says what to do instead`);
    assert.match(e.message, /forWorker/, `${what}: names the way to a second handle`);
  }
  memoryHandlesAre(before, 'no handle was adopted, none closed');
  created.bytes[0] = 42;
  for (const [what, region] of Object.entries(owners)) {
    if (region === named) continue;
    assert.is(region.bytes[0], 42, `${what} still sees the memory`);
    // toReadOnly needs the OS handle (a read-only region makes a read-only one).
    unwrap(region.toReadOnly(), `${what}.toReadOnly(): its handle is still open`).close();
  }
  for (const region of Object.values(owners)) region.close();
  client.close();
  server.close();
  listener.close();
});

Ownership('a refused fromHandle cannot later close the handle its number is reused for', async () => {
  // Before the fix: the second owner's close() closed whatever had meanwhile
  // been given the first region's number.
  const dir = mkdtempSync(join(tmpdir(), 'memport-traps-'));
  try {
    for (let round = 0; round < 3; round++) {
      const first = unwrap(SharedRegion.create(4096));
      const number = first.osHandle;
      const second = SharedRegion.fromHandle(number, { size: 4096 });
      first.close();
      // Things that take the freed number: an unrelated file (Linux reuses the
      // lowest free fd) and a new region (Windows reuses the freed handle slot).
      const file = openSync(join(dir, `unrelated-${round}`), 'w+');
      const other = unwrap(SharedRegion.create(4096));
      other.bytes[0] = 5;
      if (second.isOk()) second.value.close();
      fstatSync(file); // throws EBADF if the file was closed under us
      closeSync(file);
      assert.ok(other.toReadOnly().map((ro) => ro.close()).isOk(), `round ${round}: the new region's handle is still open`);
      other.close();
      expectErr(second, 'ALREADY_EXISTS', `round ${round}: fromHandle of a live region's number`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Ownership('after the owner closes, the same number is no longer refused as owned', async () => {
  await settleHandles();
  const before = handleCensus();
  const region = unwrap(SharedRegion.create(4096));
  const number = region.osHandle;
  region.close();
  const e = expectErr(SharedRegion.fromHandle(number, { size: 4096 }), 'INVALID_HANDLE', 'fromHandle of a closed region’s number');
  assert.not.match(e.message, /already belongs/, 'a closed region owns nothing');
  await settleHandles();
  if (!underWine) assert.is(handleCensus().value, before.value, 'handles back to baseline');
});

const Typed = suite('typedView');

Typed('a typed array over exactly the bytes asked for, at the right offset', () => {
  const region = unwrap(SharedRegion.create(4096));
  const floats = unwrap(region.typedView(Float32Array, 64, 4));
  assert.instance(floats, Float32Array);
  assert.is(floats.length, 4);
  assert.is(floats.byteOffset, 64);
  assert.is(floats.byteLength, 16);
  floats[1] = 1.5;
  assert.equal([...region.bytes.subarray(68, 72)], [...new Uint8Array(new Float32Array([1.5]).buffer)], 'element 1 is bytes 68..71');
  // The trap this replaces: a view's buffer is the whole mapping.
  const view = unwrap(region.view(64, 16));
  assert.is(new Float32Array(view.buffer).length, 1024, 'new Float32Array(view.buffer) spans the whole region');
  const bigs = unwrap(region.typedView(BigInt64Array, 128, 2));
  bigs[0] = -2n;
  assert.is(unwrap(region.typedView(BigUint64Array, 128, 1))[0], 2n ** 64n - 2n);
  const doubles = unwrap(region.typedView(Float64Array, 8));
  assert.is(doubles.length, 511, 'length defaults to the whole elements after byteOffset');
  for (const type of [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array]) {
    const whole = unwrap(region.typedView(type), type.name);
    assert.instance(whole, type);
    assert.is(whole.byteLength, 4096, `${type.name} over the whole region`);
  }
  assert.is(unwrap(region.typedView(Int32Array, 4096)).length, 0, 'zero elements at the end');
  assert.is(unwrap(region.typedView(Int32Array, 0, 0)).length, 0, 'zero elements');
  region.close();
});

Typed('misaligned, out of range, overflowing, or not a typed-array constructor: INVALID_ARGUMENT', () => {
  const region = unwrap(SharedRegion.create(4096));
  let e = expectErr(region.typedView(Float32Array, 2, 1), 'INVALID_ARGUMENT', 'Float32Array at 2');
  assert.match(e.message, /not a multiple of 4/);
  expectErr(region.typedView(BigInt64Array, 4, 1), 'INVALID_ARGUMENT', 'BigInt64Array at 4');
  expectErr(region.typedView(Float64Array, 4092), 'INVALID_ARGUMENT', 'Float64Array at 4092 (misaligned)');
  e = expectErr(region.typedView(Float32Array, 0, 1025), 'INVALID_ARGUMENT', '1025 floats in 4096 bytes');
  assert.match(e.message, /from 0 to 1024/);
  expectErr(region.typedView(Float32Array, 4, 1024), 'INVALID_ARGUMENT', '1024 floats after byte 4');
  expectErr(region.typedView(Float64Array, 0, 2 ** 50), 'INVALID_ARGUMENT', 'a length whose byte count overflows');
  expectErr(region.typedView(Uint8Array, 4097), 'INVALID_ARGUMENT', 'offset past the end');
  for (const bad of [-4, 1.5, NaN, Infinity, '8', 8n]) expectErr(region.typedView(Uint32Array, bad), 'INVALID_ARGUMENT', `byteOffset ${String(bad)}`);
  for (const bad of [-1, 0.5, NaN, '1']) expectErr(region.typedView(Uint32Array, 0, bad), 'INVALID_ARGUMENT', `length ${String(bad)}`);
  class Sneaky extends Float32Array {}
  for (const bad of [DataView, Array, ArrayBuffer, Sneaky, Object, undefined, null, 4, { BYTES_PER_ELEMENT: 1 }]) {
    e = expectErr(region.typedView(bad, 0, 1), 'INVALID_ARGUMENT', `typedView(${String(bad?.name ?? bad)})`);
    assert.match(e.message, /typed-array constructor/);
  }
  assert.match(expectErr(region.typedView(DataView, 0, 1), 'INVALID_ARGUMENT').message, /new DataView\(v\.buffer, v\.byteOffset, v\.byteLength\)/, 'says how to get a DataView');
  const odd = unwrap(SharedRegion.create(10));
  e = expectErr(odd.typedView(Float32Array), 'INVALID_ARGUMENT', '10 bytes are not whole floats');
  assert.match(e.message, /pass a length \(at most 2\)/);
  assert.is(unwrap(odd.typedView(Float32Array, 0, 2)).length, 2);
  odd.close();
  region.close();
});

Typed('closed regions: CLOSED, and typed views handed out become zero-length', () => {
  const region = unwrap(SharedRegion.create(4096));
  const ints = unwrap(region.typedView(Int32Array, 0, 8));
  ints[0] = 7;
  region.close();
  assert.is(ints.length, 0, 'detached on close');
  expectErr(region.typedView(Int32Array), 'CLOSED');
});

Typed('a read-only twin: typed writes stay private, as with view()', () => {
  const region = unwrap(SharedRegion.create(4096));
  const twin = unwrap(region.toReadOnly());
  unwrap(region.typedView(Uint32Array, 16, 1))[0] = 0xfeedface;
  const seen = unwrap(twin.typedView(Uint32Array, 16, 1));
  assert.is(seen[0], 0xfeedface, 'the twin sees the writer');
  seen[0] = 1;
  assert.is(unwrap(region.typedView(Uint32Array, 16, 1))[0], 0xfeedface, 'the twin’s write stayed private');
  twin.close();
  region.close();
});

Ownership.run();
Typed.run();
