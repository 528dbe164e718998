// Streams across processes (issue 11 §2, §5): conn.send({ streams: [writer] })
// hands the peer a new reader (message.streams), woken by notifiers; the
// reader lives as long as the connection it came on. Order and content over
// many wrap-arounds with backpressure, fan-out to three processes, latest
// mode never torn, a reader killed mid-stream, a writer killed mid-record, a
// forged header or position, the lifeline rules, spawnWithRegions, bad
// arguments, and the handle census. Runs on Linux and under Wine.
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Notifier, SharedRegion, Stream, listen, spawnWithRegions } from '../dist/index.js';
import { frameIsRight, fillFrame, recordIsRight, recordOf } from './fixtures/stream-pattern.mjs';
import { assertNoHandleLeak, expectErr, handleCensus, handleTable, settleHandles, tick, underWine, unwrap } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PEER = join(here, 'fixtures', 'stream-peer.mjs');
const WAIT = underWine ? 60_000 : 20_000;
const uniqueName = (what) => `${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/** Starts the peer process connected to a fresh listener; returns its connection and controls. */
async function startPeer(what) {
  const name = uniqueName(what);
  const listener = unwrap(await listen(name));
  const child = spawn(process.execPath, [PEER, name], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const said = [];
  child.stdout.on('data', (d) => {
    output += d;
    for (const waiter of said.splice(0)) waiter();
  });
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve(code ?? signal)));
  try {
    const conn = unwrap(await listener.accept({ timeoutMs: WAIT }), 'accept');
    return {
      conn,
      child,
      exited,
      output: () => output,
      /** Resolves when the peer has printed `word`. */
      async saw(word) {
        const deadline = Date.now() + WAIT;
        while (!output.includes(word)) {
          assert.ok(Date.now() < deadline, `the peer did not say ${word}: ${output}`);
          await new Promise((resolve) => said.push(resolve));
        }
      },
      async ask(message) {
        unwrap(await conn.send(message, { timeoutMs: WAIT }), 'send');
        return unwrap(await conn.receive({ timeoutMs: WAIT }), 'reply');
      },
      async exit() {
        unwrap(await conn.send({ data: { do: 'exit' } }, { timeoutMs: WAIT }), 'send exit');
        assert.is(await exited, 0, output);
        assert.match(output, /bye/);
        conn.close();
      },
    };
  } finally {
    listener.close();
  }
}

async function withPeer(what, body) {
  const peer = await startPeer(what);
  try {
    await body(peer);
  } finally {
    peer.child.kill('SIGKILL');
    peer.conn.close();
  }
}

/** Writes records 0..count-1 of the pattern, waiting for room as needed. */
async function writeRecords(writer, count) {
  for (let n = 0; n < count; n++) unwrap(await writer.write(recordOf(n, writer.recordBytes), { timeoutMs: WAIT }), `write ${n}`);
}

const Send = suite('streams over a connection');

Send('the peer gets a reader: 5000 records through 8 slots (600 wrap-arounds), in order with their content, the writer waiting on the slow reader', async () => {
  await withPeer('order', async (peer) => {
    const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 64, records: 8 }));
    const asked = peer.ask({ streams: [writer], data: { do: 'read', check: 'records', slow: true } });
    await tick();
    const count = 5000;
    let waited = 0;
    for (let n = 0; n < count; n++) {
      // Backpressure, seen: the ring is full whenever tryWrite says TIMEOUT.
      const now = writer.tryWrite(recordOf(n, 64));
      if (now.isOk()) continue;
      assert.is(now.error.code, 'TIMEOUT', now.error.message);
      waited++;
      unwrap(await writer.write(recordOf(n, 64), { timeoutMs: WAIT }), `write ${n}`);
    }
    writer.close();
    const report = (await asked).data;
    assert.equal(report, { count, bad: 0, first: 0, last: count - 1, mode: 'queue', end: 'PEER_CLOSED', message: report.message });
    assert.match(report.message, /writer closed/);
    assert.ok(waited > 0, 'the writer had to wait for the reader at least once');
    await peer.exit();
  });
});

Send('a reader starts with the next record published after send(); what came before is not replayed', async () => {
  await withPeer('start', async (peer) => {
    const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 64, records: 8 }));
    for (let n = 0; n < 5; n++) unwrap(writer.tryWrite(recordOf(n, 64)));
    const asked = peer.ask({ streams: [writer], data: { do: 'read', check: 'none' } });
    await tick();
    for (let n = 5; n < 12; n++) unwrap(await writer.write(recordOf(n, 64), { timeoutMs: WAIT }));
    writer.close();
    const report = (await asked).data;
    assert.is(report.first, 5, 'first record the reader got');
    assert.is(report.count, 7);
    await peer.exit();
  });
});

Send('fan-out: three reader processes each get all 3000 records in order', async () => {
  const peers = await Promise.all([0, 1, 2].map((i) => startPeer(`fan${i}`)));
  try {
    const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 64, records: 16 }));
    const asked = peers.map((peer, i) => peer.ask({ streams: [writer], data: { do: 'read', check: 'records', slow: i === 1 } }));
    // Every reader is attached once its send was acknowledged.
    while (writer.readers < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    await writeRecords(writer, 3000);
    writer.close();
    for (const answer of await Promise.all(asked)) {
      assert.equal({ count: answer.data.count, bad: answer.data.bad, first: answer.data.first, end: answer.data.end }, { count: 3000, bad: 0, first: 0, end: 'PEER_CLOSED' });
    }
    for (const peer of peers) await peer.exit();
  } finally {
    for (const peer of peers) peer.child.kill('SIGKILL');
  }
});

Send('latest mode across processes: a reader checks every byte of each frame it gets while the writer races; never a torn frame', async () => {
  await withPeer('latest', async (peer) => {
    const frameBytes = 256 * 1024;
    const writer = unwrap(Stream.create({ mode: 'latest', recordBytes: frameBytes, records: 4 }));
    const asked = peer.ask({ streams: [writer], data: { do: 'read', check: 'frames' } });
    while (writer.readers < 1) await new Promise((resolve) => setTimeout(resolve, 5));
    const frames = underWine ? 600 : 3000;
    for (let n = 0; n < frames; n++) {
      const slot = unwrap(writer.tryAcquire(), `acquire ${n}`); // latest never waits
      fillFrame(slot.bytes, n);
      unwrap(writer.publish(slot, frameBytes));
      if (n % 50 === 0) await tick(); // let the reader's wake-ups in
    }
    writer.close();
    const report = (await asked).data;
    assert.is(report.bad, 0, `torn or out-of-order frames: ${JSON.stringify(report)}`);
    assert.ok(report.count >= 1, 'the reader got frames');
    assert.is(report.last, frames - 1, 'the reader ends with the newest frame');
    assert.is(report.end, 'PEER_CLOSED');
    await peer.exit();
  });
});

Send('a reader killed mid-stream, holding records: the writer drops it when its connection ends and carries on; nothing leaks', async () => {
  const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 64, records: 8 }));
  const peer = await startPeer('killreader');
  try {
    void peer.conn.send({ streams: [writer], data: { do: 'read', check: 'records', hold: 5 } }, { timeoutMs: WAIT });
    while (writer.readers < 1) await new Promise((resolve) => setTimeout(resolve, 5));
    await writeRecords(writer, 12); // the ring is full: the reader holds record 4, and 5..11 follow it
    await peer.saw('HOLDING');
    expectErr(writer.tryWrite(recordOf(12, 64)), 'TIMEOUT', 'the ring is full while the reader lives');
    const waiting = writer.write(recordOf(12, 64), { timeoutMs: WAIT });
    peer.child.kill('SIGKILL');
    unwrap(await waiting, 'the waiting write goes through once the reader is gone');
    assert.is(writer.readers, 0, 'the killed reader was dropped');
    for (let n = 13; n < 100; n++) unwrap(writer.tryWrite(recordOf(n, 64)), `write ${n} with no reader`);
  } finally {
    peer.child.kill('SIGKILL');
    peer.conn.close();
    writer.close();
  }
});

Send('a writer killed mid-record: the reader gets every published record intact, then PEER_CLOSED; never the half-written one', async () => {
  await withPeer('killwriter', async (peer) => {
    unwrap(await peer.conn.send({ data: { do: 'write', mode: 'queue', recordBytes: 64, records: 8, count: 6, then: 'mid-record' } }, { timeoutMs: WAIT }));
    const { streams } = unwrap(await peer.conn.receive({ timeoutMs: WAIT }), 'the stream');
    const [reader] = streams;
    await peer.saw('MID-RECORD');
    peer.child.kill('SIGKILL');
    for (let n = 0; n < 6; n++) {
      const record = unwrap(await reader.next({ timeoutMs: WAIT }), `record ${n}`);
      assert.is(record.seq, n);
      assert.ok(recordIsRight(n, record.bytes, 64), `record ${n} intact`);
      record.release();
    }
    const end = expectErr(await reader.next({ timeoutMs: WAIT }), 'PEER_CLOSED', 'after the published records');
    assert.match(end.message, /connection that carried this stream closed/);
    reader.close();
  });
});

Send('a writer forging its write position past the ring: the reader in this process ends with PROTOCOL, no hang, no crash', async () => {
  await withPeer('forge', async (peer) => {
    unwrap(await peer.conn.send({ data: { do: 'write', mode: 'queue', recordBytes: 64, records: 8, count: 3, then: 'forge-position' } }, { timeoutMs: WAIT }));
    const [reader] = unwrap(await peer.conn.receive({ timeoutMs: WAIT })).streams;
    await peer.saw('FORGED');
    const seen = [];
    let end;
    for (;;) {
      const r = await reader.next({ timeoutMs: WAIT });
      if (r.isErr()) {
        end = r.error;
        break;
      }
      seen.push(r.value.seq);
      r.value.release();
    }
    assert.is(end.code, 'PROTOCOL', end.message);
    assert.ok(seen.length <= 3, `at most the records really published: ${seen}`);
    expectErr(await reader.next(), 'PROTOCOL', 'it stays failed');
    reader.close();
  });
});

Send('a stream whose header is not a stream: receive() fails with PROTOCOL, the connection is dropped, nothing of it is kept', async () => {
  await settleHandles();
  const table = underWine ? handleTable() : undefined;
  const before = handleCensus();
  await withPeer('forged', async (peer) => {
    unwrap(await peer.conn.send({ data: { do: 'send-forged' } }, { timeoutMs: WAIT }));
    const error = expectErr(await peer.conn.receive({ timeoutMs: WAIT }), 'PROTOCOL', 'receiving the forged stream');
    assert.match(error.message, /stream 0 .*not a memport stream/);
    assert.ok(peer.conn.closed, 'the connection was dropped');
    assert.is(await peer.exited, 0, peer.output());
    assert.match(peer.output(), /END PEER_CLOSED/);
  });
  await settleHandles();
  assertNoHandleLeak(before, 'a forged stream received and refused', table);
});

const Lifeline = suite('a reader lives as long as its connection');

Lifeline('the writer\'s side closing the connection drops the peer reader at once (PEER_CLOSED); the writer carries on', async () => {
  await withPeer('lifeline-w', async (peer) => {
    const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 64, records: 8 }));
    unwrap(await peer.conn.send({ streams: [writer], data: { do: 'read', check: 'records' } }, { timeoutMs: WAIT }));
    await writeRecords(writer, 3);
    assert.is(writer.readers, 1);
    peer.conn.close();
    assert.is(writer.readers, 0, 'closing the connection dropped its reader');
    for (let n = 3; n < 20; n++) unwrap(writer.tryWrite(recordOf(n, 64)), 'no reader holds the writer back');
    assert.is(await peer.exited, 0, peer.output());
    const report = JSON.parse(/REPORT (.*)/.exec(peer.output())[1]);
    assert.ok(report.count <= 3, 'at most the records published before the close');
    assert.is(report.bad, 0, 'and each of them intact');
    assert.is(report.end, 'PEER_CLOSED');
    assert.match(report.message, /dropped this reader/);
    writer.close();
  });
});

Lifeline('the reader\'s side closing its connection ends the reader with CLOSED saying why; for await throws it instead of ending quietly', async () => {
  await withPeer('lifeline-r', async (peer) => {
    unwrap(await peer.conn.send({ data: { do: 'write', mode: 'queue', recordBytes: 64, records: 8, count: 2, then: 'mid-record' } }, { timeoutMs: WAIT }));
    const [reader] = unwrap(await peer.conn.receive({ timeoutMs: WAIT })).streams;
    await peer.saw('MID-RECORD');
    const first = unwrap(await reader.next({ timeoutMs: WAIT }));
    first.release();
    const looping = (async () => {
      for await (const record of reader) record.release();
    })();
    await tick();
    peer.conn.close();
    const thrown = await looping.then(() => undefined, (e) => e);
    assert.ok(thrown, 'the loop threw');
    assert.is(thrown.code, 'CLOSED');
    assert.match(thrown.message, /lives as long as its connection/);
    assert.ok(reader.closed);
    expectErr(await reader.next(), 'CLOSED');
  });
});

Lifeline('a send that fails takes its reader back at once (the peer is gone)', async () => {
  const peer = await startPeer('lifeline-fail');
  const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 64, records: 8 }));
  try {
    peer.child.kill('SIGKILL');
    await peer.exited;
    const sent = await peer.conn.send({ streams: [writer] }, { timeoutMs: WAIT });
    assert.ok(sent.isErr(), 'the send fails');
    assert.ok(['PEER_CLOSED', 'CLOSED'].includes(sent.error.code), sent.error.message);
    assert.is(writer.readers, 0, 'no reader is left attached');
    for (let n = 0; n < 20; n++) unwrap(writer.tryWrite(recordOf(n, 64)));
  } finally {
    peer.conn.close();
    writer.close();
  }
});

const Args = suite('streams in send(): arguments');

Args('bad streams are refused before anything is sent, with nothing attached or leaked', async () => {
  await withPeer('args', async (peer) => {
    const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 64, records: 8, maxReaders: 1 }));
    expectErr(await peer.conn.send({ streams: writer }), 'INVALID_ARGUMENT', 'not an array');
    expectErr(await peer.conn.send({ streams: [{}] }), 'INVALID_ARGUMENT', 'a look-alike');
    expectErr(await peer.conn.send({ streams: [Object.create(Object.getPrototypeOf(writer))] }), 'INVALID_ARGUMENT', 'an object with the prototype');
    expectErr(await peer.conn.send({ streams: new Array(17).fill(writer) }), 'INVALID_ARGUMENT', '17 streams are 68 handles');
    const regions = Array.from({ length: 61 }, () => unwrap(SharedRegion.create(64)));
    expectErr(await peer.conn.send({ regions, streams: [writer] }), 'INVALID_ARGUMENT', '61 regions and a stream');
    for (const r of regions) r.close();
    assert.is(writer.readers, 0);
    // maxReaders 1: the second reader of the same send is refused, and the
    // first taken back, its control region and notifier closed with it.
    const refuseTwice = async () => {
      const twice = expectErr(await peer.conn.send({ streams: [writer, writer] }), 'INVALID_ARGUMENT', 'over maxReaders');
      assert.match(twice.message, /streams\[1\].*maxReaders/);
      assert.is(writer.readers, 0, 'the reader made for streams[0] was taken back');
    };
    await refuseTwice(); // warm-up: the writer's own notifier is made with its first peer reader
    await settleHandles();
    const table = underWine ? handleTable() : undefined;
    const before = handleCensus();
    for (let i = 0; i < 10; i++) await refuseTwice();
    // No garbage collection first: what was taken back is closed, not left to a finalizer.
    assertNoHandleLeak(before, 'sends refused over maxReaders', table);
    writer.close();
    expectErr(await peer.conn.send({ streams: [writer] }), 'CLOSED', 'a closed writer');
    await peer.exit();
  });
});

Args('spawnWithRegions({ streams, notifiers }): the child gets a reader and a notifier with connectToParent()', async () => {
  const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 64, records: 8 }));
  const done = unwrap(Notifier.create());
  const script = `
    import { connectToParent } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
    const { streams: [reader], notifiers: [done], connection } = (await connectToParent())._unsafeUnwrap();
    let sum = 0, count = 0;
    for await (const record of reader) { sum += record.bytes[4] ?? 0; count++; }
    done.notify();
    console.log(JSON.stringify({ count, sum }));
    connection.close();`;
  const { child, connection } = unwrap(await spawnWithRegions(process.execPath, ['--input-type=module', '-e', script], { streams: [writer], notifiers: [done], stdio: ['ignore', 'pipe', 'inherit'], timeoutMs: WAIT }));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.once('close', resolve));
  let sum = 0;
  for (let n = 0; n < 200; n++) {
    const record = recordOf(n, 64);
    sum += record[4] ?? 0;
    unwrap(await writer.write(record, { timeoutMs: WAIT }));
  }
  writer.close();
  unwrap(await done.wait({ timeoutMs: WAIT }), 'the child notified');
  assert.is(await exited, 0);
  assert.equal(JSON.parse(out), { count: 200, sum });
  connection.close();
  done.close();
});

const Moved = suite('a reader that came over a connection, moved to a worker thread');

// Opens the bundle, reads every record (checking the pattern) until the
// stream ends, and reports what it saw and how it ended.
const workerCode = `
import { Stream } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
import { recordIsRight } from ${JSON.stringify(new URL('./fixtures/stream-pattern.mjs', import.meta.url).href)};
import { parentPort, workerData } from 'node:worker_threads';
const opened = Stream.openReader(workerData.bundle);
if (opened.isErr()) {
  parentPort.postMessage({ open: opened.error.code + ': ' + opened.error.message });
} else {
  const reader = opened.value;
  const report = { count: 0, first: -1, bad: 0 };
  parentPort.postMessage({ opened: true });
  for (;;) {
    const next = await reader.next({ timeoutMs: 60000 });
    if (next.isErr()) { report.end = next.error.code; report.message = next.error.message; break; }
    const { seq, bytes } = next.value;
    if (report.first < 0) report.first = seq;
    if (seq !== report.first + report.count || !recordIsRight(seq, bytes, 64)) report.bad++;
    report.count++;
    next.value.release();
  }
  reader.close();
  parentPort.postMessage(report);
}
`;

/** Moves `reader` to a new worker; resolves with the worker's report once it opened and once it ended. */
async function readInWorker(reader) {
  const bundle = unwrap(reader.forWorker(), 'reader.forWorker');
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(workerCode)}`), { workerData: { bundle } });
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  const messages = [];
  const waiters = [];
  worker.on('message', (m) => {
    messages.push(m);
    for (const w of waiters.splice(0)) w();
  });
  const nth = async (n) => {
    while (messages.length <= n) await new Promise((resolve) => waiters.push(resolve));
    return messages[n];
  };
  assert.equal(await nth(0), { opened: true }, 'the worker opened the reader');
  // The worker has nothing left once it reported: it must end by itself, cleanly.
  return { report: nth(1), worker, exited };
}

