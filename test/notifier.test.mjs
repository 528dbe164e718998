// Notifier (issue 11, section 1): auto-reset, coalescing wake-ups that are
// never lost; every pending wait released by one wake; timeouts, aborts and
// close; for-await; ref/unref; no handle leaked; and the receipt-side checks
// that refuse a handle of the wrong kind or with the wrong rights without
// closing it. Runs unchanged on Linux (eventfd) and Windows (Event, Wine).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Notifier, SharedRegion, connect, listen } from '../dist/index.js';
import {
  closeUnownedHandle,
  duplicateNotifierHandle,
  duplicateNotifierInto,
  notifierFromHandle,
  notifierHandle,
} from '../dist/testing.js';
import { EVIL_PEER, assertNoHandleLeak, expectErr, handleCensus, handleTable, isLinux, isWindows, settle, underWine, unwrap } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PEER = join(here, 'fixtures', 'notifier-peer.mjs');
const WAIT = underWine ? 30_000 : 10_000;
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** Long enough for a wake that is coming to have come (a report crosses a thread under Wine). */
const QUIET_MS = underWine ? 300 : 50;

// Windows access rights (winnt.h).
const SYNCHRONIZE = 0x00100000;
const EVENT_MODIFY_STATE = 0x0002;
const EVENT_ALL_ACCESS = 0x001f0003;

/** Notifiers a test made; closed after each test, whatever its outcome (Node 20 has no `using`). */
const live = [];
const created = () => {
  const notifier = unwrap(Notifier.create(), 'Notifier.create()');
  live.push(notifier);
  return notifier;
};
const closeAll = () => {
  for (const notifier of live.splice(0)) notifier.close();
};

// -----------------------------------------------------------------------------
const Wake = suite('Notifier: wake semantics');

Wake('a notify wakes a wait that is already pending, and one that starts later', async () => {
  const notifier = created();
  const pending = notifier.wait({ timeoutMs: WAIT });
  setTimeout(() => unwrap(notifier.notify(), 'notify'), 10);
  unwrap(await pending, 'the pending wait');
  unwrap(notifier.notify(), 'notify');
  unwrap(await notifier.wait({ timeoutMs: WAIT }), 'a wait after the notify');
});

Wake('notifications coalesce: five notifies before a wait wake it once', async () => {
  const notifier = created();
  for (let i = 0; i < 5; i++) unwrap(notifier.notify(), `notify ${i}`);
  unwrap(await notifier.wait({ timeoutMs: WAIT }), 'the first wait');
  expectErr(await notifier.wait({ timeoutMs: QUIET_MS }), 'TIMEOUT', 'the second wait: nothing is pending any more');
});

Wake('a wake is never lost: a notify with nobody waiting, even right after a wait gave up, wakes the next wait', async () => {
  const notifier = created();
  unwrap(notifier.notify(), 'notify');
  await delay(QUIET_MS); // nobody waits: the notification stays pending
  unwrap(await notifier.wait({ timeoutMs: 0 }), 'the next wait finds it at once');
  // A wait that timed out leaves no watch behind that could take the next notification.
  expectErr(await notifier.wait({ timeoutMs: 20 }), 'TIMEOUT', 'a wait with nothing pending');
  unwrap(notifier.notify(), 'notify after the timeout');
  await delay(QUIET_MS);
  unwrap(await notifier.wait({ timeoutMs: 0 }), 'the next wait still gets it');
});

Wake('one wake releases every wait pending at that moment; a wait that starts after it waits for the next', async () => {
  const notifier = created();
  const waits = [1, 2, 3].map(() => notifier.wait({ timeoutMs: WAIT }));
  assert.match(inspect(notifier), /3 waiting/);
  unwrap(notifier.notify(), 'notify');
  for (const [i, w] of waits.entries()) unwrap(await w, `wait ${i}`);
  assert.match(inspect(notifier), /0 waiting/);
  expectErr(await notifier.wait({ timeoutMs: QUIET_MS }), 'TIMEOUT', 'a later wait: that wake was used up');
});

