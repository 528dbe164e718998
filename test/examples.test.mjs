// Examples run as written: the README's code blocks and examples/*.mjs.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { underWine } from './helpers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const Examples = suite('examples');

function runScript(path) {
  return spawnSync(process.execPath, [path], { cwd: root, encoding: 'utf8', timeout: 120_000 });
}

Examples('every ```js block of the README runs as written', async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 3, 'the README has its js examples');
  // Written inside the package so `import 'memport'` resolves to this checkout (package self-reference).
  const dir = mkdtempSync(join(root, 'test', '.readme-'));
  const write = (i, code) => {
    const file = join(dir, `block${i}.mjs`);
    writeFileSync(file, code);
    return file;
  };
  try {
    const producerAt = blocks.findIndex((b) => b.startsWith('// producer.mjs'));
    const consumerAt = blocks.findIndex((b) => b.startsWith('// consumer.mjs'));
    assert.ok(producerAt >= 0 && consumerAt >= 0, 'the producer/consumer pair is there');
    for (const [i, code] of blocks.entries()) {
      if (i === producerAt || i === consumerAt) continue;
      const r = runScript(write(i, code));
      assert.is(r.status, 0, `README block ${i} failed:\n${r.stdout}${r.stderr}`);
      if (i === 0) assert.match(r.stdout, /^3 true\nINVALID_ARGUMENT /);
    }
    // The pair: the producer serves until stopped; the consumer connects by name.
    const producer = spawn(process.execPath, [write(producerAt, blocks[producerAt])], { cwd: root, stdio: 'ignore' });
    try {
      // Started at once, while the producer may still be starting: the
      // consumer waits for the listener (waitForListener), as written.
      const consumer = await new Promise((resolve) => {
        const c = spawn(process.execPath, [write(consumerAt, blocks[consumerAt])], { cwd: root, timeout: 20_000 });
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.stderr.on('data', (d) => (out += d));
        c.once('exit', (status) => resolve({ status, out }));
      });
      assert.is(consumer.status, 0, consumer.out);
      assert.is(consumer.out.trim(), '1280 true 0');
    } finally {
      producer.kill();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Examples('npm run demo: producer and consumer meet by name; a parent hands a child its regions', () => {
  const r = runScript(join(root, 'examples', 'demo.mjs'));
  assert.is(r.status, 0, r.stdout + r.stderr);
  const producer = /producer (\d+): streaming 1280x720 frames/.exec(r.stdout)?.[1];
  const consumer = /consumer (\d+): reading 1280x720 frames \(a latest stream\) from producer (\d+)/.exec(r.stdout);
  assert.ok(producer && consumer, r.stdout);
  assert.is(consumer[2], producer, 'the consumer names the producer by its kernel PID');
  // The consumer checked every frame it received (checksum over all the
  // pixels, frame numbers going up) and says how many failed.
  const [, received, torn, outOfOrder] = /consumer: received (\d+) frames \([\d.]+ fps\), (\d+) torn, (\d+) out of order/.exec(r.stdout) ?? [];
  assert.is(torn, '0', `no frame was torn:\n${r.stdout}${r.stderr}`);
  assert.is(outOfOrder, '0', 'frame numbers only went up');
  assert.ok(Number(received) >= 2, `the consumer received frames as they were drawn (${received})`);
  const child = /handed child (\d+) a 32 MB dataset/.exec(r.stdout)?.[1];
  assert.match(r.stdout, new RegExp(`child ${child}: summed 4,000,000 numbers in place \\(read-only dataset\\)`));
  assert.match(r.stdout, /the child wrote sum=1998000000 mean=499.5 into the shared results region/);
  assert.match(r.stdout, /✔ demo finished/);
});

Examples('a consumer without a producer says what to do', () => {
  const r = spawnSync(process.execPath, [join(root, 'examples', 'consumer.mjs'), '--name', `absent-${process.pid}`], { cwd: root, encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.match(r.stderr, /NOT_FOUND: .*start the producer first: node examples\/producer.mjs/);
});

Examples('examples/region-demo.mjs runs and says what it showed', () => {
  const r = runScript(join(root, 'examples', 'region-demo.mjs'));
  assert.is(r.status, 0, r.stdout + r.stderr);
  const [, refused, total] = /refused (\d+) of (\d+) ways/.exec(r.stdout) ?? [];
  if (underWine) {
    // Wine grants the owner WRITE_DAC despite the OWNER RIGHTS ACE; real Windows does not.
    assert.is(Number(refused), Number(total) - 1, r.stdout);
    assert.match(r.stdout, /\(allowed: duplicate-write-dac\)/);
  } else {
    assert.is(refused, total, r.stdout);
  }
  assert.match(r.stdout, /left the shared byte as 'h'/);
  assert.match(r.stdout, /visible through the twin: 0x45/);
  assert.match(r.stdout, /after close: header view length 0, frame view length 0/);
  assert.match(r.stdout, /✔ demo finished/);
});

Examples.run();
