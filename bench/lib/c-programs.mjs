// Builds the C baselines under bench/c/ into build-bench/ (git-ignored) and
// runs them: Linux programs with the system cc, the Windows one with mingw-w64
// and Wine (whose programs need stdout to be a file, never a pipe).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hasTool, root } from '../../scripts/lib/env.mjs';
import { wineCommand, wineEnv } from '../../scripts/lib/wine.mjs';

const sourceDir = join(root, 'bench', 'c');
export const outDir = join(root, 'build-bench');

const hardening = ['-Wall', '-Wextra', '-fstack-protector-strong', '-D_FORTIFY_SOURCE=2'];
const programs = {
  scm_rights_roundtrip: { compiler: 'cc', flags: ['-O2', ...hardening] },
  memfd_lifecycle: { compiler: 'cc', flags: ['-O2', ...hardening] },
  // The ceiling should be as high as this CPU allows: let the sum loop use its widest vectors.
  mem_bandwidth: { compiler: 'cc', flags: ['-O3', '-march=native', ...hardening] },
  win_dup_roundtrip: { compiler: 'x86_64-w64-mingw32-gcc-posix', flags: ['-O2', '-static', '-Wall', '-Wextra'], exe: true },
  eventfd_pingpong: { compiler: 'cc', flags: ['-O2', ...hardening] },
  ring_memcpy: { compiler: 'cc', flags: ['-O2', ...hardening] },
  ring_pipe: { compiler: 'cc', flags: ['-O2', ...hardening] },
  win_event_pingpong: { compiler: 'x86_64-w64-mingw32-gcc-posix', flags: ['-O2', '-static', '-Wall', '-Wextra'], exe: true },
};

function isStale(output, inputs) {
  if (!existsSync(output)) return true;
  const built = statSync(output).mtimeMs;
  return inputs.some((input) => statSync(input).mtimeMs > built);
}

/** Builds one program if needed; returns its path, or throws with the compiler's message. */
export function buildProgram(name) {
  const spec = programs[name];
  if (!hasTool(spec.compiler)) {
    throw new Error(`'${spec.compiler}' is not installed (${spec.exe ? 'apt-get install -y gcc-mingw-w64-x86-64' : 'apt-get install -y gcc'})`);
  }
  mkdirSync(outDir, { recursive: true });
  const output = join(outDir, spec.exe ? `${name}.exe` : name);
  const inputs = [join(sourceDir, `${name}.c`), join(sourceDir, spec.exe ? 'win_bench.h' : 'bench_clock.h')];
  if (isStale(output, inputs)) {
    const r = spawnSync(spec.compiler, ['-std=gnu11', ...spec.flags, '-o', output, inputs[0]], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building ${name} failed:\n${r.stderr}`);
  }
  return output;
}

function parseJson(name, text) {
  const line = text.split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`${name} printed no result:\n${text.slice(0, 2000)}`);
  return JSON.parse(line);
}

/** Runs a Linux baseline; returns its JSON object of sample arrays. */
export function runProgram(name, args, { timeoutMs = 10 * 60_000 } = {}) {
  const path = buildProgram(name);
  const r = spawnSync(path, args.map(String), { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`${name} ${args.join(' ')} failed (${r.signal ?? `exit ${r.status}`}):\n${r.stderr}`);
  return parseJson(name, r.stdout);
}

/** Runs a Windows baseline under Wine, stdout into a file. */
export function runProgramUnderWine(name, args, { timeoutMs = 10 * 60_000 } = {}) {
  const path = buildProgram(name);
  const wine = wineCommand();
  if (!wine) throw new Error('Wine is not installed (apt-get install -y wine64)');
  const out = join(outDir, `${name}-${process.pid}.out`);
  const quoted = [wine, path, ...args.map(String)].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('sh', ['-c', `${quoted} > '${out}' 2>&1 < /dev/null`], { cwd: outDir, env: wineEnv(), timeout: timeoutMs });
  const text = existsSync(out) ? readFileSync(out, 'utf8') : '';
  rmSync(out, { force: true });
  if (r.status !== 0) throw new Error(`${name} under Wine failed (${r.signal ?? `exit ${r.status}`}):\n${text.slice(0, 2000)}`);
  return parseJson(name, text);
}
