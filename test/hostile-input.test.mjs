// The API never throws: every public function, given hostile input — a
// throwing getter, a Proxy (throwing or revoked), a hostile iterable, an
// object posing as a SharedRegion, an AbortSignal or a Uint8Array — returns
// Err(INVALID_ARGUMENT) (a Result or a ResultAsync, as its type says), and
// reads each option exactly once.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion, channelAddress, connect, connectToParent, isMemportError, listen, spawnWithRegions } from '../dist/index.js';
import { assertNoHandleLeak, handleCensus, handleTable, settleHandles, underWine, unwrap } from './helpers.mjs';

const uniqueName = (what) => `${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const boom = () => {
  throw new Error('hostile getter');
};

/** Objects that throw when memport reads them, each labelled. */
function hostileObjects(keys) {
  const revocable = Proxy.revocable({}, {});
  revocable.revoke();
  const getters = {};
  for (const key of keys) Object.defineProperty(getters, key, { get: boom, enumerable: true });
  return {
    'throwing getters': getters,
    'a Proxy whose traps throw': new Proxy({}, { get: boom, has: boom, ownKeys: boom, getOwnPropertyDescriptor: boom, getPrototypeOf: boom }),
    'a revoked Proxy': revocable.proxy,
    'getters that throw a non-Error (a Proxy)': Object.defineProperties(
      {},
      Object.fromEntries(keys.map((key) => [key, { enumerable: true, get: () => {
        throw new Proxy({}, { get: boom, getPrototypeOf: boom });
      } }])),
    ),
  };
}

/** Arrays that throw when read: by iterator, by index, by length, revoked. */
function hostileArrays() {
  const iterated = [1];
  iterated[Symbol.iterator] = boom;
  const revocable = Proxy.revocable([], {});
  revocable.revoke();
  return {
    'an array whose iterator throws (and whose element is neither a region nor a string)': Object.assign(iterated, { 0: {} }),
    'a Proxy over an array whose element reads throw': new Proxy(['x'], { get: (t, k) => (k === 'length' ? 1 : boom()) }),
    'a Proxy over an array whose length throws': new Proxy([], { get: boom }),
    'a revoked Proxy over an array': revocable.proxy,
  };
}

/** Objects posing as a SharedRegion: made from its prototype, or a Proxy over a real one. */
function fakeRegions(real) {
  return {
    'Object.create(SharedRegion.prototype)': Object.create(SharedRegion.prototype),
    'a Proxy over a real region': new Proxy(real, {}),
    'a Proxy over a real region whose traps throw': new Proxy(real, { get: boom, getPrototypeOf: boom, has: boom }),
    'a plain object with a region\'s fields': { size: 4096, readOnly: false, closed: false, bytes: new Uint8Array(4096), osHandle: 3 },
  };
}

/** Objects posing as an AbortSignal. */
function fakeSignals() {
  const real = new AbortController().signal;
  return {
    'Object.create(AbortSignal.prototype)': Object.create(AbortSignal.prototype),
    'a Proxy over a real signal': new Proxy(real, {}),
    'a look-alike whose addEventListener throws': { aborted: false, reason: undefined, addEventListener: boom, removeEventListener: boom },
  };
}

/**
 * Calls `fn` and checks it neither threw nor returned anything but an
 * Err(INVALID_ARGUMENT) (awaiting a ResultAsync).
 */
async function expectInvalid(what, fn) {
  let returned;
  try {
    returned = fn();
  } catch (e) {
    assert.unreachable(`${what} threw ${e?.name}: ${e?.message}`);
  }
  let result = returned;
  if (returned && typeof returned.then === 'function') {
    try {
      result = await returned;
    } catch (e) {
      assert.unreachable(`${what} rejected with ${e?.name}: ${e?.message}`);
    }
  }
  assert.ok(result && typeof result.isErr === 'function', `${what} returns a Result`);
  assert.ok(result.isErr(), `${what} should be Err(INVALID_ARGUMENT), was Ok`);
  assert.ok(isMemportError(result.error), `${what}: a MemportError`);
  assert.is(result.error.code, 'INVALID_ARGUMENT', `${what}: ${result.error.code}: ${result.error.message}`);
}

/** A connected pair in this process, for send/receive. */
async function pair() {
  const name = uniqueName('hostile');
  const listener = unwrap(await listen(name), 'listen');
  const client = connect(name, { timeoutMs: 20_000 });
  const server = unwrap(await listener.accept({ timeoutMs: 20_000 }), 'accept');
  return { listener, server, client: unwrap(await client, 'connect') };
}

// ---------------------------------------------------------------------------
const Hostile = suite('hostile input is Err(INVALID_ARGUMENT), never an exception');

let tableBefore;
let before;
Hostile.before(async () => {
  // Warm-up: what the runtime and memport allocate once (a listener, a connect thread) is in the baseline.
  const { listener, server, client } = await pair();
  const got = server.receive({ timeoutMs: 20_000 });
  unwrap(await client.send({ data: 1 }, { timeoutMs: 20_000 }), 'warm-up send');
  unwrap(await got, 'warm-up receive');
  client.close();
  server.close();
  listener.close();
  await settleHandles();
  tableBefore = underWine ? handleTable() : undefined;
  before = handleCensus();
});

Hostile('regions: create, fromHandle, view, read, write, duplicateInto', async () => {
  const region = unwrap(SharedRegion.create(4096));
  try {
    for (const [label, bad] of Object.entries(hostileObjects(['label']))) {
      await expectInvalid(`SharedRegion.create(4096, ${label})`, () => SharedRegion.create(4096, bad));
    }
    for (const [label, bad] of Object.entries(hostileObjects(['size', 'readOnly', 'label']))) {
      await expectInvalid(`SharedRegion.fromHandle(3, ${label})`, () => SharedRegion.fromHandle(3, bad));
      await expectInvalid(`SharedRegion.create(${label})`, () => SharedRegion.create(bad));
      await expectInvalid(`region.view(${label})`, () => region.view(bad));
      await expectInvalid(`region.view(0, ${label})`, () => region.view(0, bad));
      await expectInvalid(`region.read(${label}, 1)`, () => region.read(bad, 1));
      await expectInvalid(`region.write(0, ${label})`, () => region.write(0, bad));
    }
    for (const [label, bad] of Object.entries(hostileObjects(['readOnly']))) {
      await expectInvalid(`region.duplicateInto(1, ${label})`, () => region.duplicateInto(1, bad));
    }
    const valueOf = { valueOf: boom, [Symbol.toPrimitive]: boom };
    await expectInvalid('SharedRegion.create({ valueOf: throws })', () => SharedRegion.create(valueOf));
    await expectInvalid('SharedRegion.fromHandle({ valueOf: throws }, …)', () => SharedRegion.fromHandle(valueOf, { size: 1 }));
    await expectInvalid('region.duplicateInto({ valueOf: throws })', () => region.duplicateInto(valueOf));
    // A Uint8Array look-alike, and a real one whose own `length` lies.
    await expectInvalid('region.write(0, Proxy(Uint8Array))', () => region.write(0, new Proxy(new Uint8Array(8), {})));
    await expectInvalid('region.write(0, { length: 8 })', () => region.write(0, { length: 8, byteLength: 8 }));
    const lying = new Uint8Array(8);
    Object.defineProperty(lying, 'length', { get: boom });
    unwrap(region.write(4088, lying), 'a real Uint8Array with a throwing own length is written by its real length');
    const liar = new Uint8Array(8);
    Object.defineProperty(liar, 'length', { value: 0 });
    await expectInvalid('region.write(4090, a Uint8Array claiming length 0)', () => region.write(4090, liar));
  } finally {
    region.close();
  }
});

Hostile('listen, connect, accept, channelAddress', async () => {
  const name = uniqueName('hostile-names');
  for (const [label, bad] of Object.entries(hostileObjects(['allow']))) {
    await expectInvalid(`listen(name, ${label})`, () => listen(name, bad));
    await expectInvalid(`listen(${label})`, () => listen(bad));
  }
  for (const [label, bad] of Object.entries(hostileObjects(['timeoutMs', 'signal', 'expectPid']))) {
    await expectInvalid(`connect(name, ${label})`, () => connect(name, bad));
    await expectInvalid(`connect(${label})`, () => connect(bad));
    await expectInvalid(`channelAddress(${label})`, () => channelAddress(bad));
  }
  for (const [label, signal] of Object.entries(fakeSignals())) {
    await expectInvalid(`connect(name, { signal: ${label} })`, () => connect(name, { signal, timeoutMs: 100 }));
  }
  const listener = unwrap(await listen(name), 'listen');
  try {
    for (const [label, bad] of Object.entries(hostileObjects(['timeoutMs', 'signal']))) {
      await expectInvalid(`listener.accept(${label})`, () => listener.accept(bad));
    }
    for (const [label, signal] of Object.entries(fakeSignals())) {
      await expectInvalid(`listener.accept({ signal: ${label} })`, () => listener.accept({ signal }));
    }
  } finally {
    listener.close();
  }
});

Hostile('send and receive: hostile messages, region look-alikes, hostile data, hostile options', async () => {
  const { listener, server, client } = await pair();
  const region = unwrap(SharedRegion.create(4096));
  try {
    for (const [label, bad] of Object.entries(hostileObjects(['regions', 'data']))) {
      await expectInvalid(`send(${label})`, () => client.send(bad));
    }
    for (const [label, bad] of Object.entries(hostileArrays())) {
      await expectInvalid(`send({ regions: ${label} })`, () => client.send({ regions: bad }));
    }
    for (const [label, fake] of Object.entries(fakeRegions(region))) {
      await expectInvalid(`send({ regions: [${label}] })`, () => client.send({ regions: [fake] }));
    }
    const toJSON = { toJSON: boom };
    const dataProxy = new Proxy({}, { get: boom, ownKeys: boom, getOwnPropertyDescriptor: boom });
    const throwsProxy = { toJSON() {
      throw new Proxy({}, { get: boom, getPrototypeOf: boom });
    } };
    for (const [label, data] of Object.entries({ 'a throwing toJSON': toJSON, 'a throwing Proxy': dataProxy, 'a toJSON that throws a Proxy': throwsProxy, 'a BigInt': 1n })) {
      await expectInvalid(`send({ data: ${label} })`, () => client.send({ data }));
    }
    for (const [label, bad] of Object.entries(hostileObjects(['timeoutMs', 'signal']))) {
      await expectInvalid(`send(message, ${label})`, () => client.send({ data: 1 }, bad));
      await expectInvalid(`receive(${label})`, () => server.receive(bad));
    }
    for (const [label, signal] of Object.entries(fakeSignals())) {
      await expectInvalid(`receive({ signal: ${label} })`, () => server.receive({ signal }));
    }
    // Nothing of the above was sent: the next message is the first one.
    const got = server.receive({ timeoutMs: 20_000 });
    unwrap(await client.send({ data: 'after' }, { timeoutMs: 20_000 }), 'send');
    assert.is(unwrap(await got).data, 'after');
  } finally {
    region.close();
    client.close();
    server.close();
    listener.close();
  }
});

Hostile('spawnWithRegions and connectToParent', async () => {
  for (const [label, bad] of Object.entries(hostileObjects(['regions', 'data', 'timeoutMs', 'env', 'shell']))) {
    await expectInvalid(`spawnWithRegions(node, [], ${label})`, () => spawnWithRegions(process.execPath, [], bad));
    await expectInvalid(`spawnWithRegions(${label})`, () => spawnWithRegions(bad));
    await expectInvalid(`spawnWithRegions(node, [], { env: ${label} })`, () => spawnWithRegions(process.execPath, [], { env: bad }));
    await expectInvalid(`connectToParent(${label})`, () => connectToParent(bad));
  }
  for (const [label, bad] of Object.entries(hostileArrays())) {
    await expectInvalid(`spawnWithRegions(node, ${label})`, () => spawnWithRegions(process.execPath, bad));
  }
  await expectInvalid('spawnWithRegions(node, [a non-string])', () => spawnWithRegions(process.execPath, [{ toString: boom }]));
});

Hostile('isMemportError never throws', () => {
  for (const [label, bad] of Object.entries(hostileObjects(['name', 'code']))) assert.is(isMemportError(bad), false, label);
});

Hostile('each option is read exactly once (what is validated is what is used)', async () => {
  const reads = {};
  const counted = (key, value) => ({ get [key]() {
    reads[key] = (reads[key] ?? 0) + 1;
    return typeof value === 'function' ? value(reads[key]) : value;
  } });
  // A timeout that is valid when validated and invalid when used would slip through a second read.
  const shifty = (n) => (n === 1 ? 200 : -1);
  const name = uniqueName('once');
  const absent = await connect(name, counted('timeoutMs', shifty));
  assert.is(reads.timeoutMs, 1, 'connect read timeoutMs once');
  assert.ok(absent.isErr() && absent.error.code === 'NOT_FOUND', 'and used the value it validated');
  const listener = unwrap(await listen(name, counted('allow', () => () => true)));
  assert.is(reads.allow, 1, 'listen read allow once');
  const client = connect(name, { timeoutMs: 20_000 });
  const server = unwrap(await listener.accept(counted('signal', undefined)));
  assert.is(reads.signal, 1, 'accept read signal once');
  const conn = unwrap(await client);
  delete reads.timeoutMs;
  const received = await server.receive(counted('timeoutMs', shifty));
  assert.is(reads.timeoutMs, 1, 'receive read timeoutMs once');
  assert.is(received.isErr() && received.error.code, 'TIMEOUT', 'and waited the 200 ms it validated');
  const message = { get regions() {
    reads.regions = (reads.regions ?? 0) + 1;
    return reads.regions === 1 ? [] : [{}];
  }, data: 'once' };
  const got = server.receive({ timeoutMs: 20_000 });
  unwrap(await conn.send(message, { timeoutMs: 20_000 }), 'send of a message whose regions getter changes its answer');
  assert.equal(unwrap(await got).regions, [], 'the regions validated are the regions sent');
  assert.is(reads.regions, 1, 'send read regions once');
  const region = unwrap(SharedRegion.create(4096, counted('label', 'x')));
  assert.is(reads.label, 1, 'create read label once');
  region.close();
  conn.close();
  server.close();
  listener.close();
});

Hostile('nothing leaked', async () => {
  await settleHandles();
  assertNoHandleLeak(before, 'hostile input', tableBefore);
});

Hostile.run();