Moved('the main thread reads one record, moves the reader; the worker reads every later record in order, to the writer\'s close', async () => {
  await withPeer('moved', async (peer) => {
    unwrap(await peer.conn.send({ data: { do: 'write', mode: 'queue', recordBytes: 64, records: 8, count: 2000, then: 'close' } }, { timeoutMs: WAIT }));
    const [reader] = unwrap(await peer.conn.receive({ timeoutMs: WAIT })).streams;
    const first = unwrap(await reader.next({ timeoutMs: WAIT }));
    assert.is(first.seq, 0);
    const { report, exited } = await readInWorker(reader); // record 0, never released here, is released by the move
    expectErr(await reader.next(), 'CLOSED', 'the moved reader is closed here');
    const got = await report;
    assert.equal({ count: got.count, first: got.first, bad: got.bad, end: got.end }, { count: 1999, first: 1, bad: 0, end: 'PEER_CLOSED' });
    assert.match(got.message, /writer closed/);
    assert.equal(unwrap(await peer.conn.receive({ timeoutMs: WAIT })).data, { wrote: 2000 });
    assert.is(await exited, 0, 'the worker ended by itself once its reader closed');
    await peer.exit();
  });
});

Moved('the writer\'s process killed: the worker\'s reader gets every published record, then PEER_CLOSED (the connection told this thread, which told the worker)', async () => {
  await withPeer('moved-kill', async (peer) => {
    unwrap(await peer.conn.send({ data: { do: 'write', mode: 'queue', recordBytes: 64, records: 8, count: 6, then: 'mid-record' } }, { timeoutMs: WAIT }));
    const [reader] = unwrap(await peer.conn.receive({ timeoutMs: WAIT })).streams;
    const { report, exited } = await readInWorker(reader);
    await peer.saw('MID-RECORD');
    peer.child.kill('SIGKILL');
    const got = await report;
    assert.equal({ count: got.count, first: got.first, bad: got.bad, end: got.end }, { count: 6, first: 0, bad: 0, end: 'PEER_CLOSED' });
    assert.match(got.message, /connection that carried this stream closed/);
    assert.is(await exited, 0, 'the worker ended by itself once its reader closed');
  });
});

