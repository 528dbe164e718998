// One silent consumer must not stall a producer: the example producer serves
// each consumer on its own, and a send to a peer that never receives ends
// with TIMEOUT after a default bound once its window is full, instead of
// waiting for ever.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { inspect } from 'node:util';
import { DEFAULT_SEND_TIMEOUT_MS, MESSAGE_WINDOW, connect, listen } from '../dist/index.js';
import { setDefaultSendTimeout } from '../dist/testing.js';
import { expectErr, underWine, unwrap } from './helpers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const uniqueName = (what) => `${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const WAIT = underWine ? 30_000 : 10_000;

function run(args, timeout) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, timeout });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('exit', (status) => resolve({ status, out }));
  });
}

const Producer = suite('a silent consumer does not stall the producer');

Producer('examples/producer.mjs serves a normal consumer while a silent one holds its send', async () => {
  const name = uniqueName('producer');
  const producer = spawn(process.execPath, [join(root, 'examples', 'producer.mjs'), '--name', name], { cwd: root, stdio: 'ignore' });
  const silent = [];
  try {
    // The silent consumer: connects (and so is admitted and sent a reader of the frames), never receives.
    let first;
    for (let attempt = 0; attempt < 200; attempt++) {
      first = await connect(name, { timeoutMs: WAIT });
      if (first.isOk() || first.error.code !== 'NOT_FOUND') break;
      await new Promise((r) => setTimeout(r, 100)); // the producer is still starting
    }
    silent.push(unwrap(first, 'the silent consumer connects'));
    // A second silent one, for good measure, then a normal consumer.
    silent.push(unwrap(await connect(name, { timeoutMs: WAIT }), 'a second silent consumer connects'));
    const consumer = await run([join(root, 'examples', 'consumer.mjs'), '--name', name, '--seconds', '1'], WAIT * 2);
    assert.is(consumer.status, 0, consumer.out);
    assert.match(consumer.out, /reading 1280x720 frames \(a latest stream\)/);
    assert.match(consumer.out, /consumer: received \d+ frames \([\d.]+ fps\), 0 torn, 0 out of order/, 'every frame it got was whole');
  } finally {
    for (const c of silent) c.close();
    producer.kill();
  }
});

Producer('a peer that never receives takes a window of messages; the next send ends with TIMEOUT after the default bound', async () => {
  assert.is(DEFAULT_SEND_TIMEOUT_MS, 30_000);
  const name = uniqueName('silent');
  const listener = unwrap(await listen(name));
  let silentClient;
  let server;
  try {
    const client = connect(name, { timeoutMs: WAIT });
    server = unwrap(await listener.accept({ timeoutMs: WAIT }));
    silentClient = unwrap(await client);
    // Its process acknowledges on arrival while fewer than MESSAGE_WINDOW of
    // its messages wait for its application, which never receives...
    for (let i = 0; i < MESSAGE_WINDOW; i++) unwrap(await server.send({ data: i }), `send ${i} within the window`);
    // ...so past the window a send waits for it, and the default bound ends the wait.
    setDefaultSendTimeout(300); // the same bound, shortened so the test does not wait 30 s
    const started = Date.now();
    const sent = await server.send({ data: 'never taken' }); // no timeoutMs: the default applies
    const error = expectErr(sent, 'TIMEOUT', 'send to a peer that never receives');
    assert.match(error.message, /300 ms/);
    assert.match(error.message, new RegExp(`waiting for process ${process.pid} to take the message`), 'it says what it waited for');
    assert.ok(Date.now() - started >= 290, 'after the default bound');
    // The receiver holds the window, and the one the sender gave up on, unmapped, nothing more.
    assert.match(inspect(silentClient), new RegExp(`${MESSAGE_WINDOW + 1} unreceived`));
  } finally {
    setDefaultSendTimeout(DEFAULT_SEND_TIMEOUT_MS);
    silentClient?.close();
    server?.close();
    listener.close();
  }
});

Producer.run();
