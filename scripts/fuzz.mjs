// npm run fuzz: builds the wire-format fuzzer (fuzz/frame_fuzzer.cc) with
// libFuzzer, ASan and UBSan, replays fuzz/regressions/, then fuzzes for a
// bounded time and ends with one summary line.
//
//   node scripts/fuzz.mjs [--seconds N] [--fresh]
//
//   --seconds N   how long to fuzz (default 60, or $FUZZ_SECONDS)
//   --fresh       forget the corpus grown by earlier runs and start from the seeds
//   $FUZZ_CXXFLAGS  extra compiler flags, e.g. -O2
//
// Everything it writes is under build-fuzz/ (git-ignored): the binary, the
// working corpus (a copy of fuzz/corpus/ that libFuzzer grows, so the checked-in
// seeds never change) and any crash artifacts. Exits non-zero on a finding.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { hasTool, root } from './lib/env.mjs';

const APT_HINT = 'sudo apt-get install clang libclang-rt-14-dev';
const outDir = 'build-fuzz';
const binary = join(outDir, 'frame_fuzzer');
const workCorpus = join(outDir, 'corpus-work');
const artifactDir = join(outDir, 'artifacts');
const seedDir = join('fuzz', 'corpus');
const regressionDir = join('fuzz', 'regressions');

function usage(problem) {
  console.error(`fuzz: ${problem}\nusage: node scripts/fuzz.mjs [--seconds N] [--fresh]   (or FUZZ_SECONDS=N)`);
  process.exit(2);
}

function parseArgs(argv) {
  let seconds = process.env.FUZZ_SECONDS;
  let fresh = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--seconds') seconds = argv[++i];
    else if (arg.startsWith('--seconds=')) seconds = arg.slice('--seconds='.length);
    else if (arg === '--fresh') fresh = true;
    else if (arg === '--help' || arg === '-h') usage('fuzzes DecodeFrame/EncodeFrame for a bounded time');
    else usage(`unknown argument '${arg}'`);
  }
  seconds ??= '60';
  if (!/^\d+$/.test(String(seconds)) || Number(seconds) < 1) usage(`--seconds wants a whole number of seconds ≥ 1, not '${seconds}'`);
  return { seconds: Number(seconds), fresh };
}

function fail(message) {
  console.error(`fuzz: ${message}`);
  process.exit(1);
}

/** clang++, or the versioned name Debian installs when no default is selected. */
function findCompiler() {
  const compiler = ['clang++', 'clang++-14'].find(hasTool);
  if (!compiler) fail(`clang++ was not found. Install it with: ${APT_HINT}`);
  return compiler;
}

/**
 * -fsanitize=fuzzer needs compiler-rt's static libraries, which Debian ships
 * apart from clang; without them the link fails with a riddle about
 * libclang_rt, so look first and name the package instead.
 */
function checkRuntime(compiler) {
  const r = spawnSync(compiler, ['-print-runtime-dir'], { encoding: 'utf8' });
  const dir = r.stdout?.trim();
  const present = dir && existsSync(dir) ? readdirSync(dir) : [];
  // Both compiler-rt layouts: lib/linux/libclang_rt.fuzzer-x86_64.a and lib/<triple>/libclang_rt.fuzzer.a.
  const missing = ['fuzzer', 'asan', 'ubsan_standalone'].filter(
    (lib) => !present.some((file) => new RegExp(`^libclang_rt\\.${lib}(-[\\w]+)?\\.a$`).test(file)),
  );
  if (missing.length) {
    fail(`${compiler} lacks the compiler-rt libraries for ${missing.join(', ')} (looked in ${dir || '?'}). Install them with: ${APT_HINT}`);
  }
}

