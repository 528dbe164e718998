// npm test: type check, then the whole suite on this host, then — on Linux —
// the same suite on newer Node.js releases (scripts/lib/node-versions.mjs) and
// with the real Windows Node.js under Wine.
//
//   node scripts/test.mjs [--only <label>[,<label>...]] [--no-build] [files...]
//
// Files are test/*.test.mjs suites or test/native/*.cc programs (the C++
// tests without Node: the transport contract test on Linux and under Wine,
// the Windows transport test under Wine); none given means all of them.
//
// Labels: linux (this Node), linux-node22, linux-node24, linux-node26, win,
// types (a user's project type-checks against the packed package; full runs only).
//
// Each test file runs in its own process (so handle-count baselines are per
// file). The Windows suite is mandatory: if Wine is missing this fails, unless
// MEMPORT_SKIP_WINDOWS=1 is set outside CI, which is reported as a skip.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { root } from './lib/env.mjs';
import { EXTRA_NODE_VERSIONS, hostNodePackage, nodeLabel } from './lib/node-versions.mjs';
import { ensureNpmNode } from './lib/npm-node.mjs';
import { ensurePrefix, ensureWindowsNode, runWindowsNode, wineCommand } from './lib/wine.mjs';

const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const build = !args.includes('--no-build');
const explicitFiles = args.filter((a, i) => a.endsWith('.mjs') && args[i - 1] !== '--only');
const explicitNative = args.filter((a, i) => a.endsWith('.cc') && args[i - 1] !== '--only').map((f) => relative(root, join(process.cwd(), f)).replace(/\\/g, '/'));
const explicit = explicitFiles.length + explicitNative.length > 0;
const onLinux = process.platform === 'linux';
const onlyLabels = only?.split(',');
const wants = (label) => !onlyLabels || onlyLabels.includes(label);
const runHost = !onlyLabels || onlyLabels.some((l) => l === 'linux' || l === process.platform);
const runWine = onLinux && wants('win');
// The official Linux binaries exist for x64 and arm64 (npm: node-linux-<arch>).
const extraNodes = onLinux && ['x64', 'arm64'].includes(process.arch) ? EXTRA_NODE_VERSIONS.filter((v) => wants(nodeLabel(v))) : [];

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
function step(title, command, commandArgs) {
  console.log(`\n▶ ${title}`);
  const r = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`✘ ${title} failed (exit ${r.status ?? r.signal}).`);
    console.log('\n0 passed, 1 failed');
    process.exit(1);
  }
}

const testFiles = explicit
  ? explicitFiles.map((f) => relative(root, join(process.cwd(), f)))
  : readdirSync(join(root, 'test'))
      .filter((f) => f.endsWith('.test.mjs'))
      .sort()
      .map((f) => join('test', f));

if (build) {
  step('build (native addon + TypeScript)', npm, ['run', 'build', '--silent']);
  if (runWine) step('cross-build the Windows addon (mingw-w64)', npm, ['run', 'build:win', '--silent']);
}
step('type check', npm, ['run', 'typecheck', '--silent']);
step('API reference (npm run docs: TypeDoc, warnings are errors)', npm, ['run', 'docs', '--silent']);
// The adversarial suite's raw-protocol peer, for Linux and (cross-built) Windows.
step('build the adversarial peer (test/adversarial/evil_peer.c)', process.execPath, [join('test', 'adversarial', 'build.mjs')]);

/** Parses uvu's closing summary, or a plain final "N passed, N failed" line; a run that printed neither counts as one failure. */
function tally(output, status) {
  const plain = [...output.matchAll(/^(\d+) passed, (\d+) failed\s*$/gm)].at(-1);
  if (plain) return { passed: Number(plain[1]), failed: Number(plain[2]) || (status === 0 ? 0 : 1), skipped: 0, crashed: false };
  const num = (label) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(output)?.[1] ?? NaN);
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  if (Number.isNaN(total) || Number.isNaN(passed)) return { passed: 0, failed: 1, skipped: 0, crashed: true };
  const failed = total - passed - (skipped || 0);
  return { passed, failed: failed > 0 || status === 0 ? failed : 1, skipped: skipped || 0, crashed: false };
}

