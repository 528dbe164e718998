/**
 * The addon loader: gathers this host (platform, arch, libc, paths), asks
 * planAddonSearch (src/native/addon-plan.ts, where the search order is
 * documented) where to look, and loads the first candidate that is built for
 * this platform and this memport version.
 *
 * Loading is lazy and never throws: a failure becomes an UNSUPPORTED
 * MemportError that lists what was tried and what to do next.
 */
import { constants as bufferConstants } from 'node:buffer';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { err, ok, type Result } from 'neverthrow';
import { memportError, type MemportError } from '../errors.js';
import { binaryTarget, libcFromReport, loadFailureMessage, planAddonSearch, type AddonCandidate, type AddonHost, type Libc } from './addon-plan.js';
import { EXPECTED_ABI_VERSION, type Binding } from './binding.js';

/**
 * This module's directory: from import.meta.url, or, when a bundler turned
 * this ESM code into CommonJS and left import.meta empty (esbuild does), the
 * main script's directory, which is then the bundle's; undefined if neither.
 * (Not __filename: tsup would shim it through import.meta.url, which throws
 * at load time in exactly that case.)
 */
function moduleDir(): string | undefined {
  try {
    return dirname(fileURLToPath(import.meta.url));
  } catch {
    const main = process.argv[1];
    return main ? dirname(resolve(main)) : undefined;
  }
}

/** Walks up from this module to memport's own package.json (works from src/ and dist/). */
function packageRoot(start: string | undefined): string | undefined {
  for (let dir = start; dir !== undefined; ) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'memport') return dir;
      } catch {
        // unreadable manifest: keep walking
      }
    }
    const parent = dirname(dir);
    dir = parent === dir ? undefined : parent;
  }
  return undefined;
}

/** glibc or musl, from Node's diagnostic report header (no child process, no file guessing). */
function detectLibc(): Libc {
  if (process.platform !== 'linux') return undefined;
  const report = process.report as (NodeJS.ProcessReport & { excludeNetwork?: boolean }) | undefined;
  if (typeof report?.getReport !== 'function') return undefined;
  // The network section is slow to gather and not needed. The flag exists
  // from Node 20.13 / 22.0 (a boolean-only setter): touch it only where it exists.
  const excluded = report.excludeNetwork;
  const hasFlag = typeof excluded === 'boolean';
  try {
    if (hasFlag) report.excludeNetwork = true;
    const header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
    return libcFromReport(process.platform, header);
  } catch {
    return undefined;
  } finally {
    if (hasFlag) report.excludeNetwork = excluded;
  }
}

function currentHost(): AddonHost {
  const here = moduleDir();
  const root = packageRoot(here);
  return {
    platform: process.platform,
    arch: process.arch,
    libc: detectLibc(),
    addonEnv: process.env.MEMPORT_ADDON || undefined,
    packageRoot: root,
    checkout: root !== undefined && existsSync(join(root, 'CMakeLists.txt')) && existsSync(join(root, 'native')),
    moduleDir: here,
    execPath: process.execPath,
  };
}

/**
 * The files memport tries for its native addon, in order (empty on an
 * operating system memport has no backend for). See the README's "The addon
 * loader" section.
 */
export function addonSearchPaths(): string[] {
  const plan = planAddonSearch(currentHost());
  return plan.kind === 'search' ? plan.candidates.map((c) => c.path) : [];
}

let cached: Result<Binding, MemportError> | undefined;

/** The native binding, loaded once; Err(UNSUPPORTED) explains why it is unavailable. */
export function loadNative(): Result<Binding, MemportError> {
  cached ??= load();
  return cached;
}

/** The first 4 KiB of a file (enough for an ELF or PE header). */
function readHeader(path: string): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buffer = new Uint8Array(4096);
    return buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0));
  } finally {
    closeSync(fd);
  }
}

/** Loads one candidate; returns the binding or why it was skipped. */
function tryCandidate(candidate: AddonCandidate, target: string): Binding | string {
  const where = `${candidate.path} [${candidate.origin}]`;
  if (!existsSync(candidate.path)) return `${where}: not found`;
  let builtFor: string | undefined;
  try {
    builtFor = binaryTarget(readHeader(candidate.path));
  } catch (e) {
    return `${where}: unreadable (${(e as Error).message})`;
  }
  // Loading a binary for another OS or CPU gives an obscure error at best
  // (and under Wine an ELF file must not be handed to LoadLibrary at all).
  if (builtFor !== undefined && builtFor !== target) return `${where}: built for ${builtFor}, not ${target}`;
  let binding: Binding;
  try {
    // A require made for the file itself: it works where the module has no
    // require of its own (ESM, single-executable applications, bundles), and
    // Node's module cache makes the ESM and CommonJS builds in one process
    // share one instance (the addon keeps per-environment instance data that
    // a second initialisation would replace).
    binding = createRequire(candidate.path)(candidate.path) as Binding;
  } catch (e) {
    return `${where}: failed to load: ${(e as Error).message.split('\n')[0]}`;
  }
  if (binding.abiVersion !== EXPECTED_ABI_VERSION) {
    return `${where}: built from another memport version (ABI ${String(binding.abiVersion)}, expected ${EXPECTED_ABI_VERSION}); rebuild it or unset MEMPORT_ADDON`;
  }
  return binding;
}

function load(): Result<Binding, MemportError> {
  const plan = planAddonSearch(currentHost());
  if (plan.kind === 'unsupported') return err(memportError('UNSUPPORTED', plan.message));
  const tried: string[] = [];
  for (const candidate of plan.candidates) {
    const outcome = tryCandidate(candidate, plan.target);
    if (typeof outcome === 'string') {
      tried.push(outcome);
      continue;
    }
    outcome.setMaxBufferLength(Math.min(bufferConstants.MAX_LENGTH, outcome.maxRegionSize));
    return ok(outcome);
  }
  return err(memportError('UNSUPPORTED', loadFailureMessage(plan, tried)));
}
