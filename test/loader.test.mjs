// The addon loader's decisions (src/native/addon-plan.ts), for hosts we do not
// have: other platforms, architectures, musl, an old glibc, bundled apps. The
// module is pure, so it is compiled from its source here (TypeScript's
// transpileModule) and called with injected hosts. Then the real loader, in
// child processes: MEMPORT_ADDON pointing nowhere or at another platform's
// binary gives Err(UNSUPPORTED) with what was tried and what to do.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { addonSearchPaths } from '../dist/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ts = createRequire(import.meta.url)('typescript');
const source = readFileSync(join(root, 'src', 'native', 'addon-plan.ts'), 'utf8');
const compiled = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText;
const plan = await import(`data:text/javascript;base64,${Buffer.from(compiled).toString('base64')}`);

const Loader = suite('addon loader');

const linuxHost = {
  platform: 'linux',
  arch: 'x64',
  libc: { family: 'glibc', version: '2.31' },
  addonEnv: undefined,
  packageRoot: '/app/node_modules/memport',
  checkout: false,
  moduleDir: '/app/node_modules/memport/dist',
  execPath: '/usr/local/bin/node',
};
const host = (overrides) => ({ ...linuxHost, ...overrides });
const paths = (p) => p.candidates.map((c) => `${c.origin}: ${c.path}`);
const noBuildAdvice = (text) => !/cmake|npm run build|compiler|\brebuild\b/i.test(text);

Loader('an installed package on glibc: a build from source (if any), the prebuilt, then next to the executable', () => {
  const p = plan.planAddonSearch(linuxHost);
  assert.is(p.kind, 'search');
  assert.equal(paths(p), [
    'build from source: /app/node_modules/memport/build/Release/memport.node',
    'prebuilt: /app/node_modules/memport/prebuilds/linux-x64/memport.node',
    'next to the executable: /usr/local/bin/memport.node',
    'next to the executable: /usr/local/bin/prebuilds/linux-x64/memport.node',
  ]);
  const text = plan.loadFailureMessage(p, ['a: not found']);
  assert.match(text, 'could not be loaded for linux-x64');
  assert.match(text, 'reinstall memport');
  assert.match(text, 'next to the bundled script or the executable');
  assert.ok(noBuildAdvice(text), text);
});

Loader('linux-arm64 and win32-x64 get their own prebuilt, with the platform path syntax', () => {
  assert.ok(paths(plan.planAddonSearch(host({ arch: 'arm64' }))).includes('prebuilt: /app/node_modules/memport/prebuilds/linux-arm64/memport.node'));
  const win = plan.planAddonSearch(
    host({ platform: 'win32', libc: undefined, packageRoot: 'C:\\app\\node_modules\\memport', moduleDir: undefined, execPath: 'C:\\Program Files\\nodejs\\node.exe' }),
  );
  assert.equal(paths(win), [
    'build from source: C:\\app\\node_modules\\memport\\build\\Release\\memport.node',
    'prebuilt: C:\\app\\node_modules\\memport\\prebuilds\\win32-x64\\memport.node',
    'next to the executable: C:\\Program Files\\nodejs\\memport.node',
    'next to the executable: C:\\Program Files\\nodejs\\prebuilds\\win32-x64\\memport.node',
  ]);
});

Loader('in a checkout, a fresh build/Release wins over a stale prebuilds/ and the advice names npm run build', () => {
  const p = plan.planAddonSearch(host({ packageRoot: '/src/memport', checkout: true }));
  const order = p.candidates.map((c) => c.origin);
  assert.ok(order.indexOf('build from source') < order.indexOf('prebuilt'), order.join(', '));
  assert.match(plan.loadFailureMessage(p, []), '`npm run build` builds build/Release/memport.node');
});

Loader('MEMPORT_ADDON is the only candidate when set', () => {
  const p = plan.planAddonSearch(host({ addonEnv: '/opt/memport.node' }));
  assert.equal(paths(p), ['MEMPORT_ADDON: /opt/memport.node']);
  assert.match(plan.loadFailureMessage(p, []), 'unset it');
  // Empty means unset (a shell's `MEMPORT_ADDON= node app.js`); load.ts passes undefined for it.
});

