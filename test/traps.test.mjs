// The traps a new user falls into (issue 10, sections 3 and 4), each as the
// program that fell into it: two processes that each send then receive, a
// consumer started before its producer, a loop over a listener that failed,
// a process kept alive by a listener it no longer needs, errors that do not
// say what to do next or where they came from.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Connection, Listener, connect, listen } from '../dist/index.js';
import { assertCensusUnchanged, expectErr, handleCensus, handleTable, isLinux, settleHandles, underWine, unwrap } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const NEWCOMER = join(here, 'fixtures', 'newcomer.mjs');
const PEER = join(here, 'fixtures', 'peer.mjs');
const WAIT = underWine ? 30_000 : 10_000;
const uniqueName = (what) => `${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a fixture; `exited` resolves with its code and output; `waitFor(re)` with the first match. */
function start(script, args) {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const watchers = new Set();
  const collect = (d) => {
    output += d;
    for (const w of watchers) w();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  child.exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, output })));
  child.waitFor = (pattern) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const m = pattern.exec(output);
        if (m) {
          watchers.delete(check);
          resolve(m);
        }
      };
      watchers.add(check);
      check();
      child.exited.then(() => (pattern.test(output) ? undefined : reject(new Error(`ended without ${pattern}:\n${output}`))));
    });
  return child;
}

/** The child's exit, or undefined if it is still running after `ms`. */
const exitWithin = (child, ms) => Promise.race([child.exited, delay(ms).then(() => undefined)]);

async function connectedPair(name, listenOptions) {
  const listener = unwrap(await listen(name, listenOptions));
  const client = connect(name, { timeoutMs: WAIT });
  const server = unwrap(await listener.accept({ timeoutMs: WAIT }));
  return { listener, server, client: unwrap(await client) };
}

// ---------------------------------------------------------------------------
const First = suite('the first programs a newcomer writes');

First('both ends await send(), then await receive(): neither waits for the other to receive (in one process)', async () => {
  const { listener, server, client } = await connectedPair(uniqueName('both-send'));
  const talk = async (conn, what) => {
    unwrap(await conn.send({ data: what }, { timeoutMs: WAIT }), `${what}: send`);
    return unwrap(await conn.receive({ timeoutMs: WAIT }), `${what}: receive`).data;
  };
  const [atServer, atClient] = await Promise.all([talk(server, 'server'), talk(client, 'client')]);
  assert.is(atServer, 'client');
  assert.is(atClient, 'server');
  client.close();
  server.close();
  listener.close();
});

First('two processes that each send, then receive', async () => {
  const name = uniqueName('ping');
  const producer = start(NEWCOMER, ['ping', name, 'listen']);
  await producer.waitFor(/^LISTENING$/m);
  const consumer = start(NEWCOMER, ['ping', name, 'connect']);
  const [p, c] = await Promise.all([producer.exited, consumer.exited]);
  assert.is(p.code, 0, p.output);
  assert.is(c.code, 0, c.output);
  assert.match(p.output, /^GOT hello from the connect side$/m);
  assert.match(c.output, /^GOT hello from the listen side$/m);
});

First('a consumer started before its producer connects once the listener appears (waitForListener)', async () => {
  const name = uniqueName('early');
  const consumer = start(NEWCOMER, ['ping', name, 'connect']);
  await delay(500); // the consumer is up and waiting; nobody listens yet
  assert.is(await exitWithin(consumer, 0), undefined, 'the consumer still waits');
  const producer = start(NEWCOMER, ['ping', name, 'listen']);
  const [p, c] = await Promise.all([producer.exited, consumer.exited]);
  assert.is(c.code, 0, c.output);
  assert.is(p.code, 0, p.output);
  assert.match(c.output, /^GOT hello from the listen side$/m);
});

First('waitForListener in one process: waits for listen(); TIMEOUT and ABORTED end it; nothing is left behind', async () => {
  // libuv opens one inotify fd per loop on the first directory watch and keeps it: out of the baseline.
  await connect(uniqueName('warm'), { waitForListener: true, timeoutMs: 50 });
  await settleHandles();
  const tableBefore = underWine ? handleTable() : undefined;
  const before = handleCensus();
  const name = uniqueName('wait');
  const connecting = connect(name, { waitForListener: true, timeoutMs: WAIT });
  await delay(200);
  const listener = unwrap(await listen(name));
  const server = unwrap(await listener.accept({ timeoutMs: WAIT }), 'the waiting client arrives');
  const client = unwrap(await connecting, 'connect resolves once the listener is there');
  assert.is(client.peer.pid, process.pid);
  client.close();
  server.close();
  listener.close();

  const timedOut = expectErr(await connect(uniqueName('nobody'), { waitForListener: true, timeoutMs: 300 }), 'TIMEOUT', 'nobody ever listens');
  assert.match(timedOut.message, /waiting for its listener to appear/);
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  expectErr(await connect(uniqueName('nobody'), { waitForListener: true, timeoutMs: WAIT, signal: controller.signal }), 'ABORTED');
  expectErr(await connect(name, { waitForListener: 'yes' }), 'INVALID_ARGUMENT');
  await settleHandles();
  assertCensusUnchanged(before, 'waiting for listeners (directory watches, timers)', tableBefore);
});

First('NOT_FOUND says what to do next', async () => {
  const name = uniqueName('absent');
  const error = expectErr(await connect(name, { timeoutMs: 1000 }), 'NOT_FOUND');
  assert.match(error.message, new RegExp(`listen\\('${name}'\\)`), 'start the listener first');
  assert.match(error.message, /waitForListener: true/, 'or wait for it');
});

First.run();

// ---------------------------------------------------------------------------
const Life = suite('listeners and connections over their lifetime');

Life('for await over a listener: Ok per connection; close() ends the loop without an Err', async () => {
  const name = uniqueName('loop');
  const listener = unwrap(await listen(name));
  const seen = [];
  const loop = (async () => {
    for await (const next of listener) {
      seen.push(next.isOk() ? 'ok' : next.error.code);
      if (next.isOk()) next.value.close();
    }
  })();
  const client = unwrap(await connect(name, { timeoutMs: WAIT }));
  while (seen.length === 0) await delay(10);
  listener.close();
  await loop;
  assert.equal(seen, ['ok'], 'one connection, then a clean end');
  client.close();
});

Life('Linux: for await over a listener that fails yields its Err (ACCESS_DENIED), then ends', async () => {
  if (!isLinux) return;
  const listener = unwrap(await listen(uniqueName('fails')));
  rmSync(listener.address); // another process of this user took the name away
  const seen = [];
  for await (const next of listener) seen.push(next.isOk() ? 'ok' : next.error.code);
  assert.equal(seen, ['ACCESS_DENIED'], 'the failure is told, not a silent end');
  assert.match(inspect(listener), /failed \(ACCESS_DENIED\)/);
  listener.close();
});

Life('a client that gave up while allow() judged it is never handed to accept()', async () => {
  const name = uniqueName('gave-up');
  let release;
  const judged = new Promise((resolve) => (release = resolve));
  const listener = unwrap(await listen(name, { allow: () => judged }));
  expectErr(await connect(name, { timeoutMs: 300 }), 'TIMEOUT', 'the client gives up waiting for WELCOME');
  release(true);
  expectErr(await listener.accept({ timeoutMs: 500 }), 'TIMEOUT', 'nothing to accept');
  listener.close();
});

Life('listener.close() closes the clients its allow() is still judging: they learn at once', async () => {
  await settleHandles();
  const tableBefore = underWine ? handleTable() : undefined;
  const before = handleCensus();
  const name = uniqueName('judging');
  const listener = unwrap(await listen(name, { allow: () => new Promise(() => {}) })); // never answers
  const connecting = connect(name, { timeoutMs: WAIT });
  await delay(200);
  assert.match(inspect(listener), /1 connections/);
  listener.close();
  const error = expectErr(await connecting, 'PEER_CLOSED', 'the client is told the listener went away');
  assert.ok(error.message.length > 0);
  await settleHandles();
  assertCensusUnchanged(before, 'a listener closed while judging a client', tableBefore);
});

Life('listener.unref(): a process whose only handle is that listener exits; ref() undoes it', async () => {
  const name = uniqueName('unref');
  const unrefd = start(NEWCOMER, ['unref-listener', name]);
  const done = await exitWithin(unrefd, WAIT);
  assert.ok(done, 'the process exited by itself');
  assert.is(done.code, 0, done.output);
  assert.match(done.output, /^READY$/m);
  const reref = start(NEWCOMER, ['reref-listener', uniqueName('reref')]);
  await reref.waitFor(/^READY$/m);
  assert.is(await exitWithin(reref, 1000), undefined, 'ref() keeps it alive again');
  reref.kill();
});

Life('conn.unref(): a process whose only handle is an open connection exits', async () => {
  const name = uniqueName('unref-conn');
  const listener = unwrap(await listen(name));
  const client = start(NEWCOMER, ['unref-connection', name]);
  const server = unwrap(await listener.accept({ timeoutMs: WAIT }));
  const done = await exitWithin(client, WAIT);
  assert.ok(done, 'the client process exited by itself');
  assert.is(done.code, 0, done.output);
  expectErr(await server.receive({ timeoutMs: WAIT }), 'PEER_CLOSED', 'and its end closed with it');
  server.close();
  listener.close();
});

Life('util.inspect shows a listener and a connection: names, peer, state, queues', async () => {
  const name = uniqueName('inspect');
  const { listener, server, client } = await connectedPair(name);
  assert.match(inspect(listener), new RegExp(`^Listener \\{ name '${name}', address '.+', listening, 2 connections|^Listener \\{ name '${name}', address '.+', listening, 1 connections`));
  unwrap(await client.send({ data: 'x' }, { timeoutMs: WAIT }));
  assert.match(inspect(server), new RegExp(`^Connection \\{ from pid ${process.pid}.*, open, 1 unreceived, 0 sending \\}$`));
  assert.match(inspect(client.unref()), /, unref \}$/);
  client.ref();
  client.close();
  assert.match(inspect(client), /closed \(CLOSED\)/);
  server.close();
  listener.close();
  assert.match(inspect(listener), /, closed,/);
});

Life('Connection and Listener cannot be constructed directly', () => {
  assert.throws(() => new Connection(), /comes from connect\(\) or listener\.accept\(\)/);
  assert.throws(() => new Listener(), /comes from listen\(\)/);
});

Life('an Err settled later carries the stack of the call that started it', async () => {
  const { listener, server, client } = await connectedPair(uniqueName('stack'));
  const waited = expectErr(await client.receive({ timeoutMs: 20 }), 'TIMEOUT');
  assert.match(waited.stack, /traps\.test\.mjs/, `the receive() call site is in the stack:\n${waited.stack}`);
  const closing = server.receive({ timeoutMs: WAIT });
  client.close();
  const gone = expectErr(await closing, 'PEER_CLOSED');
  assert.match(gone.stack, /traps\.test\.mjs/, `the receive() call site is in the stack:\n${gone.stack}`);
  server.close();
  listener.close();
});

Life('MEMPORT_CALL_SITES=0 turns the call-site capture off (it costs a few µs per wait)', async () => {
  const run = async (env) => {
    const child = spawn(process.execPath, [NEWCOMER, 'call-site', uniqueName('site')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    await new Promise((resolve) => child.once('close', resolve));
    return out;
  };
  assert.match(await run({}), /^CALL-SITE yes TIMEOUT$/m, 'on by default');
  assert.match(await run({ MEMPORT_CALL_SITES: '0' }), /^CALL-SITE no TIMEOUT$/m, 'off with MEMPORT_CALL_SITES=0');
});

Life('ALREADY_EXISTS names the process that holds the name, and what to do', async () => {
  const name = uniqueName('taken');
  const listener = unwrap(await listen(name));
  const same = expectErr(await listen(name), 'ALREADY_EXISTS');
  assert.match(same.message, /\(this process\)/);
  assert.match(same.message, /Close that listener first, or listen under another name/);
  listener.close();
  const holder = start(PEER, ['holder', name]);
  // Wait until the holder listens by connecting to it, never by listening:
  // a probing listen() holds the name for a moment, and a holder starting in
  // that moment got ALREADY_EXISTS, exited, and left this loop probing for
  // ever (seen under Wine: the file was killed after 10 minutes).
  for (;;) {
    const probe = await connect(name, { timeoutMs: WAIT });
    if (probe.isOk()) {
      probe.value.close();
      break;
    }
    assert.is(await exitWithin(holder, 50), undefined, 'the holder is still running');
  }
  const taken = expectErr(await listen(name), 'ALREADY_EXISTS');
  assert.match(taken.message, new RegExp(`\\(process ${holder.pid}\\)`), taken.message);
  holder.kill();
  await holder.exited;
});

Life.run();
