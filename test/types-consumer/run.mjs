// The types-consumer check (a step of `npm test`): a user's project with its
// OWN neverthrow must type-check against memport and share one neverthrow with
// it. For each neverthrow line memport accepts (the floor and the latest of 7
// and 8), in a fresh project outside the checkout:
//   1. npm installs the packed memport tarball next to that neverthrow, and
//      dedupes: memport gets no nested copy of its own;
//   2. consumer.mts/.cts compile with strict, exactOptionalPropertyTypes and
//      skipLibCheck: false (memport's .d.ts and .d.cts included);
//   3. the compiled ESM and CJS programs run on that neverthrow.
// Needs the npm registry (or npm's cache) and a built checkout (dist/, addon).
//
//   node test/types-consumer/run.mjs [neverthrow versions...]
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const versions = process.argv.slice(2).length ? process.argv.slice(2) : ['7.0.0', '7.2.0', '8.0.0', '8.2.0'];
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const typesNode = JSON.parse(readFileSync(join(root, 'node_modules', '@types', 'node', 'package.json'), 'utf8')).version;
const addon = process.env.MEMPORT_ADDON ?? join(root, 'build', 'Release', 'memport.node');

let passed = 0;
let failed = 0;
function check(title, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? '✔' : '✘'} ${title}${ok || !detail ? '' : `\n${detail.trim().replace(/^/gm, '    ')}`}`);
  return ok;
}
function run(command, args, cwd, env = process.env, timeout = 5 * 60_000) {
  const r = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

// Outside the checkout, so nothing resolves through its node_modules.
const dir = mkdtempSync(join(tmpdir(), 'memport-types-consumer-'));
try {
  const pack = run(npm, ['pack', '--ignore-scripts', '--pack-destination', dir, '--loglevel=error'], root);
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!check('npm pack', pack.ok && tarball !== undefined, pack.out)) throw new Error('no tarball');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'types-consumer', private: true, type: 'module' }, null, 2));
  for (const f of ['consumer.mts', 'consumer.cts', 'tsconfig.json']) copyFileSync(join(here, f), join(dir, f));

  for (const [i, version] of versions.entries()) {
    // --ignore-scripts: this check is about types and resolution; installing
    // as a user does, scripts and all, is the install test's job.
    const install = run(npm, ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error',
      `neverthrow@${version}`, ...(i === 0 ? [`./${tarball}`, `@types/node@${typesNode}`] : [])], dir);
    if (!check(`neverthrow ${version}: npm install`, install.ok, install.out)) continue;
    const top = JSON.parse(readFileSync(join(dir, 'node_modules', 'neverthrow', 'package.json'), 'utf8')).version;
    const nested = join(dir, 'node_modules', 'memport', 'node_modules', 'neverthrow');
    check(`neverthrow ${version}: memport shares the project's neverthrow (no nested copy)`, top === version && !existsSync(nested),
      `top-level neverthrow ${top}; nested copy ${existsSync(nested) ? 'present' : 'absent'}`);

    rmSync(join(dir, 'out'), { recursive: true, force: true });
    const compiled = run(process.execPath, [tsc, '-p', 'tsconfig.json'], dir);
    if (!check(`neverthrow ${version}: consumer.mts and consumer.cts compile (strict, exactOptionalPropertyTypes, skipLibCheck: false)`, compiled.ok, compiled.out)) continue;

    const env = { ...process.env, MEMPORT_ADDON: addon };
    const esm = run(process.execPath, [join('out', 'consumer.mjs')], dir, env, 60_000);
    check(`neverthrow ${version}: the ESM program runs`, esm.ok &&
      esm.out.includes('esm: hi true 42; combined true; chained true; escalation refused true; true') &&
      esm.out.includes('esm: config: bad frame size 0x1; INVALID_ARGUMENT'), esm.out);
    const cjs = run(process.execPath, [join('out', 'consumer.cjs')], dir, env, 60_000);
    check(`neverthrow ${version}: the CommonJS program runs`, cjs.ok && cjs.out.includes('cjs: read-only true size 4096; too big'), cjs.out);
  }
} catch (e) {
  if (passed + failed === 0) check('types-consumer', false, String(e));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