Loader('macOS, FreeBSD and others: an immediate error that memport has no backend there, never build advice', () => {
  for (const [platform, name] of [['darwin', 'macOS'], ['freebsd', 'FreeBSD'], ['openbsd', 'OpenBSD'], ['haiku', 'haiku']]) {
    const p = plan.planAddonSearch(host({ platform, arch: 'arm64', libc: undefined, addonEnv: '/opt/memport.node' }));
    assert.is(p.kind, 'unsupported', platform);
    assert.match(p.message, `memport has no backend for ${name}`);
    assert.match(p.message, 'Linux (x64, arm64');
    assert.ok(noBuildAdvice(p.message), p.message);
  }
});

Loader('musl: no glibc prebuilt is tried; the message says not supported yet and how to build from source', () => {
  const p = plan.planAddonSearch(host({ libc: { family: 'musl' } }));
  assert.is(p.kind, 'search');
  assert.not.ok(p.candidates.some((c) => c.origin === 'prebuilt'), paths(p).join('\n'));
  const text = plan.loadFailureMessage(p, []);
  assert.match(text, 'no prebuilt addon for musl libc');
  assert.match(text, '`npm ci && npm run build:native`');
  assert.match(text, 'MEMPORT_ADDON');
});

Loader('a glibc older than 2.28 is told so instead of a dlopen version error; 2.28 itself is fine', () => {
  const old = plan.planAddonSearch(host({ libc: { family: 'glibc', version: '2.17' } }));
  assert.not.ok(old.candidates.some((c) => c.origin === 'prebuilt'));
  assert.match(plan.loadFailureMessage(old, []), "glibc 2.17 is older than 2.28");
  for (const version of ['2.28', '2.31', '2.100']) {
    const fine = plan.planAddonSearch(host({ libc: { family: 'glibc', version } }));
    assert.ok(fine.candidates.some((c) => c.origin === 'prebuilt'), version);
  }
  // Unknown libc (no report): the prebuilt is tried; its own load error will tell.
  assert.ok(plan.planAddonSearch(host({ libc: undefined })).candidates.some((c) => c.origin === 'prebuilt'));
});

Loader('a CPU without a prebuilt (linux-riscv64, win32-arm64) is told how to build one', () => {
  for (const [platform, arch] of [['linux', 'riscv64'], ['win32', 'arm64'], ['linux', 'ia32']]) {
    const p = plan.planAddonSearch(host({ platform, arch }));
    assert.not.ok(p.candidates.some((c) => c.origin === 'prebuilt'));
    const text = plan.loadFailureMessage(p, []);
    assert.match(text, `no prebuilt addon for ${platform}-${arch} (it ships linux-x64, linux-arm64, win32-x64)`);
    assert.match(text, 'npm run build:native');
  }
});

Loader('bundled (package directory not found): next to the bundled file, then next to the executable', () => {
  const p = plan.planAddonSearch(host({ packageRoot: undefined, moduleDir: '/srv/app/dist', execPath: '/srv/app/app' }));
  assert.equal(paths(p), [
    'next to the bundle: /srv/app/dist/memport.node',
    'next to the bundle: /srv/app/dist/prebuilds/linux-x64/memport.node',
    'next to the executable: /srv/app/memport.node',
    'next to the executable: /srv/app/prebuilds/linux-x64/memport.node',
  ]);
  // A single-executable app with no module path: just the executable's directory, no duplicates.
  const sea = plan.planAddonSearch(host({ packageRoot: undefined, moduleDir: '/srv/app', execPath: '/srv/app/app' }));
  assert.is(sea.candidates.length, 2);
});

