// docs/PROTOCOL.md is enough to interoperate: a Python consumer written from it
// alone (examples/python-consumer.py, standard library only) receives regions.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion, listen } from '../dist/index.js';
import { isLinux, unwrap } from './helpers.mjs';

const CONSUMER = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'python-consumer.py');
const Python = suite('third-party peer (Python, Linux)');
const hasPython = isLinux && spawnSync('python3', ['--version']).status === 0;

Python('a Python consumer built from docs/PROTOCOL.md receives, validates, maps and acknowledges', async () => {
  if (!isLinux) return; // the example is the Linux half of the protocol
  assert.ok(hasPython, 'python3 is installed (the test suite needs it on Linux)');
  const name = `py-${process.pid}-${randomBytes(4).toString('hex')}`;
  const listener = unwrap(await listen(name));
  const py = spawn('python3', [CONSUMER, name, '--messages', '2', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  py.stdout.on('data', (d) => (out += d));
  py.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => py.once('exit', resolve));
  const conn = unwrap(await listener.accept({ timeoutMs: 10_000 }));
  assert.is(conn.peer.pid, py.pid);

  const frame = unwrap(SharedRegion.create(4096));
  frame.bytes.set([1, 2, 3, 4, 5, 6, 7, 8]);
  const ro = unwrap(frame.toReadOnly());
  const scratch = unwrap(SharedRegion.create(100));
  scratch.bytes[0] = 9;
  unwrap(await conn.send({ regions: [ro, scratch], data: { hello: 'python' } }, { timeoutMs: 10_000 }), 'send 1 (acknowledged by Python)');
  unwrap(await conn.send({ data: [1, 2] }, { timeoutMs: 10_000 }), 'send 2');
  assert.is(await exited, 0, out);
  const [first, second] = out.trim().split('\n').map((l) => JSON.parse(l));
  assert.is(first.listener_pid, process.pid);
  assert.equal(first.data, { hello: 'python' });
  assert.equal(first.regions, [
    { size: 4096, readOnly: true, head: [1, 2, 3, 4, 5, 6, 7, 8] },
    { size: 100, readOnly: false, head: [9, 0, 0, 0, 0, 0, 0, 0] },
  ]);
  assert.equal(second.data, [1, 2]);
  for (const r of [frame, ro, scratch]) r.close();
  conn.close();
  listener.close();
});

Python.run();
