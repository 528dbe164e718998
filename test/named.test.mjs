// Named shared memory (SharedRegion.openNamed / createNamed / unlinkNamed):
// the contract, on Linux (shm_open) and under Wine (named sections). Interop
// with real programs that use names is in named-interop.test.mjs.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion, connect, listen } from '../dist/index.js';
import { assertNoHandleLeak, expectErr, handleCensus, handleTable, isLinux, isWindows, settleHandles, underWine, unwrap } from './helpers.mjs';

const uniqueName = (tag) => `memport-test-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`;
const osName = (name) => (isWindows ? `Local\\${name}` : `/${name}`);
const text = (bytes) => Buffer.from(bytes).toString('utf8');
/** Names made here, removed at the end whatever happened (Linux; Windows names go with their handles). */
const made = new Set();
function createNamed(name, size, options) {
  const region = unwrap(SharedRegion.createNamed(name, size, options), `createNamed(${name})`);
  made.add(name);
  return region;
}
function cleanUp() {
  if (!isLinux) return;
  for (const name of made) SharedRegion.unlinkNamed(name);
  made.clear();
}
/** The census now, and (under Wine, where it is a slot probe) the handle table to judge a moved probe by. */
function baseline() {
  return { census: handleCensus(), table: underWine ? handleTable() : undefined };
}
async function assertBack(base, what) {
  await settleHandles();
  assertNoHandleLeak(base.census, what, base.table);
}
/** Sizes a section is reported with: exact on Linux, whole pages where Windows (or Wine) rounds. */
const reportedSize = (size) => [size, Math.ceil(size / 4096) * 4096];

// ---------------------------------------------------------------------------
const API = suite('API');
API('the named-region statics, getters and copyToUnnamed exist in the ESM and CommonJS builds', () => {
  const cjs = createRequire(import.meta.url)('../dist/index.cjs');
  for (const { SharedRegion: Region } of [{ SharedRegion }, cjs]) {
    for (const fn of ['openNamed', 'createNamed', 'unlinkNamed']) assert.type(Region[fn], 'function', fn);
    for (const fn of ['copyToUnnamed']) assert.type(Region.prototype[fn], 'function', fn);
    const region = Region.create(1).value;
    assert.is(region.named, false);
    assert.is(region.name, undefined);
    region.close();
  }
});

// ---------------------------------------------------------------------------
const Contract = suite('named regions: the contract');
Contract.after(cleanUp);

Contract('createNamed then openNamed: one memory under one name, both ways; the size comes from the OS', () => {
  const name = uniqueName('pair');
  const created = createNamed(name, 10_000);
  assert.ok(created.named, 'created.named');
  assert.is(created.name, osName(name), 'the name in the OS spelling');
  assert.is(created.size, 10_000);
  assert.match(String(created[Symbol.for('nodejs.util.inspect.custom')]()), new RegExp(`name: ${JSON.stringify(osName(name)).replace(/\\/g, '\\\\')}`));
  const opened = unwrap(SharedRegion.openNamed(osName(name)), 'openNamed with the OS spelling');
  assert.ok(reportedSize(10_000).includes(opened.size), `size from the OS: ${opened.size}`);
  unwrap(created.write(0, Buffer.from('from the creator')));
  assert.is(text(unwrap(opened.read(0, 16))), 'from the creator');
  opened.bytes.set(Buffer.from('from the opener!'), 100);
  assert.is(text(created.bytes.subarray(100, 116)), 'from the opener!', 'a zero-copy view sees the other handle’s write');
  const sized = unwrap(SharedRegion.openNamed(name, { size: 16 }), 'openNamed with a size');
  assert.is(sized.size, 16);
  assert.is(text(sized.bytes), 'from the creator');
  for (const r of [created, opened, sized]) r.close();
  assert.not.ok(SharedRegion.create(8)._unsafeUnwrap().named, 'memport’s own regions have no name');
});

Contract('a bare name is the same object as its canonical spelling', () => {
  const name = uniqueName('bare');
  const created = createNamed(osName(name), 64);
  const opened = unwrap(SharedRegion.openNamed(name));
  assert.is(opened.name, osName(name));
  created.bytes[0] = 42;
  assert.is(opened.bytes[0], 42);
  created.close();
  opened.close();
});

