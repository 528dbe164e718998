// After `npm install`, run `node scripts/lockfile-platforms.mjs`.
//
// Why: the registry mirror our machines use lacks most of rollup's per-platform
// binaries (@rollup/rollup-<os>-<cpu>), so npm cannot record them in the
// lockfile, and `npm ci` then rejects the lockfile as out of sync. Recording
// each missing optional binary with just its os/cpu/libc lets `npm ci` skip it
// by platform without fetching anything, exactly as it would on any machine.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './lib/env.mjs';

const path = join(root, 'package-lock.json');
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
const OS = { android: 'android', darwin: 'darwin', freebsd: 'freebsd', linux: 'linux', openbsd: 'openbsd', openharmony: 'openharmony', win32: 'win32' };
const CPU = { arm: 'arm', 'arm-eabi': 'arm', arm64: 'arm64', x64: 'x64', ia32: 'ia32', loong64: 'loong64', ppc64: 'ppc64', riscv64: 'riscv64', s390x: 's390x' };
let added = 0;
for (const [key, meta] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const where = `node_modules/${dep}`;
    if (packages[where] || !/^\d+\.\d+\.\d+$/.test(version)) continue;
    const m = /^@rollup\/rollup-([a-z0-9]+)-([a-z0-9]+?)(?:-(gnu|musl|msvc|gnueabihf|musleabihf|eabi))?$/.exec(dep);
    if (!m || !OS[m[1]]) continue;
    const cpu = CPU[m[2]] ?? CPU[`${m[2]}-${m[3]}`];
    if (!cpu) continue;
    const entry = { version, cpu: [cpu], dev: meta.dev === true || undefined, license: 'MIT', optional: true, os: [OS[m[1]]] };
    if (m[1] === 'linux' && m[3]) entry.libc = [m[3].startsWith('musl') ? 'musl' : 'glibc'];
    if (!entry.dev) delete entry.dev;
    packages[where] = entry;
    added++;
  }
  void key;
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
writeFileSync(path, JSON.stringify(lock, null, 2) + '\n');
console.log(`lockfile: recorded ${added} platform-only optional packages`);
