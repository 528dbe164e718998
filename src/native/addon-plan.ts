/**
 * Where memport looks for its native addon and what it tells the user when
 * nothing loads. Pure: the host (platform, arch, libc, paths, environment) is
 * passed in, so every decision is unit-tested without the system it is about
 * (test/loader.test.mjs); src/native/load.ts gathers the real host and loads.
 *
 * Search order (the first candidate that loads wins):
 *   1. `MEMPORT_ADDON`, if set — then nothing else: an explicit choice that
 *      fails must not be papered over by another binary;
 *   2. `<package>/build/Release/memport.node`, a build from source. Only a
 *      checkout has one (the package ships none and runs no install script),
 *      so in a checkout a fresh `npm run build` wins over a stale
 *      `prebuilds/` left by `npm run build:prebuilds`;
 *   3. `<package>/prebuilds/<platform>-<arch>/memport.node`, shipped for
 *      linux-x64 and linux-arm64 (glibc 2.28+) and win32-x64; not tried on
 *      musl or an older glibc, where it cannot load;
 *   4. for bundled applications: when memport's package directory cannot be
 *      found (its code was bundled), `memport.node` and
 *      `prebuilds/<platform>-<arch>/memport.node` next to the bundled file
 *      (load.ts: this module's file, or the main script when a bundler
 *      left no import.meta.url);
 *      and always the same two next to the executable
 *      (`dirname(process.execPath)`: pkg, single-executable applications),
 *      as node-gyp-build does.
 *
 * Other operating systems get an immediate error: there is no backend to build.
 */
import { posix, win32 } from 'node:path';

/** The operating systems memport has a backend for. */
export const SUPPORTED_PLATFORMS: readonly string[] = ['linux', 'win32'];
/** The `<platform>-<arch>` directories the npm package ships under `prebuilds/`. */
export const PREBUILT_TARGETS: readonly string[] = ['linux-x64', 'linux-arm64', 'win32-x64'];
/** The oldest glibc the Linux prebuilds load on (also Node.js's own floor). */
export const GLIBC_FLOOR = '2.28';

/** The C library a Linux process runs on; `undefined` elsewhere or when unknown. */
export type Libc = { readonly family: 'glibc'; readonly version?: string } | { readonly family: 'musl' } | undefined;

/** Everything the search depends on. */
export interface AddonHost {
  readonly platform: string;
  readonly arch: string;
  readonly libc: Libc;
  /** The value of `MEMPORT_ADDON` (empty counts as unset). */
  readonly addonEnv: string | undefined;
  /** memport's own package directory, when found (not found: its code was bundled). */
  readonly packageRoot: string | undefined;
  /** Whether packageRoot is a checkout of memport (it has the native sources). */
  readonly checkout: boolean;
  /** The directory of the module doing the loading (a bundle's file, when bundled). */
  readonly moduleDir: string | undefined;
  readonly execPath: string;
}

/** Where a candidate comes from, as shown in the error. */
export type AddonOrigin = 'MEMPORT_ADDON' | 'build from source' | 'prebuilt' | 'next to the bundle' | 'next to the executable';

/** One file to try. */
export interface AddonCandidate {
  readonly path: string;
  readonly origin: AddonOrigin;
}

/** What to do: try these files in order, or give up with a message at once. */
export type AddonPlan =
  | { readonly kind: 'unsupported'; readonly message: string }
  | { readonly kind: 'search'; readonly target: string; readonly candidates: readonly AddonCandidate[]; readonly advice: readonly string[] };

const OS_NAMES: Readonly<Record<string, string>> = {
  darwin: 'macOS',
  freebsd: 'FreeBSD',
  openbsd: 'OpenBSD',
  netbsd: 'NetBSD',
  sunos: 'Solaris/illumos',
  aix: 'AIX',
  android: 'Android',
  cygwin: 'Cygwin',
};

/** Compares dotted versions numerically: negative when a < b. */
function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The one source-build instruction every message points to. */
export function buildFromSourceHint(target: string): string {
  return (
    `Build the addon from source in a checkout of memport (needs cmake and a C++17 compiler): ` +
    '`npm ci && npm run build:native`, then set MEMPORT_ADDON to <checkout>/build/Release/memport.node ' +
    `(or copy that file next to your executable as memport.node, or to prebuilds/${target}/memport.node there).`
  );
}

