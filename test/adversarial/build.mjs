// Builds the adversarial peer (evil_peer.c) for the suites that use it:
//   build-adversarial/evil_peer       Linux, with the host's C compiler
//   build-adversarial/evil_peer.exe   Windows, cross-built with mingw-w64 (Windows
//                                     Node under Wine can run it but cannot build it)
// On Linux both are built; on Windows only the .exe. A binary newer than its
// source (and this script) is left alone. A missing compiler is an error that
// says what to install — the suite fails loudly without its peer, never skips.
//
//   node test/adversarial/build.mjs
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const source = join(here, 'evil_peer.c');
const outDir = join(root, 'build-adversarial');

const has = (tool) =>
  process.platform === 'win32'
    ? spawnSync('where', [tool], { stdio: 'ignore' }).status === 0
    : spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;

const targets =
  process.platform === 'win32'
    ? [{ out: 'evil_peer.exe', compilers: ['x86_64-w64-mingw32-gcc', 'gcc'], flags: ['-static', '-O1', '-Wall'], libs: ['-ladvapi32'], hint: 'a mingw-w64 gcc on PATH (e.g. from MSYS2)' }]
    : [
        { out: 'evil_peer', compilers: ['cc', 'gcc'], flags: ['-O1', '-Wall'], libs: [], hint: 'apt-get install -y gcc' },
        {
          out: 'evil_peer.exe',
          windows: true,
          compilers: ['x86_64-w64-mingw32-gcc-posix'],
          flags: ['-static', '-O1', '-Wall'],
          libs: ['-ladvapi32'],
          hint: 'apt-get install -y gcc-mingw-w64-x86-64 (or npm run setup)',
        },
      ];

const newest = Math.max(statSync(source).mtimeMs, statSync(fileURLToPath(import.meta.url)).mtimeMs);
mkdirSync(outDir, { recursive: true });
let failed = false;
for (const target of targets) {
  const out = join(outDir, target.out);
  const shown = relative(root, out);
  if (existsSync(out) && statSync(out).mtimeMs >= newest) {
    console.log(`${shown} is up to date`);
    continue;
  }
  const compiler = target.compilers.find(has);
  if (!compiler) {
    // The same rule as scripts/test.mjs: the Windows suite may be skipped
    // explicitly outside CI, and then its peer need not be built.
    if (target.windows && process.env.MEMPORT_SKIP_WINDOWS === '1' && !process.env.CI) {
      console.warn(`⚠ ${shown} not built: ${target.compilers.join(' / ')} is missing (MEMPORT_SKIP_WINDOWS=1)`);
      continue;
    }
    console.error(`✘ cannot build ${shown}: no ${target.compilers.join(' or ')} found. Install ${target.hint}.`);
    failed = true;
    continue;
  }
  const args = [...target.flags, '-o', out, source, ...target.libs];
  const r = spawnSync(compiler, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`✘ ${compiler} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    failed = true;
    continue;
  }
  console.log(`built ${shown} with ${compiler}`);
}
process.exit(failed ? 1 : 0);