Contract('createNamed on a taken name is ALREADY_EXISTS and leaves the object alone; nothing leaked', async () => {
  const name = uniqueName('taken');
  const first = createNamed(name, 4096);
  first.bytes.set(Buffer.from('original'));
  const base = baseline();
  for (let i = 0; i < 20; i++) expectErr(SharedRegion.createNamed(name, 4096), 'ALREADY_EXISTS', 'createNamed of a taken name');
  const e = expectErr(SharedRegion.createNamed(name, 1 << 20), 'ALREADY_EXISTS', 'createNamed of a taken name with another size');
  assert.match(e.message, /never opens an object somebody else made/);
  await assertBack(base, 'refused creates');
  const again = unwrap(SharedRegion.openNamed(name));
  assert.is(text(again.bytes.subarray(0, 8)), 'original', 'the existing object is untouched');
  assert.ok(reportedSize(4096).includes(again.size), 'and keeps its size');
  again.close();
  first.close();
});

Contract('openNamed of a name nobody made is NOT_FOUND; nothing leaked', async () => {
  const base = baseline();
  for (let i = 0; i < 20; i++) expectErr(SharedRegion.openNamed(uniqueName('missing')), 'NOT_FOUND', 'openNamed of a missing name');
  await assertBack(base, 'missing names');
});

Contract('a size larger than the object is INVALID_ARGUMENT, never a view past its end; nothing leaked', async () => {
  const name = uniqueName('small');
  const region = createNamed(name, 4096);
  const base = baseline();
  for (const size of [4097, 8192, 1 << 30]) {
    const e = expectErr(SharedRegion.openNamed(name, { size }), 'INVALID_ARGUMENT', `openNamed size ${size}`);
    assert.match(e.message, /a view past its end would fault/);
  }
  await assertBack(base, 'oversized opens');
  region.close();
});

Contract('malformed names and options are INVALID_ARGUMENT with the rule', () => {
  const common = ['', 'a\0b', 7, null, undefined, {}, 'x'.repeat(300)];
  const platform = isWindows ? ['Local\\', 'Global\\', 'Local\\a\\b', 'Session\\1\\x', 'a\\b', '\\x'] : ['/', 'a/b', '/a/b', '//x', '.', '..', '/..'];
  for (const bad of [...common, ...platform]) {
    const e = expectErr(SharedRegion.openNamed(bad), 'INVALID_ARGUMENT', `openNamed(${JSON.stringify(bad)})`);
    expectErr(SharedRegion.createNamed(bad, 64), 'INVALID_ARGUMENT', `createNamed(${JSON.stringify(bad)})`);
    if (typeof bad === 'string' && bad.length > 0 && !bad.includes('\0') && bad.length < 300) {
      assert.match(e.message, isWindows ? /Local\\<name>, Global\\<name>/ : /\/<name> or <name>/, 'the message gives the rule');
    }
  }
  if (isLinux) assert.ok(SharedRegion.openNamed('x'.repeat(254)).isErr(), 'over 253 bytes');
  const name = uniqueName('options');
  for (const size of [0, -1, 1.5, '64', NaN]) {
    expectErr(SharedRegion.createNamed(name, size), 'INVALID_ARGUMENT', `createNamed size ${String(size)}`);
    if (size !== 0) expectErr(SharedRegion.openNamed(name, { size }), 'INVALID_ARGUMENT', `openNamed size ${String(size)}`);
  }
  expectErr(SharedRegion.openNamed(name, null), 'INVALID_ARGUMENT', 'null options');
  expectErr(SharedRegion.openNamed(name, { label: 5 }), 'INVALID_ARGUMENT', 'a bad label');
  assert.not.ok(made.has(name) || SharedRegion.openNamed(name).isOk(), 'no refused call made the name');
});

Contract('readOnly: the shared bytes are read, writes through it stay private; no read-only twin of named memory', () => {
  const name = uniqueName('ro');
  const writer = createNamed(name, 4096);
  writer.bytes.set(Buffer.from('shared'));
  const reader = unwrap(SharedRegion.openNamed(name, { readOnly: true }));
  assert.ok(reader.readOnly);
  assert.is(text(reader.bytes.subarray(0, 6)), 'shared');
  writer.bytes.set(Buffer.from('later!'), 1000);
  assert.is(text(unwrap(reader.read(1000, 6))), 'later!', 'later writes by the writer are seen');
  reader.bytes.set(Buffer.from('mine'), 2000);
  assert.is(writer.bytes[2000], 0, 'a write through the read-only region never reaches the shared bytes');
  assert.is(text(unwrap(reader.read(2000, 4))), 'mine', 'read() of a read-only region sees its own private writes, as a view does');
  unwrap(reader.write(3000, Buffer.from('also mine')));
  assert.is(writer.bytes[3000], 0, 'write() on a read-only region stays private too');
  const e = expectErr(writer.toReadOnly(), 'UNSUPPORTED', 'toReadOnly of a named region');
  assert.match(e.message, /anyone who knows the name/);
  const keptReadOnly = createNamed(uniqueName('ro-create'), 128, { readOnly: true });
  assert.ok(keptReadOnly.readOnly, 'createNamed({ readOnly: true }) keeps a read-only handle');
  for (const r of [writer, reader, keptReadOnly]) r.close();
});