Wake('timeoutMs ends a wait with TIMEOUT, and a signal with ABORTED; neither takes a later notification', async () => {
  const notifier = created();
  const timedOut = expectErr(await notifier.wait({ timeoutMs: 20 }), 'TIMEOUT', 'wait({ timeoutMs: 20 })');
  assert.match(timedOut.message, /timed out after 20 ms/);
  const controller = new AbortController();
  const aborted = notifier.wait({ signal: controller.signal });
  controller.abort(new Error('no longer needed'));
  const error = expectErr(await aborted, 'ABORTED', 'an aborted wait');
  assert.is(error.cause?.message, 'no longer needed');
  expectErr(await notifier.wait({ signal: AbortSignal.abort() }), 'ABORTED', 'a signal aborted before the wait');
  unwrap(notifier.notify(), 'notify');
  unwrap(await notifier.wait({ timeoutMs: WAIT }), 'the notification went to the next wait');
});

Wake('bad wait options are INVALID_ARGUMENT', async () => {
  const notifier = created();
  expectErr(await notifier.wait({ timeoutMs: -1 }), 'INVALID_ARGUMENT', 'timeoutMs: -1');
  expectErr(await notifier.wait({ signal: 'soon' }), 'INVALID_ARGUMENT', 'a signal that is not an AbortSignal');
});

// -----------------------------------------------------------------------------
const Life = suite('Notifier: close, iteration, inspect, ref');

Life('close() ends pending waits with CLOSED; afterwards notify and wait are CLOSED errors; close is idempotent', async () => {
  const notifier = created();
  const pending = [notifier.wait(), notifier.wait({ timeoutMs: WAIT })];
  notifier.close();
  for (const p of pending) assert.match(expectErr(await p, 'CLOSED', 'a wait pending at close').message, /Notifier\.create\(\)/);
  expectErr(notifier.notify(), 'CLOSED', 'notify after close');
  expectErr(await notifier.wait(), 'CLOSED', 'wait after close');
  assert.ok(notifier.closed);
  notifier.close();
  assert.is(inspect(notifier), 'Notifier { closed }');
});

Life('Symbol.dispose (`using notifier = …`) closes the notifier', () => {
  const notifier = created();
  assert.not.ok(notifier.closed);
  notifier[Symbol.dispose]();
  assert.ok(notifier.closed);
});

Life('a Notifier cannot be constructed directly', () => {
  assert.throws(() => new Notifier(), /Notifier\.create\(\)/);
});

Life('for await yields once per wake and ends when the notifier is closed', async () => {
  const notifier = created();
  unwrap(notifier.notify(), 'first notify');
  let wakes = 0;
  for await (const woke of notifier) {
    unwrap(woke, `wake ${wakes}`);
    wakes += 1;
    if (wakes === 3) setTimeout(() => notifier.close(), 5);
    else setTimeout(() => notifier.notify(), 5);
  }
  assert.is(wakes, 3);
});

Life('util.inspect shows the state and the waits, never the handle', async () => {
  const notifier = created();
  assert.is(inspect(notifier), 'Notifier { open, 0 waiting }');
  const pending = notifier.wait();
  notifier.unref();
  assert.is(inspect(notifier), 'Notifier { open, 1 waiting, unref }');
  notifier.ref();
  notifier.close();
  expectErr(await pending, 'CLOSED', 'the pending wait');
  assert.is(inspect(notifier), 'Notifier { closed }');
});

/** Starts the fixture; `exited` resolves with its code and output. */
function startPeer(args, stdio = ['pipe', 'pipe', 'pipe']) {
  const child = spawn(process.execPath, [PEER, ...args], { stdio });
  let output = '';
  const watchers = new Set();
  const collect = (d) => {
    output += d;
    for (const w of watchers) w();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  child.exited = new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
  child.waitFor = (pattern) =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (pattern.test(output)) {
          watchers.delete(check);
          resolve();
        }
      };
      watchers.add(check);
      check();
      child.exited.then(() => (pattern.test(output) ? undefined : reject(new Error(`ended without ${pattern}:\n${output}`))));
    });
  return child;
}
const exitWithin = (child, ms) => Promise.race([child.exited, delay(ms).then(() => undefined)]);