function build(compiler) {
  mkdirSync(outDir, { recursive: true });
  const extra = (process.env.FUZZ_CXXFLAGS ?? '').split(/\s+/).filter(Boolean);
  const args = [
    '-std=c++17', '-g', '-O1', '-Wall', '-Wextra',
    '-fsanitize=fuzzer,address,undefined', '-fno-sanitize-recover=undefined',
    ...extra,
    '-Inative/core', 'fuzz/frame_fuzzer.cc', 'native/core/frame.cc',
    '-o', binary,
  ];
  console.log(`fuzz: building ${binary} (${compiler}${extra.length ? ` ${extra.join(' ')}` : ''})`);
  const r = spawnSync(compiler, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail(`the build failed. If the errors mention libclang_rt or -fsanitize, install: ${APT_HINT}`);
}

function filesIn(dir) {
  const full = join(root, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full).filter((name) => statSync(join(full, name)).isFile()).map((name) => join(dir, name));
}

/** libFuzzer runs each file named on its command line once and stops at the first failure. */
function replayRegressions() {
  const inputs = filesIn(regressionDir);
  if (!inputs.length) return;
  console.log(`fuzz: replaying ${inputs.length} input(s) from ${regressionDir}/`);
  const r = spawnSync(binary, inputs, { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(r.stderr);
    const failing = [...r.stderr.matchAll(/^Running: (.+)$/gm)].at(-1)?.[1] ?? `<file from ${regressionDir}/>`;
    fail(`a saved regression fails again; reproduce with: ${binary} ${failing}`);
  }
}

/** Copies the seeds in; returns how many there are and how many files the working corpus holds. */
function prepareCorpus(fresh) {
  const full = join(root, workCorpus);
  if (fresh) rmSync(full, { recursive: true, force: true });
  mkdirSync(full, { recursive: true });
  mkdirSync(join(root, artifactDir), { recursive: true });
  const seeds = filesIn(seedDir);
  if (!seeds.length) fail(`${seedDir}/ is empty; run: node fuzz/make-corpus.mjs`);
  // Regressions join the seeds: inputs that once broke something sit near edges worth mutating.
  const regressions = filesIn(regressionDir);
  for (const seed of seeds) copyFileSync(join(root, seed), join(full, basename(seed)));
  for (const input of regressions) copyFileSync(join(root, input), join(full, `regression-${basename(input)}`));
  return { seeds: seeds.length + regressions.length, total: readdirSync(full).length };
}

/** Runs libFuzzer, passing its output through while collecting what the summary needs. */
function runFuzzer(seconds) {
  const args = [
    `-max_total_time=${seconds}`, '-max_len=140000', '-timeout=10', '-rss_limit_mb=2048',
    `-artifact_prefix=${artifactDir}/`, '-print_final_stats=1', workCorpus,
  ];
  return new Promise((resolve) => {
    const child = spawn(binary, args, { cwd: root, stdio: ['ignore', 'inherit', 'pipe'] });
    const seen = { executions: undefined, lastIteration: undefined, corpus: undefined, artifacts: [], reasons: [], interrupted: false };
    let pending = '';
    const scan = (line) => {
      let m;
      if ((m = /^#(\d+)\s.*\bcorp: (\d+)\//.exec(line))) [seen.lastIteration, seen.corpus] = [Number(m[1]), Number(m[2])];
      else if ((m = /^stat::number_of_executed_units:\s*(\d+)/.exec(line))) seen.executions = Number(m[1]);
      else if ((m = /Test unit written to (\S+)/.exec(line))) seen.artifacts.push(m[1]);
      else if (/run interrupted/.test(line)) seen.interrupted = true;
      else if (/^frame_fuzzer: invariant violated|ERROR: (libFuzzer|\w+Sanitizer)|runtime error:/.test(line)) seen.reasons.push(line.trim());
    };
    child.stderr.on('data', (chunk) => {
      process.stderr.write(chunk);
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop();
      lines.forEach(scan);
    });
    // Ctrl-C reaches libFuzzer too; it stops and prints its stats, and the summary still follows.
    const ignore = () => {};
    process.on('SIGINT', ignore);
    child.on('close', (status, signal) => {
      process.off('SIGINT', ignore);
      if (pending) scan(pending);
      resolve({ ...seen, status, signal });
    });
  });
}

const { seconds, fresh } = parseArgs(process.argv.slice(2));
const compiler = findCompiler();
checkRuntime(compiler);
build(compiler);
replayRegressions();
const corpus = prepareCorpus(fresh);

console.log(
  `fuzz: start: ${binary} for ${seconds} s over ${workCorpus}/ (${corpus.seeds} seeds` +
    `${corpus.total > corpus.seeds ? ` + ${corpus.total - corpus.seeds} grown by earlier runs` : ''}); artifacts go to ${artifactDir}/`,
);
const started = Date.now();
const run = await runFuzzer(seconds);
const elapsed = Math.round((Date.now() - started) / 1000);

// Only crash-, leak-, timeout- and oom- files are findings; libFuzzer may also save slow-unit- files.
const findings = run.artifacts.filter((path) => /(^|\/)(crash|leak|timeout|oom)-/.test(path));
const executions = run.executions ?? run.lastIteration ?? 0;
const plural = findings.length === 1 ? 'crash' : 'crashes';
// A seed that fails stops libFuzzer before its first status line, so there may be no corpus size to report.
const corpusSize = run.corpus === undefined ? 'not loaded yet' : `${run.corpus} inputs`;
console.log(`fuzz: ${executions} executions in ${elapsed} s, ${findings.length} ${plural}, corpus ${corpusSize}`);

if (findings.length) {
  for (const reason of [...new Set(run.reasons)].slice(0, 5)) console.error(`  reason:    ${reason}`);
  for (const path of findings) {
    console.error(`  artifact:  ${path}`);
    console.error(`  reproduce: ${binary} ${path}`);
  }
  console.error(`  Keep the input as a regression by copying it into ${regressionDir}/ once the cause is understood.`);
  process.exit(1);
}
if (run.interrupted) process.exit(130);
if (run.status !== 0) fail(`libFuzzer exited with ${run.status ?? run.signal} without saving an artifact; see its output above`);