Contract('a receiver that did not opt in refuses a named region (UNSUPPORTED, saying what to do); copyToUnnamed sends', async () => {
  const name = uniqueName('send');
  const region = createNamed(name, 8192);
  region.bytes.set(Buffer.from('named bytes'));
  const channel = `named-${process.pid}-${randomBytes(3).toString('hex')}`;
  const listener = unwrap(await listen(channel));
  const client = connect(channel, { timeoutMs: 5000 });
  const server = unwrap(await listener.accept({ timeoutMs: 5000 }));
  const conn = unwrap(await client);
  try {
    // Both ends are in this process, so one census covers the sender's pushed
    // value (Windows) and the receiver's released fd or duplicate.
    const base = baseline();
    const [refused, none] = await Promise.all([conn.send({ regions: [region] }), server.receive({ timeoutMs: 300 })]);
    const e = expectErr(refused, 'UNSUPPORTED', 'send of a named region to a receiver without acceptNamedRegions');
    assert.match(e.message, /the receiver does not accept named shared memory: it must connect\/listen with \{ acceptNamedRegions: true \}, or send region\.copyToUnnamed\(\)/);
    expectErr(none, 'TIMEOUT', 'the refused message is not delivered');
    await assertBack(base, 'a refused named region');
    assert.is(text(unwrap(region.read(0, 11))), 'named bytes', 'the sender keeps its region');
    const copy = unwrap(region.copyToUnnamed({ label: 'copy' }));
    assert.not.ok(copy.named);
    assert.is(copy.size, region.size);
    // send() resolves once the peer has taken the region, so both run at once.
    const [sent, received] = await Promise.all([conn.send({ regions: [copy], data: { what: 'copy' } }), server.receive({ timeoutMs: 5000 })]);
    unwrap(sent, 'send of the copy');
    const got = unwrap(received, 'receive of the copy');
    assert.is(text(got.regions[0].bytes.subarray(0, 11)), 'named bytes', 'the copy arrived with the bytes');
    region.bytes[0] = 0x4e;
    assert.is(got.regions[0].bytes[0], 0x6e, 'a copy: later writes to the named region are not seen');
    got.regions[0].close();
    copy.close();
  } finally {
    conn.close();
    server.close();
    listener.close();
    region.close();
  }
});

Contract('fromHandle refuses a named region’s handle (already owned) and leaves it working', () => {
  const region = createNamed(uniqueName('fromhandle'), 4096);
  region.bytes[0] = 9;
  const e = expectErr(SharedRegion.fromHandle(region.osHandle, { size: 4096 }), 'ALREADY_EXISTS', 'fromHandle of a named region’s handle');
  assert.match(e.message, /already belongs to a live memport region/);
  assert.is(unwrap(region.read(0, 1))[0], 9, 'the named region still works: its handle was not taken');
  region.close();
});

Contract('closed named regions: read, write, copyToUnnamed are CLOSED', () => {
  const region = createNamed(uniqueName('closed'), 64);
  region.close();
  expectErr(region.read(0, 1), 'CLOSED');
  expectErr(region.write(0, new Uint8Array(1)), 'CLOSED');
  expectErr(region.copyToUnnamed(), 'CLOSED');
  assert.ok(region.named, 'still says it was named');
});

// ---------------------------------------------------------------------------
const Lifetime = suite('named regions: lifetime of a name');
Lifetime.after(cleanUp);

