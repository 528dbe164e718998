// Named regions sent over a connection (issue 12): the receiver gets the
// live named memory, not a copy, but only if it opted in with
// { acceptNamedRegions: true }. On Linux and under Wine. The adversarial
// cases (an unsealed fd without the flag, a flagged value already in the
// receiver's table) are in adversarial.test.mjs; the third-party program
// case (Python / a C program made the object) in named-interop.test.mjs.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion, connect, listen, spawnWithRegions } from '../dist/index.js';
import { assertNoHandleLeak, expectErr, handleCensus, handleTable, isLinux, settleHandles, spawnRetrying, underWine, unwrap } from './helpers.mjs';

const PEER = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'named-peer.mjs');
const CONSUMER = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'python-consumer.py');
const unique = (tag) => `memport-test-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`;
const text = (bytes) => Buffer.from(bytes).toString('utf8');
const made = new Set();
function createNamed(name, size) {
  const region = unwrap(SharedRegion.createNamed(name, size), `createNamed(${name})`);
  made.add(name);
  return region;
}
function cleanUp() {
  if (isLinux) for (const name of made) SharedRegion.unlinkNamed(name);
  made.clear();
}
function baseline() {
  return { census: handleCensus(), table: underWine ? handleTable() : undefined };
}
async function assertBack(base, what) {
  await settleHandles();
  assertNoHandleLeak(base.census, what, base.table);
}

/** A listener in this process and both ends of one connection; `server` options for the listener. */
async function connectedPair(serverOptions = {}, clientOptions = {}) {
  const channel = unique('ch');
  const listener = unwrap(await listen(channel, serverOptions));
  const client = connect(channel, { timeoutMs: 5000, ...clientOptions });
  const server = unwrap(await listener.accept({ timeoutMs: 5000 }));
  const conn = unwrap(await client);
  return { listener, server, conn, close: () => [conn, server, listener].forEach((x) => x.close()) };
}

/** The named-peer fixture in its own process, connected to a listener here; `ask` sends and waits for its answer. */
async function startPeer(options) {
  const channel = unique('peer');
  const listener = unwrap(await listen(channel));
  const child = spawnRetrying(process.execPath, [PEER, channel, JSON.stringify(options ?? {})], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
  const conn = unwrap(await listener.accept({ timeoutMs: 20_000 }), 'the peer connects');
  const ask = async (message) => {
    const sent = await conn.send(message);
    if (sent.isErr()) return sent;
    return (await conn.receive({ timeoutMs: 20_000 })).map((m) => m.data);
  };
  const stop = async () => {
    await conn.send({ data: 'stop' });
    const { code, output: said } = await exited;
    conn.close();
    listener.close();
    assert.is(code, 0, `the peer exited cleanly: ${said}`);
  };
  return { ask, stop, conn, output: () => output };
}

// ---------------------------------------------------------------------------
const Options = suite('acceptNamedRegions: the option');

Options('must be a boolean on connect and listen; anything else is INVALID_ARGUMENT before any system call', async () => {
  for (const bad of ['yes', 1, null, {}]) {
    const c = expectErr(await connect('x', { acceptNamedRegions: bad }), 'INVALID_ARGUMENT', `connect acceptNamedRegions ${String(bad)}`);
    assert.match(c.message, /connect: options\.acceptNamedRegions must be true or false/);
    const l = expectErr(await listen('x', { acceptNamedRegions: bad }), 'INVALID_ARGUMENT', `listen acceptNamedRegions ${String(bad)}`);
    assert.match(l.message, /listen: options\.acceptNamedRegions must be true or false/);
  }
});

// ---------------------------------------------------------------------------
const Live = suite('named regions over a connection: live memory');
Live.after(cleanUp);

Live('two processes share the named memory both ways: later writes are seen on each side; the receiver closing leaves the sender working', async () => {
  const region = createNamed(unique('live'), 16384);
  region.write(0, Buffer.from('hello by name'));
  const peer = await startPeer();
  try {
    const arrived = unwrap(await peer.ask({ regions: [region] }), 'send the named region');
    assert.equal(arrived, { named: true, name: null, size: 16384, readOnly: false, head: 'hello by name' }, 'it arrived as a named region, without its name');
    // The sender writes after the send: the receiver sees it (not a copy).
    region.bytes.set(Buffer.from('written after send'), 200);
    assert.equal(unwrap(await peer.ask({ data: { read: [200, 18] } })), { read: 'written after send', view: 'written after send' }, 'the receiver sees the later write');
    // The receiver writes: the sender sees it.
    assert.is(unwrap(await peer.ask({ data: { write: [9000, 'from the receiver'] } })), 'written');
    assert.is(text(unwrap(region.read(9000, 17))), 'from the receiver', 'the sender sees the receiver’s write');
    assert.is(unwrap(await peer.ask({ data: 'close' })), 'closed');
    region.bytes.set(Buffer.from('still mine'), 0);
    assert.is(text(unwrap(region.read(0, 10))), 'still mine', 'the sender’s region works after the receiver closed its own');
    // And it can be sent again.
    assert.equal(unwrap(await peer.ask({ regions: [region] })).head, 'still mineame', 'sent again, it arrives with what is there now');
  } finally {
    await peer.stop();
    region.close();
  }
});

Live('spawnWithRegions hands a named region to a child that opts in with connectToParent({ acceptNamedRegions: true })', async () => {
  const region = createNamed(unique('spawn'), 4096);
  region.write(0, Buffer.from('for the child'));
  const { child, connection } = unwrap(await spawnWithRegions(process.execPath, [PEER, '--parent'], { regions: [region], stdio: 'ignore' }), 'spawnWithRegions');
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    const answer = unwrap(await connection.receive({ timeoutMs: 20_000 }), 'the child’s report').data;
    assert.equal(answer, { named: true, name: null, size: 4096, readOnly: false, head: 'for the child' });
    unwrap(await connection.send({ data: 'stop' }));
    assert.is(await exited, 0, 'the child exited cleanly');
  } finally {
    connection.close();
    region.close();
  }
});