const results = [];
/**
 * The lines of a failed run worth repeating in the closing summary (CI logs
 * keep only their tail): uvu's FAIL/✘ blocks and assertion diffs, or the last
 * lines when there are none.
 */
function failureExcerpt(output, status) {
  const lines = output.split('\n');
  const picked = [];
  lines.forEach((line, i) => {
    if (/^\s*(FAIL|✘)|\bFAIL\b|Error:|Assertion|Expected|Actual/.test(line)) picked.push(...lines.slice(i, i + 6));
  });
  const body = (picked.length ? [...new Set(picked)] : lines.filter((l) => l.trim()).slice(-12)).slice(0, 40);
  const why = status === null ? ['(the process did not exit before the time limit and was killed)'] : typeof status === 'string' ? [`(the process was killed by ${status})`] : [];
  return [...why, ...body].map((l) => `      ${l}`).join('\n');
}
/** A spawnSync result's exit: its status, null when our time limit killed it, or the signal that ended it (a crash). */
function exitOf(r) {
  if (r.status !== null) return r.status;
  return r.error?.code === 'ETIMEDOUT' ? null : (r.signal ?? null);
}
function record(platform, file, output, status, ms) {
  const t = tally(output, status);
  const ok = t.failed === 0 && status === 0;
  results.push({ platform, file, ...t, ok, excerpt: ok ? '' : failureExcerpt(output, status) });
  const mark = ok ? '✔' : '✘';
  console.log(`  ${mark} ${file}  ${t.passed} passed, ${t.failed} failed${t.skipped ? `, ${t.skipped} skipped` : ''}  (${(ms / 1000).toFixed(1)} s)`);
  if (!ok) console.log(output.split('\n').map((l) => `      ${l}`).join('\n'));
}

/** Runs every test file with the `node` binary at `execPath`, each in its own process. */
function runSuite(platform, execPath) {
  for (const file of testFiles) {
    const start = Date.now();
    const r = spawnSync(execPath, ['--expose-gc', '--import', './test/exit-watchdog.mjs', file], { cwd: root, encoding: 'utf8', timeout: 10 * 60_000 });
    record(platform, file, `${r.stdout}${r.stderr}`, exitOf(r), Date.now() - start);
  }
}

/**
 * The C++ test programs (test/native), each built by its script and run once:
 * no rerun, a flaky check is made exact instead. `platform` is the label the
 * result is tallied under; the script's last line is "N passed, N failed".
 */
const NATIVE_PROGRAMS = [
  // One set of transport cases over each backend (native/linux, native/win).
  { file: 'test/native/transport_contract_test.cc', platform: 'linux', script: 'run-contract-test.sh', args: ['linux'] },
  { file: 'test/native/transport_contract_test.cc', platform: 'win32', script: 'run-contract-test.sh', args: ['win'] },
  // What only the Windows backend does (squatting, bogus handle values, DACLs, inheritance, 64 clients).
  { file: 'test/native/win_transport_test.cc', platform: 'win32', script: 'run-win-transport-test.sh', args: [] },
];
function runNativePrograms(platform) {
  for (const program of NATIVE_PROGRAMS) {
    if (program.platform !== platform || (explicit && !explicitNative.includes(program.file))) continue;
    const start = Date.now();
    const r = spawnSync('sh', [join('test', 'native', program.script), ...program.args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000 });
    record(platform, program.file, `${r.stdout}${r.stderr}`, exitOf(r), Date.now() - start);
  }
}

if (runHost) {
  console.log(`\n▶ ${process.platform} suite (Node ${process.version})`);
  runSuite(process.platform, process.execPath);
  if (onLinux) runNativePrograms('linux');
}