Life('unref(): a process whose only pending work is a wait exits by itself; ref\'d, it stays', async () => {
  const unrefd = startPeer(['unref-wait']);
  const done = await exitWithin(unrefd, WAIT);
  assert.ok(done, 'the process exited by itself');
  assert.is(done.code, 0, done.output);
  assert.match(done.output, /^READY\r?$/m);
  assert.not.match(done.output, /WOKE/);
  const refd = startPeer(['ref-wait']);
  await refd.waitFor(/^READY\r?$/m);
  assert.is(await exitWithin(refd, underWine ? 3000 : 1000), undefined, 'a ref\'d pending wait keeps it alive');
  refd.kill();
  await refd.exited;
});

Life('a worker thread that is terminated, or exits, with a wait pending ends cleanly', async () => {
  const { Worker } = await import('node:worker_threads');
  const index = new URL('../dist/index.js', import.meta.url).href;
  const code = `import(${JSON.stringify(index)}).then(async ({ Notifier }) => {
    const pending = Notifier.create().value;
    pending.wait();
    const other = Notifier.create().value;
    other.notify();
    await other.wait();
    require('node:worker_threads').parentPort.postMessage('waiting');
    if (require('node:worker_threads').workerData === 'exit') process.exit(0);
  });`;
  for (let i = 0; i < 6; i++) {
    const worker = new Worker(code, { eval: true, workerData: i % 2 ? 'exit' : 'terminate' });
    await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    if (i % 2 === 0) await worker.terminate();
    const code_ = await new Promise((resolve) => (worker.threadId === -1 ? resolve(0) : worker.once('exit', resolve)));
    assert.type(code_, 'number');
  }
  // This thread's notifiers are unaffected.
  const notifier = created();
  unwrap(notifier.notify());
  unwrap(await notifier.wait({ timeoutMs: WAIT }));
});

// -----------------------------------------------------------------------------
const Handles = suite('Notifier: handles and receipt checks');

Handles('a second handle adopted from a value wakes and is woken by the first, in both directions', async () => {
  const first = created();
  const value = unwrap(duplicateNotifierHandle(first), 'an unowned duplicate');
  assert.is.not(value, notifierHandle(first));
  const second = unwrap(notifierFromHandle(value), 'adopting it');
  unwrap(second.notify(), 'notify through the second');
  unwrap(await first.wait({ timeoutMs: WAIT }), 'the first wakes');
  const waiting = second.wait({ timeoutMs: WAIT });
  unwrap(first.notify(), 'notify through the first');
  unwrap(await waiting, 'the second wakes');
  expectErr(await first.wait({ timeoutMs: QUIET_MS }), 'TIMEOUT', 'one object: that wake was taken by the second');
  second.close();
  unwrap(first.notify(), 'the first still works after the second closed');
  unwrap(await first.wait({ timeoutMs: WAIT }), 'and wakes');
});

Handles('a handle memport already owns is refused with ALREADY_EXISTS and keeps working', async () => {
  const notifier = created();
  const error = expectErr(notifierFromHandle(notifierHandle(notifier)), 'ALREADY_EXISTS', 'adopting an owned value');
  assert.match(error.message, /one owner/);
  expectErr(closeUnownedHandle(notifierHandle(notifier)), 'ALREADY_EXISTS', 'the test hook will not close it either');
  unwrap(notifier.notify(), 'notify');
  unwrap(await notifier.wait({ timeoutMs: WAIT }), 'the notifier is intact');
});

Handles('bogus values are INVALID_HANDLE', () => {
  const values = isWindows ? [0, 1, 3, 0x105, 0xfffffff8, 0xffffffff] : [0x7ffffff0, 0xffffffff];
  for (const value of values) expectErr(notifierFromHandle(value), 'INVALID_HANDLE', `value ${value}`);
  expectErr(notifierFromHandle(-1), 'INVALID_ARGUMENT', 'a negative number');
});

