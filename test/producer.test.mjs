// One silent consumer must not stall a producer: the example producer serves
// each consumer on its own, and a send to a peer that never receives ends
// with TIMEOUT after a default bound instead of waiting for ever.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_SEND_TIMEOUT_MS, connect, listen } from '../dist/index.js';
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
    // The silent consumer: connects (and so is admitted and sent the frame buffer), never receives.
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
    assert.match(consumer.out, /got a 1280x720 read-only frame buffer/);
  } finally {
    for (const c of silent) c.close();
    producer.kill();
  }
});

Producer('a send the peer never takes ends with TIMEOUT after the default bound', async () => {
  assert.is(DEFAULT_SEND_TIMEOUT_MS, 30_000);
  setDefaultSendTimeout(300); // the same bound, shortened so the test does not wait 30 s
  const name = uniqueName('silent');
  const listener = unwrap(await listen(name));
  try {
    const client = connect(name, { timeoutMs: WAIT });
    const server = unwrap(await listener.accept({ timeoutMs: WAIT }));
    const silentClient = unwrap(await client);
    const started = Date.now();
    const sent = await server.send({ data: 'never taken' }); // no timeoutMs: the default applies
    const error = expectErr(sent, 'TIMEOUT', 'send to a peer that never receives');
    assert.match(error.message, /300 ms/);
    assert.ok(Date.now() - started >= 290, 'after the default bound');
    silentClient.close();
    server.close();
  } finally {
    setDefaultSendTimeout(DEFAULT_SEND_TIMEOUT_MS);
    listener.close();
  }
});

Producer.run();
