// npm run setup — prepares a fresh Debian/Ubuntu machine to build, demo and
// test memport: system packages, npm packages, the native addon for this
// host, the Windows addon (mingw-w64), and the Windows Node.js under Wine.
// Uses only Node built-ins, so it runs before `npm ci`. Safe to re-run:
// every step checks first and skips what is already there.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { hasTool, root } from './lib/env.mjs';

const onLinux = process.platform === 'linux';
const steps = onLinux ? 5 : 3;
let n = 0;
const step = (title) => console.log(`\n[${++n}/${steps}] ${title}`);

function run(command, args, what) {
  const r = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`\nmemport setup: ${what} failed (exit ${r.status ?? r.signal}). Fix the error above and re-run \`npm run setup\`.`);
    process.exit(1);
  }
}

// Debian package that provides each tool memport's build and tests need.
const systemTools = onLinux
  ? [
      ['cmake', 'cmake'],
      ['g++', 'g++'],
      ['x86_64-w64-mingw32-g++-posix', 'g++-mingw-w64-x86-64'],
      ['wine', 'wine64'], // Debian 12: /usr/bin/wine (package wine, a dependency of wine64) runs the loader in /usr/lib/wine
      ['python3', 'python3'],
      ['clang++', 'clang'],
      // npm test's install step: the prebuilds' bullseye root, their check, arm64 under qemu-user.
      ['debootstrap', 'debootstrap'],
      ['objdump', 'binutils'],
      ['qemu-aarch64-static', 'qemu-user-static'],
    ]
  : [['cmake', 'cmake']];

step('system packages');
const missing = systemTools.filter(([tool]) => !hasTool(tool)).map(([, pkg]) => pkg);
if (missing.length === 0) {
  console.log('  all present: ' + systemTools.map(([t]) => t).join(', '));
} else if (!onLinux || !hasTool('apt-get')) {
  console.error(`  missing: ${missing.join(', ')}. Install them with your package manager, then re-run.`);
  process.exit(1);
} else {
  const asRoot = process.getuid?.() === 0;
  if (!asRoot && !hasTool('sudo')) {
    console.error(`  missing: ${missing.join(', ')}. Run as root: apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  const prefix = asRoot ? [] : ['sudo'];
  console.log(`  installing ${missing.join(', ')} with apt-get (this can take a few minutes)...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...missing]]) {
    const [cmd, ...rest] = [...prefix, 'apt-get', ...args];
    const r = spawnSync(cmd, rest, { stdio: 'inherit', env });
    if (r.status !== 0) {
      console.error(`  apt-get ${args[0]} failed; install manually: apt-get install -y ${missing.join(' ')}`);
      process.exit(1);
    }
  }
}

step('npm packages');
if (existsSync(join(root, 'node_modules', 'neverthrow')) && existsSync(join(root, 'node_modules', 'tsup'))) {
  console.log('  node_modules present');
} else {
  run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['ci', '--no-audit', '--no-fund'], 'npm ci');
}

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
step(`native addon for ${process.platform}-${process.arch} and the TypeScript build`);
run(npm, ['run', 'build', '--silent'], 'npm run build');

if (onLinux) {
  step('Windows addon (cross-built with mingw-w64)');
  run(npm, ['run', 'build:win', '--silent'], 'npm run build:win');

  step('Windows Node.js under Wine');
  const { ensurePrefix, ensureWindowsNode, runWindowsNode } = await import('./lib/wine.mjs');
  ensureWindowsNode();
  ensurePrefix();
  const version = runWindowsNode(['--version']).output.trim();
  if (!/^v\d+/.test(version)) {
    console.error(`  Windows Node.js did not start under Wine: ${version || '(no output)'}`);
    process.exit(1);
  }
  console.log(`  Windows Node.js ${version} runs under Wine`);
}
console.log('\nmemport setup: done. Next: `npm run demo` or `npm test`.');
