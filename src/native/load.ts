/**
 * The addon loader: one documented search order, one helpful failure.
 *
 * Search order (first hit wins):
 *   1. the file named by the MEMPORT_ADDON environment variable, if set;
 *   2. <package>/prebuilds/<platform>-<arch>/memport.node
 *      (e.g. prebuilds/win32-x64/memport.node, cross-built by `npm run build:win`);
 *   3. <package>/build/Release/memport.node (built by `npm run build` / cmake-js).
 *
 * Loading is lazy and never throws: a failure becomes an UNSUPPORTED
 * MemportError that lists what was tried and how to build the addon.
 */
import { constants as bufferConstants } from 'node:buffer';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { err, ok, type Result } from 'neverthrow';
import { memportError, type MemportError } from '../errors.js';
import { EXPECTED_ABI_VERSION, type Binding } from './binding.js';

const moduleUrl = import.meta.url;

/** Walks up from this module to memport's package.json (works from src/ and dist/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if (JSON.parse(readFileSync(manifest, 'utf8')).name === 'memport') return dir;
      } catch {
        // unreadable manifest: keep walking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return dirname(fileURLToPath(moduleUrl));
    dir = parent;
  }
}

/** The candidate paths, in search order. */
export function addonSearchPaths(): string[] {
  const root = packageRoot();
  const paths: string[] = [];
  if (process.env.MEMPORT_ADDON) paths.push(process.env.MEMPORT_ADDON);
  paths.push(join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'memport.node'));
  paths.push(join(root, 'build', 'Release', 'memport.node'));
  return paths;
}

let cached: Result<Binding, MemportError> | undefined;

export function loadNative(): Result<Binding, MemportError> {
  cached ??= load();
  return cached;
}

function load(): Result<Binding, MemportError> {
  const require = createRequire(moduleUrl);
  const tried: string[] = [];
  for (const path of addonSearchPaths()) {
    if (!existsSync(path)) {
      tried.push(`${path} (not found)`);
      continue;
    }
    let binding: Binding;
    try {
      binding = require(path) as Binding;
    } catch (e) {
      tried.push(`${path} (failed to load: ${(e as Error).message.split('\n')[0]})`);
      continue;
    }
    if (binding.abiVersion !== EXPECTED_ABI_VERSION) {
      tried.push(`${path} (built from another memport version: ABI ${binding.abiVersion}, expected ${EXPECTED_ABI_VERSION})`);
      continue;
    }
    binding.setMaxBufferLength(Math.min(bufferConstants.MAX_LENGTH, binding.maxRegionSize));
    return ok(binding);
  }
  return err(
    memportError(
      'UNSUPPORTED',
      [
        `memport's native addon could not be loaded for ${process.platform}-${process.arch}. Tried, in order:`,
        ...tried.map((t) => `  - ${t}`),
        'Possible solutions:',
        '  - Build it from source: install cmake and a C++17 compiler, then run `npm rebuild memport`',
        '    (npm 11 skips dependency install scripts unless you approve them, e.g. with `npm approve-builds`).',
        '  - In a checkout of memport: `npm run build` (this platform) or `npm run build:win` (Windows x64 via mingw-w64).',
        '  - Point MEMPORT_ADDON at a memport.node built for this platform.',
      ].join('\n'),
    ),
  );
}
