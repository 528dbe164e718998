// Examples run as written: the README's code blocks and examples/*.mjs.
import { spawnSync } from 'node:child_process';
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

Examples('every ```js block of the README runs as written', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 1, 'the README has a js example');
  // Written inside the package so `import 'memport'` resolves to this checkout (package self-reference).
  const dir = mkdtempSync(join(root, 'test', '.readme-'));
  try {
    blocks.forEach((code, i) => {
      const file = join(dir, `block${i}.mjs`);
      writeFileSync(file, code);
      const r = runScript(file);
      assert.is(r.status, 0, `README block ${i} failed:\n${r.stdout}${r.stderr}`);
      if (i === 0) assert.match(r.stdout, /^3 true\nINVALID_ARGUMENT /);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
