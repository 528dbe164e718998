// The install test (a step of `npm test`): installs the packed package the way
// a user does and uses it, on every platform memport ships a binary for.
//
//   node scripts/test-install.mjs [--no-build] [--keep] [--summary <file>]
//
//  1. the prebuilds: built (npm run build:prebuilds, incremental) unless
//     --no-build, then checked (symbol versions, imports, stripped); and the
//     check is shown to reject a host build (GLIBC_2.33+, libstdc++);
//  2. `npm pack`: the tarball holds dist/ and the three prebuilds, no sources,
//     no install script, and depends on neverthrow alone;
//  3. in new empty projects outside the checkout (mktemp), with a PATH holding
//     node, npm and a few coreutils but no compiler, cmake or make:
//     `npm install <tarball>` with npm's defaults, with --ignore-scripts and
//     with --strict-allow-scripts all succeed and say nothing about install
//     scripts (a control package with an install script shows that npm here
//     does warn, and fail under --strict-allow-scripts);
//  4. the smoke program (test/install/) in ESM and CJS: a region, a view, a
//     read-only twin and a notifier, handed over listen/connect to a second
//     process that reads the region and notifies back, then a stream
//     in-process (native atomics); a strict TypeScript file compiles against the installed types;
//  5. the same node_modules under Wine with the Windows Node (the win32-x64
//     prebuilt), and with the real arm64 Node under qemu-user (linux-arm64).
// Prints the tarball size, install time and installed package count, and a
// closing "N passed, N failed" that scripts/test.mjs counts.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { hasTool, root } from './lib/env.mjs';
import { arm64Sysroot } from './lib/bullseye.mjs';
import { ensureArm64Node } from './lib/arm64.mjs';
import { ensurePrefix, ensureWindowsNode, runWindowsNode, wineCommand } from './lib/wine.mjs';

const args = process.argv.slice(2);
const build = !args.includes('--no-build');
const keep = args.includes('--keep');
// scripts/test.mjs lets this print as it goes and reads the tally from here.
const summaryFile = args.includes('--summary') ? args[args.indexOf('--summary') + 1] : undefined;
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
// Neither the user's install nor the smoke runs may see a developer's override.
delete process.env.MEMPORT_ADDON;

let passed = 0;
let failed = 0;
/** Runs one named check; a thrown Error fails it with its message. */
function check(name, fn) {
  try {
    const detail = fn();
    passed++;
    console.log(`  ✔ ${name}${detail ? `  (${detail})` : ''}`);
  } catch (e) {
    failed++;
    console.log(`  ✘ ${name}\n${String(e.message).split('\n').map((l) => `      ${l}`).join('\n')}`);
  }
}
const section = (title) => console.log(`\n▸ ${title}  [${elapsed()}]`);
function expect(condition, message) {
  if (!condition) throw new Error(message);
}
const show = (r) => `exit ${r.status ?? r.signal}\n${`${r.stdout ?? ''}${r.stderr ?? ''}`.trim()}`;

const work = mkdtempSync(join(tmpdir(), 'memport-install-'));
console.log(`install test in ${work}`);

// ── 1. prebuilds ─────────────────────────────────────────────────────────────
section('prebuilds');
if (build) {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-prebuilds.mjs')], { cwd: root, stdio: 'inherit' });
  check('npm run build:prebuilds', () => expect(r.status === 0, `build:prebuilds failed (exit ${r.status ?? r.signal}); see above`));
}
check('the prebuilds pass their check (glibc <= 2.28, no C++ runtime imports, system DLLs only, stripped)', () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'check-prebuilds.mjs')], { cwd: root, encoding: 'utf8' });
  expect(r.status === 0, show(r));
  return r.stdout.split('\n').filter((l) => l.includes('✔')).map((l) => l.trim().slice(2)).join('; ');
});
const hostBuild = join(root, 'build', 'Release', 'memport.node');
if (existsSync(hostBuild)) {
  check('the check rejects an addon built on this host (newer glibc, libstdc++)', () => {
    const dir = join(work, 'host-prebuilds');
    mkdirSync(join(dir, 'linux-x64'), { recursive: true });
    cpSync(hostBuild, join(dir, 'linux-x64', 'memport.node'));
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'check-prebuilds.mjs'), '--dir', dir, '--only', 'linux-x64'], { encoding: 'utf8' });
    expect(r.status !== 0 && /GLIBCXX_/.test(r.stdout), `expected a failure naming GLIBCXX_:\n${show(r)}`);
  });
}