/** Decides the search for one host. */
export function planAddonSearch(host: AddonHost): AddonPlan {
  const { platform, arch } = host;
  const target = `${platform}-${arch}`;
  if (!SUPPORTED_PLATFORMS.includes(platform)) {
    const name = OS_NAMES[platform] ? `${OS_NAMES[platform]} (${platform})` : platform;
    return {
      kind: 'unsupported',
      message:
        `memport has no backend for ${name} yet: it shares memory through Linux memfd and Windows sections, ` +
        `and runs on Linux (x64, arm64; glibc ${GLIBC_FLOOR}+) and Windows (x64). ` +
        'There is nothing to install or build that makes it work here; run the code that uses memport on one of those systems.',
    };
  }
  const path = platform === 'win32' ? win32 : posix;
  if (host.addonEnv) {
    return {
      kind: 'search',
      target,
      candidates: [{ path: host.addonEnv, origin: 'MEMPORT_ADDON' }],
      advice: [`MEMPORT_ADDON is set, so only that file was tried: point it at a memport.node built for ${target}, or unset it to use the prebuilt addon.`],
    };
  }

  const musl = platform === 'linux' && host.libc?.family === 'musl';
  const glibcVersion = host.libc?.family === 'glibc' ? host.libc.version : undefined;
  const oldGlibc = platform === 'linux' && glibcVersion !== undefined && compareVersions(glibcVersion, GLIBC_FLOOR) < 0;
  const shipped = PREBUILT_TARGETS.includes(target);
  const candidates: AddonCandidate[] = [];
  const add = (file: string, origin: AddonOrigin): void => {
    if (!candidates.some((c) => c.path === file)) candidates.push({ path: file, origin });
  };
  const nextTo = (dir: string, origin: AddonOrigin): void => {
    add(path.join(dir, 'memport.node'), origin);
    add(path.join(dir, 'prebuilds', target, 'memport.node'), origin);
  };
  if (host.packageRoot !== undefined) {
    add(path.join(host.packageRoot, 'build', 'Release', 'memport.node'), 'build from source');
    if (shipped && !musl && !oldGlibc) add(path.join(host.packageRoot, 'prebuilds', target, 'memport.node'), 'prebuilt');
  } else if (host.moduleDir !== undefined) {
    nextTo(host.moduleDir, 'next to the bundle');
  }
  nextTo(path.dirname(host.execPath), 'next to the executable');

  const advice: string[] = [];
  if (musl) {
    advice.push(`memport has no prebuilt addon for musl libc (Alpine and similar) yet; the prebuilt ${target} addon needs glibc ${GLIBC_FLOOR}+.`);
    advice.push(buildFromSourceHint(target));
  } else if (oldGlibc) {
    advice.push(`This system's glibc ${glibcVersion} is older than ${GLIBC_FLOOR}, the oldest the prebuilt addon (and Node.js itself) supports.`);
    advice.push(buildFromSourceHint(target));
  } else if (!shipped) {
    advice.push(`memport has no prebuilt addon for ${target} (it ships ${PREBUILT_TARGETS.join(', ')}).`);
    advice.push(buildFromSourceHint(target));
  } else {
    advice.push(
      `The prebuilt addon prebuilds/${target}/memport.node ships inside the memport package: if it is missing, reinstall memport ` +
        '(`npm install memport`; copying node_modules between operating systems or CPUs does not work).',
    );
    advice.push(
      `A bundled application (esbuild, pkg, a single-executable application) must ship that file itself: put it next to the bundled ` +
        `script or the executable as memport.node or prebuilds/${target}/memport.node, or set MEMPORT_ADDON to its path.`,
    );
  }
  if (host.checkout) advice.push('In this checkout of memport, `npm run build` builds build/Release/memport.node for this machine.');
  return { kind: 'search', target, candidates, advice };
}

/**
 * The `<platform>-<arch>` a native module file was built for, read from the
 * first bytes of the file (ELF or PE header; a 4 KiB prefix is enough), or
 * undefined when the format is not recognised. Lets the loader say "built for
 * linux-x64" instead of a loader error about an invalid image.
 */
export function binaryTarget(header: Uint8Array): string | undefined {
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (header.length >= 20 && view.getUint32(0) === 0x7f454c46) {
    const littleEndian = header[5] === 1;
    const machine = view.getUint16(18, littleEndian);
    const arch = ({ 0x3e: 'x64', 0xb7: 'arm64', 0x03: 'ia32', 0x28: 'arm', 0xf3: 'riscv64', 0x08: 'mips', 0x15: 'ppc64', 0x16: 's390x' } as Record<number, string>)[machine];
    return arch ? `linux-${arch}` : undefined;
  }
  if (header.length >= 0x40 && header[0] === 0x4d && header[1] === 0x5a) {
    const pe = view.getUint32(0x3c, true);
    if (pe + 6 > header.length || view.getUint32(pe) !== 0x50450000) return undefined;
    const arch = ({ 0x8664: 'x64', 0xaa64: 'arm64', 0x014c: 'ia32' } as Record<number, string>)[view.getUint16(pe + 4, true)];
    return arch ? `win32-${arch}` : undefined;
  }
  if (header.length >= 4 && [0xfeedfacf, 0xcffaedfe, 0xcafebabe, 0xbebafeca].includes(view.getUint32(0))) return 'darwin';
  return undefined;
}

/** The libc a Node process runs on, from `process.report.getReport().header`. */
export function libcFromReport(platform: string, header: { glibcVersionRuntime?: string } | undefined): Libc {
  if (platform !== 'linux' || header === undefined) return undefined;
  // Node fills glibcVersionRuntime only when it runs on glibc; on Linux that leaves musl.
  return typeof header.glibcVersionRuntime === 'string' ? { family: 'glibc', version: header.glibcVersionRuntime } : { family: 'musl' };
}

/** The error message when no candidate loaded; `tried` has one line per candidate. */
export function loadFailureMessage(plan: Extract<AddonPlan, { kind: 'search' }>, tried: readonly string[]): string {
  return [
    `memport's native addon could not be loaded for ${plan.target}. Tried, in order:`,
    ...tried.map((t) => `  - ${t}`),
    'What to do:',
    ...plan.advice.map((a) => `  - ${a}`),
  ].join('\n');
}
