// Builds the interop programs (examples/interop/*.c) and the Windows test
// fixture test/fixtures/named_objects_win.c into build-interop/:
//   Linux:   inherit_parent_linux                      (cc)
//   Windows: first_process.exe, second_process.exe,    (mingw-w64; Windows Node
//            inherit_parent_win.exe, duplicate_receiver_win.exe,  under Wine can
//            named_objects_win.exe                     run them but not build them)
// On Linux all are built; on Windows only the .exe files (with a mingw gcc on
// PATH). A binary newer than its source and this script is left alone; a
// missing compiler is an error that says what to install.
//
//   node examples/interop/build.mjs
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
export const interopDir = join(root, 'build-interop');

const linux = { compilers: ['cc', 'gcc'], flags: ['-O1', '-Wall'], libs: [], hint: 'apt-get install -y gcc' };
const windows = {
  compilers: process.platform === 'win32' ? ['x86_64-w64-mingw32-gcc', 'gcc'] : ['x86_64-w64-mingw32-gcc-posix', 'x86_64-w64-mingw32-gcc'],
  flags: ['-static', '-O1', '-Wall'],
  libs: ['-ladvapi32'],
  hint: 'apt-get install -y gcc-mingw-w64-x86-64 (or npm run setup)',
};
const programs = [
  { source: join(here, 'inherit_parent_linux.c'), out: 'inherit_parent_linux', ...linux },
  ...['first_process', 'second_process', 'inherit_parent_win', 'duplicate_receiver_win'].map((name) => ({
    source: join(here, `${name}.c`),
    out: `${name}.exe`,
    ...windows,
  })),
  { source: join(root, 'test', 'fixtures', 'named_objects_win.c'), out: 'named_objects_win.exe', ...windows },
].filter((p) => process.platform !== 'win32' || p.out.endsWith('.exe'));

const has = (tool) =>
  process.platform === 'win32'
    ? spawnSync('where', [tool], { stdio: 'ignore' }).status === 0
    : spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;

/** Builds what is out of date; returns the list of failures (empty when all is built). */
export function buildInterop({ quiet = false } = {}) {
  const self = statSync(fileURLToPath(import.meta.url)).mtimeMs;
  mkdirSync(interopDir, { recursive: true });
  const failures = [];
  for (const program of programs) {
    const out = join(interopDir, program.out);
    const shown = relative(root, out);
    if (existsSync(out) && statSync(out).mtimeMs >= Math.max(self, statSync(program.source).mtimeMs)) continue;
    const compiler = program.compilers.find(has);
    if (!compiler) {
      failures.push(`cannot build ${shown}: no ${program.compilers.join(' or ')} found. Install ${program.hint}.`);
      continue;
    }
    const args = [...program.flags, '-o', out, program.source, ...program.libs];
    const r = spawnSync(compiler, args, { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) failures.push(`${compiler} ${args.join(' ')} failed (exit ${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
    else if (!quiet) console.log(`built ${shown} with ${compiler}`);
  }
  return failures;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const failures = buildInterop();
  for (const f of failures) console.error(`✘ ${f}`);
  process.exit(failures.length ? 1 : 0);
}
