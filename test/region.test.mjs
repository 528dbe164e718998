// The region contract: runs unchanged on Linux and under Wine.
import { randomFill } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, write } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion } from '../dist/index.js';
import { parkedMappings, simulateNoExternalBuffers, tryWriteEscalation, writeSharingAllowed } from '../dist/testing.js';
import { expectErr, isLinux, isWindows, realWindowsOnly, underWine, unwrap } from './helpers.mjs';

const create = (size, options) => unwrap(SharedRegion.create(size, options), `create(${size})`);

// ---------------------------------------------------------------------------
const Create = suite('SharedRegion.create');

Create('sizes from 1 byte up, zero-filled, writable', () => {
  for (const size of [1, 7, 4096, 4097, 65536 + 3, 1 << 20]) {
    const region = create(size);
    assert.is(region.size, size);
    assert.is(region.readOnly, false);
    assert.is(region.closed, false);
    assert.is(region.bytes.length, size);
    assert.ok(region.bytes.every((b) => b === 0), `size ${size} is zero-filled`);
    region.bytes[size - 1] = 0xab;
    assert.is(region.bytes[size - 1], 0xab);
    region.close();
  }
});

Create('bad sizes are INVALID_ARGUMENT, never a throw', () => {
  for (const size of [0, -1, -0.5, 1.5, NaN, Infinity, -Infinity, 2 ** 60, Number.MAX_SAFE_INTEGER, 2 ** 47 + 1,
    '4096', undefined, null, {}, 4096n]) {
    expectErr(SharedRegion.create(size), 'INVALID_ARGUMENT', `create(${String(size)})`);
  }
  expectErr(SharedRegion.create(16, 'nope'), 'INVALID_ARGUMENT', 'create(16, "nope")');
  expectErr(SharedRegion.create(16, { label: 5 }), 'INVALID_ARGUMENT', 'create(16, { label: 5 })');
});

Create('a size the OS cannot provide is OUT_OF_MEMORY, not a crash', () => {
  // 2^47 bytes: accepted as an argument, but no x86-64 process can map it
  // (Linux: address space; Windows: commit limit).
  const error = expectErr(SharedRegion.create(2 ** 47), 'OUT_OF_MEMORY', 'create(2^47)');
  assert.type(error.osCode, 'number');
  assert.type(error.syscall, 'string');
});

Create('labels show up in inspect output', async () => {
  const { inspect } = await import('node:util');
  const region = create(10, { label: 'frames' });
  assert.match(inspect(region), /label: "frames", size: 10, writable/);
  region.close();
  assert.match(inspect(region), /closed/);
});

Create.run();

// ---------------------------------------------------------------------------
const Views = suite('views');

Views('bytes written through one view appear through every other view', () => {
  const region = create(8192);
  const a = unwrap(region.view(100, 50));
  const b = unwrap(region.view(0));
  const c = unwrap(region.view(149, 1));
  a.set([1, 2, 3]);
  a[49] = 0x7f;
  assert.equal([...b.subarray(100, 103)], [1, 2, 3]);
  assert.is(region.bytes[149], 0x7f);
  assert.is(c[0], 0x7f);
  region.close();
});

Views('no alignment is demanded', () => {
  const region = create(4099);
  const odd = unwrap(region.view(3, 4093));
  odd[0] = 9;
  odd[4092] = 10;
  assert.is(region.bytes[3], 9);
  assert.is(region.bytes[4095], 10);
  assert.is(unwrap(region.view(4098)).length, 1, 'default length is the rest');
  assert.is(unwrap(region.view(4099)).length, 0, 'an empty view at the end is allowed');
  assert.is(unwrap(region.view(0, 0)).length, 0);
  region.close();
});

Views('out-of-range, overflowing and malformed views are INVALID_ARGUMENT', () => {
  const region = create(4096);
  const bad = [[-1, 1], [4097, 0], [0, 4097], [1, 4096], [4095, 2], [NaN, 1], [0, NaN], [1.5, 1], [0, 1.5],
    [Number.MAX_SAFE_INTEGER, 1], [1, Number.MAX_SAFE_INTEGER], [2 ** 53, 0], ['0', 1], [0, '1'], [null, 1], [0, null],
    [4096, -1], [Infinity, 0], [0, Infinity]];
  for (const [offset, length] of bad) {
    expectErr(region.view(offset, length), 'INVALID_ARGUMENT', `view(${String(offset)}, ${String(length)})`);
  }
  region.close();
});

Views.run();

// ---------------------------------------------------------------------------
const ReadOnly = suite('toReadOnly');

ReadOnly('the twin sees the same bytes, including later writes', () => {
  const region = create(3 * 4096);
  region.bytes.set([10, 20, 30]);
  const ro = unwrap(region.toReadOnly());
  assert.is(ro.readOnly, true);
  assert.is(ro.size, region.size);
  assert.equal([...ro.bytes.subarray(0, 3)], [10, 20, 30]);
  region.bytes[5000] = 77;
  region.bytes[2] = 31;
  assert.is(ro.bytes[5000], 77, 'a later write through the writable region is visible');
  assert.is(ro.bytes[2], 31);
  ro.close();
  region.close();
});

