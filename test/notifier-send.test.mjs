// Notifiers travel in messages (issue 11 §1): conn.send({ notifiers }) gives
// the peer its own handle to the same wake-up object, received as
// message.notifiers, in order, beside the regions. Linux: the eventfd with
// SCM_RIGHTS, checked on receipt to be an eventfd. Windows: the Event
// duplicated into the peer with SYNCHRONIZE | EVENT_MODIFY_STATE only (the
// receiver refuses any other rights, so a receipt proves them).
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Notifier, SharedRegion, listen } from '../dist/index.js';
import { assertNoHandleLeak, expectErr, handleCensus, handleTable, settleHandles, underWine, unwrap } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PEER = join(here, 'fixtures', 'notifier-send-peer.mjs');
const WAIT = underWine ? 30_000 : 10_000;
const uniqueName = (what) => `${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/** A listener, the peer process connected to it, and the accepted connection. */
async function withPeer(what, body) {
  const name = uniqueName(what);
  const listener = unwrap(await listen(name));
  const child = spawn(process.execPath, [PEER, name], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('close', (code) => resolve(code)));
  try {
    const conn = unwrap(await listener.accept({ timeoutMs: WAIT }), 'accept');
    listener.close();
    const ask = async (message) => {
      unwrap(await conn.send(message, { timeoutMs: WAIT }), 'send');
      return unwrap(await conn.receive({ timeoutMs: WAIT }), 'reply').data;
    };
    await body({ conn, ask });
    unwrap(await conn.send({ data: { do: 'exit' } }, { timeoutMs: WAIT }), 'send exit');
    assert.is(await exited, 0, output);
    assert.match(output, /bye/);
    conn.close();
  } finally {
    child.kill();
    listener.close();
  }
}

const Send = suite('notifiers over a connection');

Send('two notifiers ping-pong between the processes: every wake arrives, none is lost', async () => {
  await withPeer('pingpong', async ({ conn, ask }) => {
    const a = unwrap(Notifier.create());
    const b = unwrap(Notifier.create());
    const rounds = 200;
    unwrap(await conn.send({ notifiers: [a, b], data: { do: 'pingpong', rounds } }, { timeoutMs: WAIT }));
    for (let i = 0; i < rounds; i++) {
      unwrap(a.notify(), `notify ${i}`);
      unwrap(await b.wait({ timeoutMs: WAIT }), `the peer's wake ${i}`);
    }
    assert.equal(unwrap(await conn.receive({ timeoutMs: WAIT })).data, { done: rounds });
    a.close();
    b.close();
  });
});

Send('regions and notifiers in one message arrive in order, each kind in its own list', async () => {
  await withPeer('mixed', async ({ ask }) => {
    const first = unwrap(SharedRegion.create(4096));
    first.bytes[0] = 11;
    const second = unwrap(SharedRegion.create(8192));
    second.bytes[0] = 22;
    const twin = unwrap(second.toReadOnly());
    const ns = [unwrap(Notifier.create()), unwrap(Notifier.create()), unwrap(Notifier.create())];
    const report = await ask({ regions: [first, twin], notifiers: ns, data: { do: 'report' } });
    assert.equal(report, {
      notifiers: 3,
      regions: [
        { size: 4096, first: 11, readOnly: false },
        { size: 8192, first: 22, readOnly: true },
      ],
    });
    // Each notifier is the one at its index: the peer notifies the third,
    // only the third wakes here.
    await ask({ notifiers: ns, data: { do: 'notify', index: 2 } });
    unwrap(await ns[2].wait({ timeoutMs: WAIT }), 'the third notifier woke');
    expectErr(await ns[0].wait({ timeoutMs: 50 }), 'TIMEOUT', 'the first did not');
    expectErr(await ns[1].wait({ timeoutMs: 50 }), 'TIMEOUT', 'the second did not');
    for (const n of ns) n.close();
    for (const r of [first, second, twin]) r.close();
  });
});

Send("the peer's copies are its own: it closes them, ours go on working", async () => {
  await withPeer('copies', async ({ ask }) => {
    const n = unwrap(Notifier.create());
    assert.equal(await ask({ notifiers: [n], data: { do: 'close-copies' } }), { closed: 1 });
    unwrap(n.notify());
    unwrap(await n.wait({ timeoutMs: WAIT }), 'our notifier still wakes');
    // And sending it again gives the peer a new copy.
    assert.equal(await ask({ notifiers: [n], data: { do: 'notify', index: 0 } }), { notified: 0 });
    unwrap(await n.wait({ timeoutMs: WAIT }), "the peer's new copy woke ours");
    n.close();
  });
});

Send('send() refuses what cannot travel: a closed notifier, a look-alike, more than 64 handles', async () => {
  await withPeer('refusals', async ({ conn }) => {
    const closed = unwrap(Notifier.create());
    closed.close();
    expectErr(await conn.send({ notifiers: [closed] }), 'CLOSED', 'a closed notifier');
    expectErr(await conn.send({ notifiers: [{ notify() {}, wait() {} }] }), 'INVALID_ARGUMENT', 'a look-alike');
    expectErr(await conn.send({ notifiers: 'n' }), 'INVALID_ARGUMENT', 'not an array');
    const regions = Array.from({ length: 60 }, () => unwrap(SharedRegion.create(4096)));
    const ns = Array.from({ length: 5 }, () => unwrap(Notifier.create()));
    const tooMany = expectErr(await conn.send({ regions, notifiers: ns }), 'INVALID_ARGUMENT', '65 handles');
    assert.match(tooMany.message, /at most 64 handles per message/);
    for (const x of [...regions, ...ns]) x.close();
    // The connection is unharmed.
    unwrap(await conn.send({ data: { do: 'report' } }, { timeoutMs: WAIT }));
    assert.equal(unwrap(await conn.receive({ timeoutMs: WAIT })).data, { notifiers: 0, regions: [] });
  });
});

Send('many notifiers sent and closed on both sides: the handle census is back at its baseline', async () => {
  await withPeer('census', async ({ ask }) => {
    const warm = unwrap(Notifier.create());
    await ask({ notifiers: [warm], data: { do: 'close-copies' } });
    warm.close();
    await settleHandles();
    const table = underWine ? handleTable() : undefined;
    const before = handleCensus();
    for (let i = 0; i < 50; i++) {
      const ns = [unwrap(Notifier.create()), unwrap(Notifier.create())];
      assert.equal(await ask({ notifiers: ns, data: { do: 'close-copies' } }), { closed: 2 });
      for (const n of ns) n.close();
    }
    await settleHandles();
    assertNoHandleLeak(before, '50 rounds of two notifiers sent and closed', table);
  });
});

Send.run();