if (isLinux) {
  Lifetime('Linux: the name outlives its regions until unlinkNamed; then NOT_FOUND; the memory lives on while mapped', () => {
    const name = uniqueName('unlink');
    const region = createNamed(name, 4096);
    region.bytes.set(Buffer.from('kept'));
    region.close();
    assert.ok(existsSync(`/dev/shm/${name}`), 'the name outlives the region');
    const reopened = unwrap(SharedRegion.openNamed(name));
    assert.is(text(reopened.bytes.subarray(0, 4)), 'kept');
    unwrap(SharedRegion.unlinkNamed(`/${name}`));
    made.delete(name);
    assert.not.ok(existsSync(`/dev/shm/${name}`), 'unlinked');
    expectErr(SharedRegion.openNamed(name), 'NOT_FOUND', 'openNamed after unlink');
    expectErr(SharedRegion.unlinkNamed(name), 'NOT_FOUND', 'a second unlink');
    assert.is(text(reopened.bytes.subarray(0, 4)), 'kept', 'the open region still works');
    reopened.close();
    expectErr(SharedRegion.unlinkNamed('a/b'), 'INVALID_ARGUMENT', 'unlinkNamed of a malformed name');
  });

  Lifetime('Linux: createNamed makes a 0600 object', () => {
    const name = uniqueName('mode');
    const region = createNamed(name, 64);
    const stat = spawnSync('stat', ['-c', '%a', `/dev/shm/${name}`], { encoding: 'utf8' });
    assert.is(stat.stdout.trim(), '600');
    region.close();
  });
} else {
  Lifetime('Windows: unlinkNamed is UNSUPPORTED (a name goes with its last handle), and the name does go', () => {
    const name = uniqueName('unlink');
    const region = createNamed(name, 4096);
    const e = expectErr(SharedRegion.unlinkNamed(name), 'UNSUPPORTED', 'unlinkNamed on Windows');
    assert.match(e.message, /last handle/);
    region.close();
    expectErr(SharedRegion.openNamed(name), 'NOT_FOUND', 'openNamed after the last handle closed');
    createNamed(name, 64).close(); // and the name is free again
  });
}

// ---------------------------------------------------------------------------
const Linux = suite('named regions: Linux hazards');
Linux.after(() => {
  cleanUp();
});