Loader('binaryTarget reads ELF and PE headers', () => {
  const elf = (machine) => {
    const b = new Uint8Array(64);
    b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
    new DataView(b.buffer).setUint16(18, machine, true);
    return b;
  };
  const pe = (machine) => {
    const b = new Uint8Array(256);
    b.set([0x4d, 0x5a]);
    const v = new DataView(b.buffer);
    v.setUint32(0x3c, 0x80, true);
    v.setUint32(0x80, 0x50450000);
    v.setUint16(0x84, machine, true);
    return b;
  };
  assert.is(plan.binaryTarget(elf(0x3e)), 'linux-x64');
  assert.is(plan.binaryTarget(elf(0xb7)), 'linux-arm64');
  assert.is(plan.binaryTarget(pe(0x8664)), 'win32-x64');
  assert.is(plan.binaryTarget(pe(0xaa64)), 'win32-arm64');
  assert.is(plan.binaryTarget(new Uint8Array([0xcf, 0xfa, 0xed, 0xfe, 0, 0, 0, 0])), 'darwin');
  assert.is(plan.binaryTarget(new Uint8Array([0x4d, 0x5a, 1, 2])), undefined);
  assert.is(plan.binaryTarget(new TextEncoder().encode('#!/bin/sh\necho not an addon\n')), undefined);
  // The real files, where this checkout has them.
  const real = [
    [join(root, 'prebuilds', 'win32-x64', 'memport.node'), 'win32-x64'],
    [join(root, 'prebuilds', 'linux-x64', 'memport.node'), 'linux-x64'],
    [join(root, 'prebuilds', 'linux-arm64', 'memport.node'), 'linux-arm64'],
  ];
  for (const [file, target] of real) if (existsSync(file)) assert.is(plan.binaryTarget(readFileSync(file).subarray(0, 4096)), target, file);
});

Loader('libcFromReport: glibcVersionRuntime means glibc; its absence on Linux means musl', () => {
  assert.equal(plan.libcFromReport('linux', { glibcVersionRuntime: '2.31' }), { family: 'glibc', version: '2.31' });
  assert.equal(plan.libcFromReport('linux', {}), { family: 'musl' });
  assert.is(plan.libcFromReport('win32', {}), undefined);
  assert.is(plan.libcFromReport('linux', undefined), undefined);
});

Loader('this checkout: build/Release before prebuilds/ (see the README section "The addon loader")', () => {
  const found = addonSearchPaths().map((p) => p.replace(/\\/g, '/'));
  const built = found.findIndex((p) => p.endsWith('/build/Release/memport.node'));
  const prebuilt = found.findIndex((p) => p.endsWith(`/prebuilds/${process.platform}-${process.arch}/memport.node`));
  assert.ok(built >= 0 && prebuilt > built, found.join(', '));
});

/** Runs the real loader in a child with MEMPORT_ADDON set; returns the error it reports. */
function loadWith(addon) {
  const program = `import(${JSON.stringify(pathToFileURL(join(root, 'dist', 'index.js')).href)}).then((m) => {
    const r = m.SharedRegion.create(16);
    console.log(JSON.stringify(r.isErr() ? { code: r.error.code, message: r.error.message } : { ok: true }));
  });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', program], {
    env: { ...process.env, MEMPORT_ADDON: addon },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}

Loader('real loader: a MEMPORT_ADDON that does not exist gives Err(UNSUPPORTED), not a throw', () => {
  const missing = join(root, 'build', 'no-such-addon.node');
  const e = loadWith(missing);
  assert.is(e.code, 'UNSUPPORTED');
  assert.match(e.message, `${missing} [MEMPORT_ADDON]: not found`);
  assert.match(e.message, 'unset it to use the prebuilt addon');
});

Loader("real loader: another platform's binary is named as such, never handed to the OS loader", () => {
  const target = `${process.platform}-${process.arch}`;
  const foreign = [join(root, 'prebuilds', 'win32-x64', 'memport.node'), join(root, 'build', 'Release', 'memport.node')].find(
    (f) => existsSync(f) && plan.binaryTarget(readFileSync(f).subarray(0, 4096)) !== target,
  );
  assert.ok(foreign, 'npm test builds both a Linux and a Windows addon');
  const e = loadWith(foreign);
  assert.is(e.code, 'UNSUPPORTED');
  assert.match(e.message, /\[MEMPORT_ADDON\]: built for (linux|win32)-x64, not /);
});

Loader.run();