// ── 2. npm pack ──────────────────────────────────────────────────────────────
section('npm pack');
let tarball;
const figures = {};
check('npm pack: dist/ and the three prebuilds; no sources, no install script; depends on neverthrow only', () => {
  expect(existsSync(join(root, 'dist', 'index.js')), 'dist/ is missing: run `npm run build` first');
  // --ignore-scripts: prepack (the prebuild check, run above) would print into the JSON.
  const r = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
  expect(r.status === 0, show(r));
  const [info] = JSON.parse(r.stdout);
  tarball = join(work, info.filename);
  const files = info.files.map((f) => f.path);
  for (const need of ['package.json', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'prebuilds/linux-x64/memport.node', 'prebuilds/linux-arm64/memport.node', 'prebuilds/win32-x64/memport.node']) {
    expect(files.includes(need), `${need} is not in the tarball`);
  }
  const unwanted = files.filter((f) => /^(native|src|scripts|test|build[^/]*|cmake|examples|bench|fuzz)\/|^binding\.gyp$|^CMakeLists\.txt$/.test(f));
  expect(unwanted.length === 0, `the tarball ships files users do not need: ${unwanted.join(', ')}`);
  const strayPrebuilds = files.filter((f) => f.startsWith('prebuilds/') && !/^prebuilds\/(linux-x64|linux-arm64|win32-x64)\/memport\.node$/.test(f));
  expect(strayPrebuilds.length === 0, `unexpected files under prebuilds/: ${strayPrebuilds.join(', ')}`);
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const scripts = Object.keys(manifest.scripts ?? {}).filter((s) => ['preinstall', 'install', 'postinstall', 'prepare'].includes(s));
  expect(scripts.length === 0, `package.json has install-time scripts: ${scripts.join(', ')}`);
  expect(JSON.stringify(Object.keys(manifest.dependencies ?? {})) === '["neverthrow"]', `dependencies: ${JSON.stringify(manifest.dependencies)}`);
  figures.tarballBytes = info.size;
  figures.unpackedBytes = info.unpackedSize;
  figures.files = info.entryCount;
  return `${info.filename}: ${(info.size / 1024).toFixed(0)} KB packed, ${(info.unpackedSize / 1024).toFixed(0)} KB unpacked, ${info.entryCount} files`;
});

// ── 3. install with no toolchain ─────────────────────────────────────────────
section('npm install <tarball> with no compiler, cmake or make on PATH');
const bin = join(work, 'bin');
mkdirSync(bin);
const npmCli = realpathSync(spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim());
symlinkSync(process.execPath, join(bin, 'node'));
symlinkSync(npmCli, join(bin, 'npm'));
// npm runs scripts through sh and its own shebangs through env; nothing else is needed.
for (const tool of ['sh', 'env', 'cat', 'ls', 'mkdir', 'rm', 'cp', 'mv', 'uname']) {
  const path = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  if (path) symlinkSync(path, join(bin, tool));
}
/** A user's environment: the bare PATH, HOME (npm's config), and none of the npm_* variables `npm test` sets. */
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => ['HOME', 'LANG', 'TMPDIR', 'NODE_EXTRA_CA_CERTS', 'USER'].includes(k)),
);
userEnv.PATH = bin;
check('the PATH has node and npm but no C/C++ compiler, cmake, make or ninja', () => {
  const found = ['cc', 'gcc', 'g++', 'c++', 'clang', 'clang++', 'cmake', 'make', 'ninja', 'node-gyp'].filter(
    (t) => spawnSync('/bin/sh', ['-c', `command -v ${t}`], { env: userEnv }).status === 0,
  );
  expect(found.length === 0, `found on PATH: ${found.join(', ')}`);
  const v = spawnSync('npm', ['--version'], { env: userEnv, encoding: 'utf8' });
  expect(v.status === 0, show(v));
  return `npm ${v.stdout.trim()}, node ${process.version}`;
});

// What npm 11 prints about dependencies' install scripts (checked against a control below).
const SCRIPT_NOTICE = /install script|allowScripts|allow-scripts|approve-builds|lifecycle script|node-gyp|\bgyp\b/i;
function npmInstall(project, spec, flags, env = userEnv) {
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'memport-user', version: '1.0.0', private: true }, null, 2));
  const start = Date.now();
  const r = spawnSync('npm', ['install', spec, ...flags], { cwd: project, env, encoding: 'utf8', timeout: 10 * 60_000 });
  return { ...r, ms: Date.now() - start };
}

check('control: npm here warns about a dependency install script, and --strict-allow-scripts fails it', () => {
  const pkg = join(work, 'control-pkg');
  mkdirSync(pkg);
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'has-install-script', version: '1.0.0', scripts: { install: 'node -e 0' } }));
  const packed = spawnSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: pkg, env: userEnv, encoding: 'utf8' });
  expect(packed.status === 0, show(packed));
  const spec = join(work, packed.stdout.trim());
  const warned = npmInstall(join(work, 'control-default'), spec, []);
  expect(warned.status === 0 && SCRIPT_NOTICE.test(`${warned.stdout}${warned.stderr}`), `expected a notice about the install script:\n${show(warned)}`);
  const strict = npmInstall(join(work, 'control-strict'), spec, ['--strict-allow-scripts']);
  expect(strict.status !== 0, `expected --strict-allow-scripts to fail the install:\n${show(strict)}`);
});