if (isLinux) {
  Linux('another process shrinks the object: read and write are INVALID_ARGUMENT, never SIGBUS', async () => {
    const name = uniqueName('shrink');
    const writable = createNamed(name, 64 * 1024);
    writable.bytes.fill(7);
    const readOnly = unwrap(SharedRegion.openNamed(name, { readOnly: true }));
    // One read-only region with a private page: its copies go through the mapping (after fstat), not the fd.
    const readOnlyWritten = unwrap(SharedRegion.openNamed(name, { readOnly: true }));
    readOnlyWritten.bytes[0] = 1;
    const base = baseline();
    truncateSync(`/dev/shm/${name}`, 4096); // what any process with write access may do
    assert.equal([...unwrap(writable.read(0, 16))], new Array(16).fill(7), 'bytes before the new end still read');
    for (const [r, what] of [[writable, 'writable'], [readOnly, 'read-only'], [readOnlyWritten, 'read-only with private pages']]) {
      const e = expectErr(r.read(8192, 16), 'INVALID_ARGUMENT', `${what} read past the new end`);
      assert.match(e.message, /another process shrank it/);
      expectErr(r.read(4000, 200), 'INVALID_ARGUMENT', `${what} read across the new end`);
      expectErr(r.write(60_000, new Uint8Array(8)), 'INVALID_ARGUMENT', `${what} write past the new end`);
      expectErr(r.copyToUnnamed(), 'INVALID_ARGUMENT', `${what} copyToUnnamed of a shrunk object`);
    }
    unwrap(writable.write(100, Buffer.from('ok')), 'a write before the new end');
    assert.is(text(unwrap(readOnly.read(100, 2))), 'ok');
    const stat = spawnSync('stat', ['-c', '%s', `/dev/shm/${name}`], { encoding: 'utf8' });
    assert.is(stat.stdout.trim(), '4096', 'a refused write did not grow the object back');
    await assertBack(base, 'refused accesses to a shrunk object');
    for (const r of [writable, readOnly, readOnlyWritten]) r.close();
  });

  Linux('a zero-copy view past the new end does fault (SIGBUS): the documented risk of views of named memory', () => {
    const name = uniqueName('sigbus');
    createNamed(name, 64 * 1024).close();
    const script = `
      import { SharedRegion } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
      import { truncateSync } from 'node:fs';
      const r = SharedRegion.openNamed(${JSON.stringify(name)})._unsafeUnwrap();
      truncateSync('/dev/shm/${name}', 4096);
      console.log(r.read(8192, 1).isErr() ? 'read refused' : 'read allowed');
      console.log(r.bytes[8192]);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.match(child.stdout, /^read refused$/m, 'read() refused first');
    assert.is(child.signal, 'SIGBUS', `the view access faulted: ${child.status} ${child.signal} ${child.stderr}`);
  });

  Linux('things under /dev/shm that are not shared memory: INVALID_HANDLE, no hang, nothing leaked', async () => {
    const fifo = uniqueName('fifo');
    const dir = uniqueName('dir');
    const link = uniqueName('link');
    const target = createNamed(uniqueName('target'), 64);
    spawnSync('mkfifo', [`/dev/shm/${fifo}`]);
    mkdirSync(`/dev/shm/${dir}`);
    symlinkSync(`/dev/shm/${target.name.slice(1)}`, `/dev/shm/${link}`);
    try {
      const base = baseline();
      for (const name of [fifo, dir, link]) {
        expectErr(SharedRegion.openNamed(name), 'INVALID_HANDLE', `openNamed(${name})`);
        expectErr(SharedRegion.openNamed(name, { readOnly: true }), 'INVALID_HANDLE', `openNamed(${name}, readOnly)`);
        expectErr(SharedRegion.createNamed(name, 64), 'ALREADY_EXISTS', `createNamed(${name})`);
      }
      await assertBack(base, 'refused non-memory objects');
    } finally {
      rmSync(`/dev/shm/${fifo}`, { force: true });
      rmSync(`/dev/shm/${dir}`, { recursive: true, force: true });
      rmSync(`/dev/shm/${link}`, { force: true });
      target.close();
    }
  });

  Linux('an empty object (created but never sized) is INVALID_ARGUMENT, not a zero-length region; nothing leaked', async () => {
    const name = uniqueName('empty');
    writeFileSync(`/dev/shm/${name}`, '', { mode: 0o600 });
    made.add(name);
    const base = baseline();
    const e = expectErr(SharedRegion.openNamed(name), 'INVALID_ARGUMENT', 'openNamed of an empty object');
    assert.match(e.message, /empty/);
    await assertBack(base, 'refused empty object');
  });

  Linux('an object this user may only read: write-open is ACCESS_DENIED, read-only works; nothing leaked', () => {
    // Root passes every permission check, so as root the check runs in a
    // child whose uid is dropped to nobody (setpriv), on an object nobody owns
    // with mode 0400.
    const name = uniqueName('perm');
    const region = createNamed(name, 4096);
    region.bytes.set(Buffer.from('read me'));
    const path = `/dev/shm/${name}`;
    const script = `
      import { SharedRegion, openHandles, handlesLeaked } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
      // Warm-up: the first read of a read-only region opens /proc/self/pagemap
      // once for the life of the process (Mapping::MayHavePrivatePages).
      SharedRegion.openNamed(${JSON.stringify(name)}, { readOnly: true }).map((r) => (r.read(0, 1), r.close()));
      const before = openHandles()._unsafeUnwrap();
      const rw = SharedRegion.openNamed(${JSON.stringify(name)});
      const ro = SharedRegion.openNamed(${JSON.stringify(name)}, { readOnly: true });
      const text = ro.isOk() ? Buffer.from(ro.value.read(0, 7)._unsafeUnwrap()).toString() : ro.error.code;
      if (ro.isOk()) ro.value.close();
      const leaked = handlesLeaked(before, openHandles()._unsafeUnwrap());
      console.log(JSON.stringify({ rw: rw.isErr() ? rw.error.code : 'opened', message: rw.isErr() ? rw.error.message : '', text, leaked }));`;
    let command = [process.execPath, '--input-type=module', '-e', script];
    if (process.getuid() === 0) {
      spawnSync('chown', ['nobody', path]);
      command = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', ...command];
    }
    spawnSync('chmod', ['0400', path]);
    const child = spawnSync(command[0], command.slice(1), { encoding: 'utf8' });
    assert.is(child.status, 0, `${child.stdout}${child.stderr}`);
    const result = JSON.parse(child.stdout);
    assert.is(result.rw, 'ACCESS_DENIED', 'write-open refused');
    assert.match(result.message, /readOnly: true/, 'the message says what to do');
    assert.is(result.text, 'read me', 'read-only open works');
    assert.is(result.leaked, 0, 'no fd leaked in the child');
    region.close();
  });
}

API.run();
Contract.run();
Lifetime.run();
Linux.run();