Moved('closing the connection in the main thread ends the worker\'s reader with CLOSED saying why', async () => {
  await withPeer('moved-close', async (peer) => {
    unwrap(await peer.conn.send({ data: { do: 'write', mode: 'queue', recordBytes: 64, records: 8, count: 2, then: 'mid-record' } }, { timeoutMs: WAIT }));
    const [reader] = unwrap(await peer.conn.receive({ timeoutMs: WAIT })).streams;
    const { report, exited } = await readInWorker(reader);
    await peer.saw('MID-RECORD');
    peer.conn.close();
    const got = await report;
    assert.is(got.end, 'CLOSED');
    assert.match(got.message, /lives as long as its connection/);
    assert.ok(got.count <= 2 && got.bad === 0, JSON.stringify(got));
    assert.is(await exited, 0, 'the worker ended by itself once its reader closed');
  });
});

Moved('a reader with a next() waiting cannot move; a moved or closed one says CLOSED; a bundle opens once', async () => {
  await withPeer('moved-args', async (peer) => {
    unwrap(await peer.conn.send({ data: { do: 'write', mode: 'queue', recordBytes: 64, records: 8, count: 0, then: 'mid-record' } }, { timeoutMs: WAIT }));
    const [reader] = unwrap(await peer.conn.receive({ timeoutMs: WAIT })).streams;
    const waiting = reader.next({ timeoutMs: 50 });
    expectErr(reader.forWorker(), 'INVALID_ARGUMENT', 'while next() waits');
    expectErr(await waiting, 'TIMEOUT');
    const bundle = unwrap(reader.forWorker());
    expectErr(reader.forWorker(), 'CLOSED', 'moved already');
    const opened = unwrap(Stream.openReader(bundle), 'opened here, as a worker would');
    expectErr(Stream.openReader(bundle), 'NOT_FOUND', 'a second open of the same bundle');
    opened.close();
  });
});