ReadOnly('writing into a read-only view never reaches the shared bytes and never crashes', () => {
  const region = create(2 * 4096);
  region.bytes[0] = 1;
  const ro = unwrap(region.toReadOnly());
  const view = ro.bytes;
  view[0] = 99; // lands in a private copy-on-write page
  view.fill(0xee, 10, 20);
  assert.is(region.bytes[0], 1, 'the writable side still sees the original byte');
  assert.is(region.bytes[10], 0);
  const second = unwrap(region.toReadOnly());
  assert.is(second.bytes[0], 1, 'another read-only twin sees the shared byte too');
  region.bytes[4096] = 5; // a page the read-only view never wrote
  assert.is(view[4096], 5);
  second.close();
  ro.close();
  region.close();
});

ReadOnly('after a read-only twin exists no writable handle may be given out', () => {
  const region = create(4096);
  assert.is(writeSharingAllowed(region), true);
  const ro = unwrap(region.toReadOnly());
  assert.is(writeSharingAllowed(region), false);
  assert.is(writeSharingAllowed(ro), false);
  region.bytes[0] = 42; // the creator keeps writing
  assert.is(ro.bytes[0], 42);
  ro.close();
  assert.is(writeSharingAllowed(region), false, 'closing the twin does not lift the rule');
  region.close();
});

ReadOnly('a read-only twin of a read-only twin is read-only', () => {
  const region = create(4096);
  const ro = unwrap(region.toReadOnly());
  const ro2 = unwrap(ro.toReadOnly());
  assert.is(ro2.readOnly, true);
  region.bytes[1] = 3;
  assert.is(ro2.bytes[1], 3);
  for (const r of [ro2, ro, region]) r.close();
});

ReadOnly('the OS refuses every way back to write access', () => {
  const region = create(4096);
  const ro = unwrap(region.toReadOnly());
  const attempts = unwrap(tryWriteEscalation(ro));
  assert.ok(Object.keys(attempts).length >= 4, JSON.stringify(attempts));
  for (const [path, succeeded] of Object.entries(attempts)) {
    // Wine does not model the OWNER RIGHTS ACE; real Windows does (see SECURITY notes).
    if (underWine && path === 'duplicate-write-dac') continue;
    assert.is(succeeded, false, `write escalation through "${path}" must be refused`);
  }
  ro.close();
  region.close();
  // The same probes succeed on a writable region that has no twin: the check can fail.
  const fresh = create(4096);
  const writable = unwrap(tryWriteEscalation(fresh));
  const primary = isLinux ? ['mmap-shared-write', 'reopen-proc-fd-mmap-write', 'reopen-proc-fd-pwrite'] : ['map-view-write', 'duplicate-write'];
  for (const path of primary) assert.is(writable[path], true, `probe "${path}" detects write access where it exists`);
  fresh.close();
});

ReadOnly(realWindowsOnly('Windows: WRITE_DAC cannot be taken from a read-only handle'), () => {
  if (!isWindows || underWine) return;
  const region = create(4096);
  const ro = unwrap(region.toReadOnly());
  assert.is(unwrap(tryWriteEscalation(ro))['duplicate-write-dac'], false);
  ro.close();
  region.close();
});

ReadOnly('Linux: the read-only twin is sealed against future writes', () => {
  if (!isLinux) return;
  const region = create(4096);
  const ro = unwrap(region.toReadOnly());
  const attempts = unwrap(tryWriteEscalation(ro));
  assert.is(attempts['reopen-proc-fd-mmap-write'], false);
  assert.is(attempts['reopen-proc-fd-pwrite'], false);
  assert.is(attempts.unsealed, false);
  ro.close();
  region.close();
});

ReadOnly.run();

// ---------------------------------------------------------------------------
const Close = suite('close');

Close('views become zero-length, and close() twice is harmless', () => {
  const region = create(4096);
  const whole = region.bytes;
  const part = unwrap(region.view(10, 20));
  region.close();
  assert.is(region.closed, true);
  assert.is(whole.length, 0);
  assert.is(part.length, 0);
  assert.is(whole[0], undefined, 'reading a detached view reads nothing');
  whole[0] = 1; // writing a detached view is a no-op, not a fault
  region.close();
  region[Symbol.dispose]();
  assert.is(region.bytes.length, 0);
  assert.is(region.size, 4096, 'size is kept for diagnostics');
});

Close('calls after close are CLOSED', () => {
  const region = create(4096);
  region.close();
  expectErr(region.view(0, 1), 'CLOSED', 'view after close');
  expectErr(region.toReadOnly(), 'CLOSED', 'toReadOnly after close');
  expectErr(tryWriteEscalation(region), 'CLOSED', 'tryWriteEscalation after close');
});

