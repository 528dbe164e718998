// The Debian bullseye root the Linux prebuilds are compiled in (glibc 2.31,
// GCC 10). Built once with debootstrap from Debian's archive into .cache/ and
// reused; scripts/build-prebuilds.mjs compiles in it with chroot, and
// scripts/test-install.mjs borrows its arm64 C libraries to run the arm64 Node
// under qemu-user. Why bullseye: what it links against needs at most
// GLIBC_2.28, the floor of Node's own Linux binaries, while Debian 12's
// compilers pull in GLIBC_2.33+ (see /work/shared/WINDOWS-ON-LINUX.md).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hasTool, root } from './env.mjs';

export const bullseyeRoot = join(root, '.cache', 'bullseye');
/** The arm64 C runtime inside the root (Debian's *-arm64-cross packages). */
export const arm64Sysroot = join(bullseyeRoot, 'usr', 'aarch64-linux-gnu');
const PACKAGES = ['g++', 'cmake', 'make', 'binutils', 'g++-aarch64-linux-gnu'];
const MIRROR = process.env.MEMPORT_DEBIAN_MIRROR || 'http://deb.debian.org/debian';
const marker = join(bullseyeRoot, '.memport-ready');

/** Makes the root unless a complete one with the same packages is there. */
export function ensureBullseyeRoot(log = console.log) {
  if (existsSync(marker) && readFileSync(marker, 'utf8').trim() === PACKAGES.join(',')) return bullseyeRoot;
  if (process.platform !== 'linux') throw new Error('the Linux prebuilds are built on Linux (Debian bullseye root via debootstrap)');
  if (process.getuid?.() !== 0) throw new Error('debootstrap and chroot need root: run `npm run build:prebuilds` as root (CI does)');
  if (!hasTool('debootstrap')) throw new Error("'debootstrap' is required. Install it with: apt-get install -y debootstrap");
  // A root without the marker is a half-made one (interrupted run): start over.
  if (existsSync(bullseyeRoot)) rmSync(bullseyeRoot, { recursive: true, force: true });
  mkdirSync(bullseyeRoot, { recursive: true });
  log(`  debootstrap bullseye (${PACKAGES.join(', ')}) from ${MIRROR} into ${bullseyeRoot}`);
  log('  first run only: about 2 minutes and 1.8 GB; progress follows');
  const start = Date.now();
  const r = spawnSync('debootstrap', ['--variant=minbase', `--include=${PACKAGES.join(',')}`, 'bullseye', bullseyeRoot, MIRROR], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`debootstrap failed (exit ${r.status ?? r.signal}); see its output above (network to ${MIRROR}?)`);
  writeFileSync(marker, PACKAGES.join(',') + '\n');
  log(`  bullseye root ready in ${((Date.now() - start) / 1000).toFixed(0)} s`);
  return bullseyeRoot;
}

/** Runs a shell command inside the root with a clean environment; throws on failure. */
export function inBullseye(script, what) {
  const r = spawnSync(
    'chroot',
    [bullseyeRoot, '/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'LC_ALL=C', '/bin/sh', '-ec', script],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (r.status !== 0) throw new Error(`${what} failed in the bullseye root (exit ${r.status ?? r.signal}); see above`);
}