if (isLinux) {
  /** The fds this process holds whose /proc link starts with `prefix` (Node's and libuv's own). */
  const fdsLinkedTo = (prefix) =>
    readdirSync('/proc/self/fd').map(Number).filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(prefix);
      } catch {
        return false;
      }
    });

  Handles('Linux: an fd that is not an eventfd (file, memfd, pipe, epoll) is refused with INVALID_HANDLE and left open', () => {
    const file = openSync(fileURLToPath(import.meta.url), 'r');
    const region = unwrap(SharedRegion.create(4096));
    const [owned] = fdsLinkedTo('/memfd:memport');
    expectErr(notifierFromHandle(owned), 'ALREADY_EXISTS', "a region's own memfd");
    const memfd = openSync(`/proc/self/fd/${owned}`, 'r'); // the same memory, an fd memport does not own
    const cases = [
      ['a regular file', file],
      ['a memfd', memfd],
      ['a pipe (Node\'s own)', fdsLinkedTo('pipe:')[0]],
      ['an epoll fd (libuv\'s own)', fdsLinkedTo('anon_inode:[eventpoll]')[0]],
    ];
    for (const [what, fd] of cases) {
      assert.type(fd, 'number', `this process has ${what}`);
      const link = readlinkSync(`/proc/self/fd/${fd}`);
      const error = expectErr(notifierFromHandle(fd), 'INVALID_HANDLE', what);
      assert.match(error.message, /not a notifier/);
      assert.is(readlinkSync(`/proc/self/fd/${fd}`), link, `${what} is still open, untouched`);
    }
    fstatSync(file);
    closeSync(file);
    closeSync(memfd);
    region.close();
  });
}

if (isWindows) {
  Handles('Windows: a section is refused with INVALID_HANDLE and left open', () => {
    const region = unwrap(SharedRegion.create(4096));
    const section = unwrap(region.duplicateInto(process.pid), 'an unowned section handle');
    const error = expectErr(notifierFromHandle(section), 'INVALID_HANDLE', 'a section');
    assert.match(error.message, /Section, not a notifier/);
    // Still open: it can be adopted as what it is.
    unwrap(SharedRegion.fromHandle(section, { size: 4096 }), 'the section, adopted as a region').close();
    region.close();
  });

  Handles('Windows: an Event with other rights than SYNCHRONIZE | EVENT_MODIFY_STATE is refused with ACCESS_DENIED and left open', async () => {
    const notifier = created();
    for (const [what, access] of [
      ['EVENT_ALL_ACCESS', EVENT_ALL_ACCESS],
      ['SYNCHRONIZE only', SYNCHRONIZE],
      ['EVENT_MODIFY_STATE only', EVENT_MODIFY_STATE],
    ]) {
      const value = unwrap(duplicateNotifierHandle(notifier, access), `a duplicate with ${what}`);
      expectErr(notifierFromHandle(value), 'ACCESS_DENIED', `an Event with ${what}`);
      unwrap(closeUnownedHandle(value), `the ${what} handle was left open (closing it succeeds)`);
      expectErr(closeUnownedHandle(value), 'INVALID_HANDLE', 'and now it is closed');
    }
    // The exact rights are accepted.
    unwrap(notifierFromHandle(unwrap(duplicateNotifierHandle(notifier, SYNCHRONIZE | EVENT_MODIFY_STATE))), 'the exact rights').close();
  });

  Handles('Windows: a listener\'s pipe handle is refused with INVALID_HANDLE and left open (the listener still accepts)', async () => {
    if (!existsSync(EVIL_PEER)) assert.unreachable(`the handle table needs ${EVIL_PEER} (node test/adversarial/build.mjs)`);
    const name = `notifier-pipe-${process.pid}`;
    const listener = unwrap(await listen(name), 'listen');
    try {
      const pipes = [...handleTable()].filter(([, kind]) => kind.startsWith('File') && kind.includes(name));
      assert.ok(pipes.length > 0, 'the listener holds pipe instances');
      for (const [value, kind] of pipes) {
        const error = expectErr(notifierFromHandle(Number(value)), 'INVALID_HANDLE', `${value} ${kind}`);
        assert.match(error.message, /File, not a notifier/, error.message);
      }
      const after = handleTable();
      for (const [value, kind] of pipes) assert.is(after.get(value), kind, `${value} is still open`);
      const connecting = connect(name, { timeoutMs: WAIT });
      const server = unwrap(await listener.accept({ timeoutMs: WAIT }), 'the listener still accepts');
      unwrap(await connecting, 'connect').close();
      server.close();
    } finally {
      listener.close();
    }
  });
}

