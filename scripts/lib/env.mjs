// Shared helpers for the build and test scripts: where the repo is, and a
// clear failure when a required tool is missing.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function hasTool(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

export function requireTool(name, installHint) {
  if (!hasTool(name)) {
    console.error(`memport: '${name}' is required but not installed. Install it with: ${installHint}`);
    process.exit(1);
  }
}