Moved('a moved reader whose stream fails validation when opened: PROTOCOL, and all four handles it adopted are closed', async () => {
  const { connect } = await import('../dist/index.js');
  const { streamDataRegion } = await import('../dist/testing.js');
  const round = async (forge) => {
    const name = uniqueName('moved-forged');
    const listener = unwrap(await listen(name));
    const connecting = connect(name, { timeoutMs: WAIT });
    const server = unwrap(await listener.accept({ timeoutMs: WAIT }));
    const client = unwrap(await connecting);
    listener.close();
    const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 64, records: 4 }));
    unwrap(await server.send({ streams: [writer] }, { timeoutMs: WAIT }));
    const [reader] = unwrap(await client.receive({ timeoutMs: WAIT })).streams;
    const bundle = unwrap(reader.forWorker());
    if (forge) streamDataRegion(writer).bytes[0] ^= 0xff; // the magic: no longer a stream
    const parked = handleCensus();
    const opened = Stream.openReader(bundle);
    if (forge) {
      expectErr(opened, 'PROTOCOL', 'opening a bundle whose data is no stream');
      // Closed at once, not left to the garbage collector: the four handles
      // the tokens held (two regions, two notifiers) are gone before any await.
      const after = handleCensus();
      if (parked.exact) assert.is(parked.value - after.value, 4, 'handles closed by the refused open');
    } else {
      unwrap(opened).close();
    }
    writer.close();
    client.close();
    server.close();
  };
  await round(false);
  await round(true); // warm-up of both paths
  await settleHandles();
  const table = underWine ? handleTable() : undefined;
  const before = handleCensus();
  for (let i = 0; i < 5; i++) await round(true);
  await settleHandles();
  assertNoHandleLeak(before, 'forged moved bundles refused', table);
});

const Census = suite('streams over connections: census');

Census('100 streams sent, read and closed on both sides: the handle census is back at its baseline', async () => {
  await withPeer('census', async (peer) => {
    const round = async () => {
      const writer = unwrap(Stream.create({ mode: 'queue', recordBytes: 64, records: 4 }));
      const asked = peer.ask({ streams: [writer], data: { do: 'read', check: 'records' } });
      await writeRecords(writer, 6);
      writer.close();
      assert.is((await asked).data.count, 6);
    };
    await round(); // warm-up: first-use allocations of notifiers and streams
    await settleHandles();
    const table = underWine ? handleTable() : undefined;
    const before = handleCensus();
    for (let i = 0; i < (underWine ? 30 : 100); i++) await round();
    await settleHandles();
    assertNoHandleLeak(before, 'streams sent, read and closed', table);
    await peer.exit();
  });
});

Send.run();
Lifeline.run();
Args.run();
Moved.run();
Census.run();