Close('closing one handle leaves the other working', () => {
  const region = create(4096);
  region.bytes[7] = 7;
  const ro = unwrap(region.toReadOnly());
  region.close();
  assert.is(ro.bytes[7], 7, 'the memory lives while any handle does');
  ro.close();
  assert.is(ro.bytes.length, 0);
});

Close('Symbol.dispose closes', () => {
  const region = create(16);
  const view = region.bytes;
  region[Symbol.dispose]();
  assert.is(region.closed, true);
  assert.is(view.length, 0);
});

Close('close() while the thread pool still reads or writes a view: no fault, the work completes', async () => {
  // fs.write reads a view's memory, crypto.randomFill writes it, both on libuv
  // pool threads after the call has returned. close() detaches the views at
  // once and V8 drops their backing stores, but the address range must stay
  // valid until such work is done (on Linux it holds zeros by then).
  const size = 8 * 1024 * 1024;
  const dir = mkdtempSync(join(tmpdir(), 'memport-inflight-'));
  try {
    for (let round = 0; round < 20; round++) {
      const region = create(size);
      region.bytes.fill(0x5a);
      const file = join(dir, `out-${round}`);
      const written = new Promise((resolve) => {
        const fd = openSync(file, 'w');
        write(fd, region.bytes, 0, size, 0, (error, bytes) => (closeSync(fd), resolve({ error, bytes })));
      });
      const filled = new Promise((resolve) => randomFill(region.bytes, (error) => resolve(error)));
      const view = region.bytes;
      region.close();
      assert.is(view.length, 0, 'the view is detached at once');
      const w = await written;
      assert.is(w.error, null, `fs.write of a view closed under it: ${w.error}`);
      assert.is(w.bytes, size);
      assert.is(await filled, null, 'crypto.randomFill into a view closed under it');
      assert.is(statSync(file).size, size);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Close('closed ranges stay parked for their grace, then are released without any further call', async () => {
  for (let i = 0; i < 8; i++) {
    const region = create(64 * 1024);
    region.bytes[0] = 1;
    region.close();
  }
  // The ranges are parked once V8 has dropped the detached buffers.
  for (let i = 0; i < 50 && parkedMappings() < 8; i++) {
    globalThis.gc?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(parkedMappings() >= 8, `parked: ${parkedMappings()}`);
  // memport's own (unref'd) timer releases them after the 5 s grace.
  const deadline = Date.now() + 15_000;
  while (parkedMappings() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
  assert.is(parkedMappings(), 0, 'every parked range was released');
});

Close.run();

// ---------------------------------------------------------------------------
const Copying = suite('copying mode (runtimes without external ArrayBuffers)');

Copying('read/write copy bytes in and out, with the same checks as views', () => {
  const region = create(4096);
  unwrap(region.write(4090, new Uint8Array([1, 2, 3, 4, 5, 6])));
  assert.equal([...unwrap(region.read(4090, 6))], [1, 2, 3, 4, 5, 6]);
  assert.is(region.bytes[4095], 6, 'write() lands in the shared bytes');
  const copy = unwrap(region.read(0, 16));
  copy[0] = 99;
  assert.is(region.bytes[0], 0, 'read() returns a copy');
  expectErr(region.read(4090, 7), 'INVALID_ARGUMENT', 'read past the end');
  expectErr(region.write(4095, new Uint8Array(2)), 'INVALID_ARGUMENT', 'write past the end');
  expectErr(region.write(0, [1, 2]), 'INVALID_ARGUMENT', 'write of a plain array');
  const ro = unwrap(region.toReadOnly());
  unwrap(ro.write(0, new Uint8Array([42])));
  assert.is(region.bytes[0], 0, 'a write into a read-only region stays private');
  ro.close();
  region.close();
  expectErr(region.read(0, 1), 'CLOSED', 'read after close');
  expectErr(region.write(0, new Uint8Array(1)), 'CLOSED', 'write after close');
});

Copying('where external ArrayBuffers are forbidden, views are UNSUPPORTED and say to use read/write', () => {
  const region = create(64);
  unwrap(region.write(0, new Uint8Array([7, 8, 9])));
  simulateNoExternalBuffers(true);
  try {
    assert.is(SharedRegion.zeroCopy, false);
    const refused = expectErr(region.view(0, 8), 'UNSUPPORTED', 'view in a sandboxed runtime');
    assert.match(refused.message, /region\.read\(offset, length\) and region\.write\(offset, bytes\)/);
    let thrown;
    try {
      void region.bytes;
    } catch (e) {
      thrown = e;
    }
    assert.is(thrown?.code, 'UNSUPPORTED', 'bytes throws the same typed error');
    assert.equal([...unwrap(region.read(0, 3))], [7, 8, 9], 'copies still work');
    unwrap(region.write(3, new Uint8Array([10])));
    assert.equal([...unwrap(region.read(0, 4))], [7, 8, 9, 10]);
  } finally {
    simulateNoExternalBuffers(false);
  }
  assert.is(SharedRegion.zeroCopy, true);
  assert.is(unwrap(region.view(0, 4))[3], 10, 'zero-copy views again once allowed');
  region.close();
});

Copying.run();