const userProject = join(work, 'user-default');
for (const [label, flags, dir] of [
  ["npm's defaults", [], userProject],
  ['--ignore-scripts', ['--ignore-scripts'], join(work, 'user-ignore-scripts')],
  ['--strict-allow-scripts', ['--strict-allow-scripts'], join(work, 'user-strict')],
]) {
  check(`npm install <tarball> (${label}) succeeds and says nothing about install scripts`, () => {
    expect(tarball, 'no tarball (npm pack failed)');
    // The first install starts from an empty npm cache, as on a new machine,
    // so its time (the figure the README quotes) includes the downloads.
    const env = dir === userProject ? { ...userEnv, npm_config_cache: join(work, 'empty-npm-cache') } : userEnv;
    const r = npmInstall(dir, tarball, flags, env);
    expect(r.status === 0, show(r));
    const output = `${r.stdout}${r.stderr}`;
    const notices = output.split('\n').filter((l) => SCRIPT_NOTICE.test(l));
    expect(notices.length === 0, `npm printed:\n${notices.join('\n')}`);
    expect(existsSync(join(dir, 'node_modules', 'memport', 'prebuilds', 'linux-x64', 'memport.node')), 'the prebuilt is not installed');
    const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8'));
    const installed = Object.keys(lock.packages).filter((k) => k !== '');
    if (dir === userProject) {
      figures.installMs = r.ms;
      figures.packages = installed.length;
    }
    return `${(r.ms / 1000).toFixed(1)} s, ${installed.length} packages: ${installed.map((k) => k.replace(/^node_modules\//, '')).join(', ')}`;
  });
}
cpSync(join(root, 'test', 'install'), userProject, { recursive: true });