Live('a receiver that did not opt in: the sender gets UNSUPPORTED saying what to do, and the connection carries on', async () => {
  const region = createNamed(unique('refused'), 4096);
  const peer = await startPeer({ optIn: false });
  try {
    const e = expectErr(await peer.conn.send({ regions: [region] }), 'UNSUPPORTED', 'send to a peer without acceptNamedRegions');
    assert.match(e.message, /acceptNamedRegions: true \}, or send region\.copyToUnnamed\(\)/);
    const copy = unwrap(region.copyToUnnamed());
    assert.equal(unwrap(await peer.ask({ regions: [copy] })).named, false, 'an unnamed copy goes through on the same connection');
    copy.close();
  } finally {
    await peer.stop();
    region.close();
  }
});

Live('a receiver written before the named flag (the Python consumer of examples/) drops the connection: the sender gets PEER_CLOSED', async () => {
  if (!isLinux || spawnSync('python3', ['--version']).status !== 0) return; // that consumer is the Linux half of the protocol
  const region = createNamed(unique('old'), 4096);
  const channel = unique('old-peer');
  const listener = unwrap(await listen(channel));
  const py = spawnRetrying('python3', [CONSUMER, channel, '--messages', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  py.stdout.on('data', (d) => (out += d));
  py.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => py.once('exit', resolve));
  const conn = unwrap(await listener.accept({ timeoutMs: 10_000 }));
  try {
    expectErr(await conn.send({ regions: [region] }, { timeoutMs: 10_000 }), 'PEER_CLOSED', 'send to a receiver that does not know the flag');
    assert.is.not(await exited, 0, 'the old receiver refused the frame');
    assert.match(out, /bad descriptor/, `it says why: ${out}`);
  } finally {
    conn.close();
    listener.close();
    region.close();
  }
});

Live('in one process: the received region is named with no name, size-checked, and nothing is left open once both are closed', async () => {
  const region = createNamed(unique('inproc'), 8192);
  region.write(0, Buffer.from('abc'));
  const pair = await connectedPair({ acceptNamedRegions: true });
  try {
    const base = baseline();
    // Windows: the value pushed into the receiver (here: this process) is
    // closed by the sender once ACKed, so after the receiver closes its own
    // duplicate the census is back where it was; a kept value would be one
    // more on real Windows, where the census is a count. Under Wine it is a
    // slot probe that three kept values do not move (tried): there the
    // adversarial suite's C receiver checks the pushed value itself.
    // Linux: the received fd is closed with the region.
    for (let round = 0; round < 3; round++) {
      const [sent, received] = await Promise.all([pair.conn.send({ regions: [region] }), pair.server.receive({ timeoutMs: 5000 })]);
      unwrap(sent, 'send');
      const [got] = unwrap(received, 'receive').regions;
      assert.ok(got.named, 'received.named');
      assert.is(got.name, undefined, 'received.name: the name is not passed on');
      assert.is(text(unwrap(got.read(0, 3))), 'abc');
      expectErr(got.read(8190, 4), 'INVALID_ARGUMENT', 'read past the end');
      expectErr(got.toReadOnly(), 'UNSUPPORTED', 'no read-only twin of named memory');
      unwrap(got.write(4000, Buffer.from('back')));
      assert.is(text(region.bytes.subarray(4000, 4004)), 'back', 'live: the write is seen by the sender');
      got.close();
    }
    await assertBack(base, 'three named regions sent, received and closed');
    assert.is(text(unwrap(region.read(0, 3))), 'abc', 'the sender’s region still works');
  } finally {
    pair.close();
    region.close();
  }
});

Live('a read-only named region arrives read-only: writes through the view or write() stay private', async () => {
  const name = unique('ro');
  const owner = createNamed(name, 8192);
  owner.write(0, Buffer.from('read me'));
  const reader = unwrap(SharedRegion.openNamed(name, { readOnly: true }), 'openNamed read-only');
  const pair = await connectedPair({}, { acceptNamedRegions: true });
  try {
    const [sent, received] = await Promise.all([pair.server.send({ regions: [reader] }), pair.conn.receive({ timeoutMs: 5000 })]);
    unwrap(sent, 'send read-only');
    const [got] = unwrap(received).regions;
    assert.ok(got.readOnly && got.named, 'read-only and named');
    assert.is(text(got.bytes.subarray(0, 7)), 'read me');
    got.bytes[0] = 0x52; // a private copy-on-write page
    assert.is(owner.bytes[0], 0x72, 'a write through the read-only view does not reach the owner');
    unwrap(got.write(2, Buffer.from('x')), 'write() on a read-only region writes its private copy');
    assert.is(owner.bytes[2], 0x61, 'and does not reach the owner either');
    // On a page the receiver never wrote (its writes made private copies of page 0).
    owner.write(5000, Buffer.from('later'));
    assert.is(text(unwrap(got.read(5000, 5))), 'later', 'later writes by the owner are seen');
    got.close();
  } finally {
    pair.close();
    reader.close();
    owner.close();
  }
});

Options.run();
Live.run();