Handles('many create/notify/wait/close and adopt/close cycles leave the handle census at baseline', async () => {
  const cycle = async (i) => {
    const notifier = created();
    if (i % 2) {
      const waiting = notifier.wait({ timeoutMs: WAIT });
      unwrap(notifier.notify());
      unwrap(await waiting);
    } else {
      unwrap(notifier.notify());
      unwrap(await notifier.wait({ timeoutMs: WAIT }));
    }
    const copy = unwrap(notifierFromHandle(unwrap(duplicateNotifierHandle(notifier))));
    if (i % 3 === 0) notifier.wait().then(() => {}); // closed while waiting
    copy.close();
    notifier.close();
  };
  for (let i = 0; i < 100; i++) await cycle(i); // warm-up: the runtime's one-time handles
  await settle();
  const tableBefore = underWine ? handleTable() : undefined;
  const before = handleCensus();
  const cycles = underWine ? 300 : 2000;
  for (let i = 0; i < cycles; i++) await cycle(i);
  await settle();
  await delay(50);
  assertNoHandleLeak(before, `${cycles} notifier cycles`, tableBefore);
});

Handles('across processes: a child given two notifiers is woken by one and wakes us through the other', async () => {
  const toChild = created();
  const fromChild = created();
  const rounds = 5;
  const stdio = isWindows ? ['pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe', notifierHandle(toChild), notifierHandle(fromChild)];
  const child = startPeer(['echo', String(rounds)], stdio);
  if (isWindows) {
    const values = [toChild, fromChild].map((n) => unwrap(duplicateNotifierInto(n, child.pid), 'duplicateNotifierInto'));
    child.stdin.write(`${values.join(' ')}\n`);
  }
  await child.waitFor(/^READY\r?$/m);
  for (let i = 0; i < rounds; i++) {
    unwrap(toChild.notify(), `notify ${i}`);
    unwrap(await fromChild.wait({ timeoutMs: WAIT }), `the child's answer ${i}`);
  }
  const done = await child.exited;
  assert.is(done.code, 0, done.output);
  assert.match(done.output, /^DONE\r?$/m);
});

if (!isWindows) {
  Handles('Linux: duplicateNotifierInto is UNSUPPORTED (an eventfd travels over a connection)', () => {
    const notifier = created();
    const error = expectErr(duplicateNotifierInto(notifier, process.pid), 'UNSUPPORTED', 'duplicateNotifierInto');
    assert.match(error.message, /SCM_RIGHTS/);
  });
}

for (const s of [Wake, Life, Handles]) s.after.each(closeAll);

const Workers = suite('Notifier: worker threads (forWorker / fromWorkerToken)');

Workers('a notifier posted to a worker as a token: each side wakes the other, 100 rounds; each closes its own', async () => {
  const { Worker } = await import('node:worker_threads');
  const index = new URL('../dist/index.js', import.meta.url).href;
  const code = `import(${JSON.stringify(index)}).then(async ({ Notifier }) => {
    const { parentPort, workerData } = require('node:worker_threads');
    const ping = Notifier.fromWorkerToken(workerData.ping);
    const pong = Notifier.fromWorkerToken(workerData.pong);
    if (ping.isErr() || pong.isErr()) return parentPort.postMessage('adopt failed');
    parentPort.postMessage('ready');
    for (let i = 0; i < workerData.rounds; i++) {
      const woke = await ping.value.wait({ timeoutMs: 30000 });
      if (woke.isErr()) return parentPort.postMessage('wait ' + i + ': ' + woke.error.code);
      pong.value.notify();
    }
    ping.value.close();
    pong.value.close();
    parentPort.postMessage('done');
  });`;
  const ping = created();
  const pong = created();
  const rounds = 100;
  const worker = new Worker(code, { eval: true, workerData: { ping: unwrap(ping.forWorker()), pong: unwrap(pong.forWorker()), rounds } });
  const said = [];
  const next = () => new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
  said.push(await next());
  assert.equal(said, ['ready']);
  const finished = next();
  for (let i = 0; i < rounds; i++) {
    unwrap(ping.notify());
    unwrap(await pong.wait({ timeoutMs: WAIT }), `the worker's wake ${i}`);
  }
  assert.is(await finished, 'done');
  // The worker closed its copies; ours still work.
  unwrap(ping.notify());
  unwrap(await ping.wait({ timeoutMs: WAIT }));
  ping.close();
  pong.close();
});