// The same files on the other supported Node.js lines. One addon build serves
// them all (Node-API 8); the tests' child processes use the same binary.
for (const version of extraNodes) {
  const label = nodeLabel(version);
  let node;
  try {
    node = ensureNpmNode(hostNodePackage, version);
  } catch (e) {
    console.log(`\n▶ ${label} suite`);
    record(label, `(fetching Node.js ${version})`, String(e.message ?? e), 1, 0);
    continue;
  }
  console.log(`\n▶ ${label} suite (Node v${version})`);
  runSuite(label, node);
}

// A user's project with its own neverthrow (7.x, 8.x) compiles strictly against
// the packed package and shares that neverthrow (test/types-consumer/run.mjs).
if (!explicit && wants('types')) {
  console.log('\n▶ types: a user project with its own neverthrow, against the packed package');
  const start = Date.now();
  const r = spawnSync(process.execPath, [join('test', 'types-consumer', 'run.mjs')], { cwd: root, encoding: 'utf8', timeout: 15 * 60_000 });
  record('types', 'test/types-consumer/run.mjs', `${r.stdout}${r.stderr}`, r.status, Date.now() - start);
}

let windowsSkipped = false;
if (runWine) {
  if (!wineCommand()) {
    if (process.env.CI || process.env.MEMPORT_SKIP_WINDOWS !== '1') {
      console.error('\n✘ Wine is not installed, so the mandatory Windows suite cannot run.');
      console.error('  Install it with `npm run setup` (or apt-get install -y wine64 g++-mingw-w64-x86-64).');
      console.error('  Outside CI you may skip it explicitly with MEMPORT_SKIP_WINDOWS=1.');
      console.log('\n0 passed, 1 failed');
      process.exit(1);
    }
    windowsSkipped = true;
    console.warn('\n⚠ Windows suite SKIPPED (MEMPORT_SKIP_WINDOWS=1). CI never skips it.');
  } else {
    ensureWindowsNode();
    ensurePrefix();
    process.env.MEMPORT_UNDER_WINE = '1';
    const version = runWindowsNode(['--version']).output.trim();
    console.log(`\n▶ win32 suite (Windows Node ${version} under Wine)`);
    for (const file of testFiles) {
      const start = Date.now();
      const r = runWindowsNode(['--expose-gc', '--import', './test/exit-watchdog.mjs', file.replace(/\//g, '\\')], { timeoutMs: 10 * 60_000 });
      record('win32', file, r.output, r.status, Date.now() - start);
    }
    runNativePrograms('win32');
  }
}

if (!explicit && !only) {
  // The packed package installed as a user does, on Linux, Wine and qemu arm64
  // (scripts/test-install.mjs prints as it goes; its tally comes back in a file).
  const summary = join(root, '.cache', `install-summary-${process.pid}.txt`);
  const start = Date.now();
  const r = spawnSync(process.execPath, [join('scripts', 'test-install.mjs'), ...(build ? [] : ['--no-build']), '--summary', summary], { cwd: root, stdio: 'inherit', timeout: 30 * 60_000 });
  record('install', 'scripts/test-install.mjs', existsSync(summary) ? readFileSync(summary, 'utf8') : '', r.status, Date.now() - start);
  rmSync(summary, { force: true });
}

const sum = (key) => results.reduce((n, r) => n + r[key], 0);
const passed = sum('passed');
const failed = sum('failed');
const skipped = sum('skipped') + (windowsSkipped ? 1 : 0);
console.log('\n' + '─'.repeat(60));
for (const platform of [...new Set(results.map((r) => r.platform))]) {
  const rows = results.filter((r) => r.platform === platform);
  const p = rows.reduce((n, r) => n + r.passed, 0);
  const f = rows.reduce((n, r) => n + r.failed, 0);
  console.log(`${platform.padEnd(13)} ${p} passed, ${f} failed in ${rows.length} files`);
}
const failures = results.filter((r) => !r.ok);
if (failures.length) {
  console.log('\nFailures (full output above):');
  for (const r of failures) console.log(`  ✘ [${r.platform}] ${r.file}\n${r.excerpt}`);
}
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 && results.every((r) => r.ok) ? 0 : 1);