// ── 4. smoke program and types on this host ─────────────────────────────────
section(`smoke program and types (${process.platform}-${process.arch}, Node ${process.version})`);
const expectAddon = (output, target) =>
  expect(output.includes(`node_modules/memport/prebuilds/${target}/memport.node`.replace(/\//g, target.startsWith('win32') ? '\\' : '/')), `the smoke program did not load prebuilds/${target}:\n${output}`);
for (const entry of ['smoke.mjs', 'smoke.cjs']) {
  check(`${entry} (region, view, read-only twin and a notifier and a stream reader handed to a second process over listen/connect)`, () => {
    const r = spawnSync('node', [entry], { cwd: userProject, env: userEnv, encoding: 'utf8', timeout: 5 * 60_000 });
    expect(r.status === 0, show(r));
    expectAddon(r.stdout, `${process.platform}-${process.arch}`);
    return r.stdout.trim().split('\n').at(-1);
  });
}
check('a strict TypeScript file (strict, exactOptionalPropertyTypes, skipLibCheck: false) compiles against the installed types', () => {
  writeFileSync(
    join(userProject, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          strict: true,
          exactOptionalPropertyTypes: true,
          skipLibCheck: false,
          noEmit: true,
          target: 'ES2022',
          lib: ['ES2022', 'ESNext.Disposable'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          types: ['node'],
          typeRoots: [join(root, 'node_modules', '@types')],
        },
        files: ['types.mts', 'types.cts'],
      },
      null,
      2,
    ),
  );
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync('node', [tsc, '-p', 'tsconfig.json'], { cwd: userProject, env: userEnv, encoding: 'utf8' });
  expect(r.status === 0, show(r));
  return `TypeScript ${JSON.parse(readFileSync(join(root, 'node_modules', 'typescript', 'package.json'), 'utf8')).version}`;
});

check('an esbuild bundle (ESM and CJS) finds memport.node next to it, and says where to put it when it is missing', () => {
  const esbuild = join(root, 'node_modules', 'esbuild', 'bin', 'esbuild');
  expect(existsSync(esbuild), 'esbuild (a dependency of tsup) is missing: npm ci');
  const app = join(work, 'bundled-app');
  mkdirSync(app);
  const out = [];
  for (const [format, file] of [['esm', 'app.mjs'], ['cjs', 'app.cjs']]) {
    const b = spawnSync(esbuild, ['bundle-app.mjs', '--bundle', '--platform=node', `--format=${format}`, `--outfile=${join(app, file)}`, '--log-level=error'], { cwd: userProject, env: userEnv, encoding: 'utf8' });
    expect(b.status === 0, show(b));
    const missing = spawnSync('node', [file], { cwd: app, env: userEnv, encoding: 'utf8' });
    expect(missing.status !== 0 && missing.stderr.includes(`${join(app, 'memport.node')} [next to the bundle]: not found`), `${format} without the addon:\n${show(missing)}`);
  }
  cpSync(join(userProject, 'node_modules', 'memport', 'prebuilds', `${process.platform}-${process.arch}`, 'memport.node'), join(app, 'memport.node'));
  for (const file of ['app.mjs', 'app.cjs']) {
    const r = spawnSync('node', [file], { cwd: app, env: userEnv, encoding: 'utf8' });
    expect(r.status === 0 && r.stdout.includes(`addon ${join(app, 'memport.node')}`), `${file}:\n${show(r)}`);
    out.push(`${file}: ${r.stdout.trim()}`);
  }
  return out.join('; ');
});

// ── 5a. the same node_modules under Wine ─────────────────────────────────────
section('win32-x64: the Windows Node under Wine, same node_modules');
if (!wineCommand() && !process.env.CI && process.env.MEMPORT_SKIP_WINDOWS === '1') {
  console.log('  ⚠ SKIPPED (MEMPORT_SKIP_WINDOWS=1, as for the Windows suite). CI never skips it.');
} else if (!wineCommand()) {
  check('Wine is installed', () => expect(false, 'Wine is missing: npm run setup (apt-get install -y wine64)'));
} else {
  ensureWindowsNode();
  ensurePrefix();
  for (const entry of ['smoke.mjs', 'smoke.cjs']) {
    check(`${entry} with Windows Node under Wine (prebuilds/win32-x64)`, () => {
      const r = runWindowsNode([entry], { cwd: userProject, timeoutMs: 5 * 60_000 });
      expect(r.status === 0, `exit ${r.status ?? r.signal}\n${r.output}`);
      expectAddon(r.output, 'win32-x64');
      return r.output.trim().split(/\r?\n/).at(-1);
    });
  }
}

// ── 5b. linux-arm64 under qemu-user ──────────────────────────────────────────
section('linux-arm64: the real arm64 Node under qemu-user, same node_modules');
if (!hasTool('qemu-aarch64-static')) {
  check('qemu-user is installed', () => expect(false, 'qemu-aarch64-static is missing: apt-get install -y qemu-user-static'));
} else {
  // No binfmt_misc registration (a machine-wide change): the parent starts
  // its child through qemu explicitly (MEMPORT_SMOKE_LAUNCHER), with the arm64
  // C runtime from the bullseye root (QEMU_LD_PREFIX, inherited by the child).
  const qemu = realpathSync(spawnSync('sh', ['-c', 'command -v qemu-aarch64-static'], { encoding: 'utf8' }).stdout.trim());
  let arm64Node;
  check('the arm64 Node starts under qemu-aarch64-static', () => {
    expect(existsSync(join(arm64Sysroot, 'lib', 'ld-linux-aarch64.so.1')), `no arm64 C runtime at ${arm64Sysroot}: run npm run build:prebuilds (it makes the bullseye root)`);
    arm64Node = ensureArm64Node();
    const r = spawnSync(qemu, [arm64Node, '-p', 'process.arch + " " + process.version'], { env: { ...userEnv, QEMU_LD_PREFIX: arm64Sysroot }, encoding: 'utf8' });
    expect(r.status === 0 && r.stdout.startsWith('arm64 '), show(r));
    return r.stdout.trim();
  });
  for (const entry of ['smoke.mjs', 'smoke.cjs']) {
    check(`${entry} with the arm64 Node under qemu-user (prebuilds/linux-arm64)`, () => {
      expect(arm64Node, 'the arm64 Node did not start');
      const r = spawnSync(qemu, [arm64Node, entry], {
        cwd: userProject,
        env: { ...userEnv, QEMU_LD_PREFIX: arm64Sysroot, MEMPORT_SMOKE_LAUNCHER: qemu },
        encoding: 'utf8',
        timeout: 5 * 60_000,
      });
      expect(r.status === 0, show(r));
      expectAddon(r.stdout, 'linux-arm64');
      return r.stdout.trim().split('\n').at(-1);
    });
  }
}

if (!keep) rmSync(work, { recursive: true, force: true });
console.log(`\ninstall figures: tarball ${figures.tarballBytes ? `${(figures.tarballBytes / 1024).toFixed(0)} KB` : '?'}` +
  ` (${figures.unpackedBytes ? `${(figures.unpackedBytes / 1024).toFixed(0)} KB unpacked, ${figures.files} files` : '?'}),` +
  ` install ${figures.installMs ? `${(figures.installMs / 1000).toFixed(1)} s (empty npm cache)` : '?'}, ${figures.packages ?? '?'} packages; whole test ${elapsed()}`);
console.log(`\n${passed} passed, ${failed} failed`);
if (summaryFile) mkdirSync(dirname(summaryFile), { recursive: true });
if (summaryFile) writeFileSync(summaryFile, `${passed} passed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