Workers('right after a wake, with nobody waiting, a notification is left for another holder of the object, not taken', async () => {
  const a = created();
  const b = unwrap(Notifier.fromWorkerToken(unwrap(a.forWorker())), 'a second handle to the same object');
  for (let round = 0; round < 20; round++) {
    const waiting = a.wait({ timeoutMs: WAIT });
    unwrap(b.notify());
    unwrap(await waiting, `round ${round}: a woke`);
    // Right after the wake (a's watch may linger): notify, and let the event
    // loop poll, so a watch still armed would see it.
    unwrap(a.notify());
    await new Promise((resolve) => setTimeout(resolve, 2));
    unwrap(await b.wait({ timeoutMs: WAIT }), `round ${round}: b takes the notification a did not wait for`);
    expectErr(await a.wait({ timeoutMs: 20 }), 'TIMEOUT', `round ${round}: and it was one notification`);
  }
  a.close();
  b.close();
});

Workers('a token adopts once (NOT_FOUND after), only as its kind (INVALID_ARGUMENT, left for its adopter), and is dropped after timeoutMs', async () => {
  const notifier = created();
  const token = unwrap(notifier.forWorker());
  assert.equal(Object.keys(token).sort(), ['id', 'memport']);
  const region = unwrap(SharedRegion.create(4096));
  const regionToken = unwrap(region.forWorker());
  expectErr(Notifier.fromWorkerToken(regionToken), 'INVALID_ARGUMENT', 'a region token');
  expectErr(SharedRegion.fromWorkerToken({ memport: 'region-token', id: token.id, size: 4096, readOnly: false }), 'INVALID_ARGUMENT', 'a notifier token as a region');
  unwrap(SharedRegion.fromWorkerToken(regionToken), 'the region token is still there for its adopter').close();
  const copy = unwrap(Notifier.fromWorkerToken(token), 'the notifier token is still there for its adopter');
  expectErr(Notifier.fromWorkerToken(token), 'NOT_FOUND', 'a second adoption');
  expectErr(Notifier.fromWorkerToken({ memport: 'notifier-token', id: -1 }), 'INVALID_ARGUMENT', 'a forged id');
  expectErr(Notifier.fromWorkerToken('token'), 'INVALID_ARGUMENT', 'not a token');
  expectErr(notifier.forWorker({ timeoutMs: 0 }), 'INVALID_ARGUMENT', 'timeoutMs 0');
  const late = unwrap(notifier.forWorker({ timeoutMs: 1 }));
  await delay(30);
  expectErr(Notifier.fromWorkerToken(late), 'NOT_FOUND', 'after its timeoutMs');
  copy.close();
  notifier.close();
  expectErr(notifier.forWorker(), 'CLOSED');
  region.close();
});

Workers('tokens made, adopted, dropped and closed leave the handle census at baseline', async () => {
  const cycle = async (i) => {
    const notifier = created();
    const token = unwrap(notifier.forWorker({ timeoutMs: i % 2 ? 1 : 60_000 }));
    if (i % 2 === 0) unwrap(Notifier.fromWorkerToken(token)).close();
    notifier.close();
  };
  for (let i = 0; i < 20; i++) await cycle(i);
  await delay(20);
  await settle();
  const tableBefore = underWine ? handleTable() : undefined;
  const before = handleCensus();
  for (let i = 0; i < 200; i++) await cycle(i);
  await delay(20); // the 1 ms tokens are dropped
  await settle();
  assertNoHandleLeak(before, '200 notifier tokens', tableBefore);
});

Wake.run();
Life.run();
Handles.run();
Workers.run();
