// Shared by every test file. Tests import the built package (dist/), exactly
// as users do, so the same files run on Linux and under Wine.
import * as assert from 'uvu/assert';
import { openHandles, handlesLeaked } from '../dist/index.js';

export const isWindows = process.platform === 'win32';
export const isLinux = process.platform === 'linux';
/** Set by scripts/test.mjs when it runs the suite with Windows Node under Wine. */
export const underWine = isWindows && process.env.MEMPORT_UNDER_WINE === '1';
/** Checks that only real Windows enforces are skipped under Wine, and say so. */
export const realWindowsOnly = (name) => (underWine ? `${name} [real Windows only: skipped under Wine]` : name);

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Asserts `result` is Ok and returns its value. */
export function unwrap(result, what = 'result') {
  if (result.isErr()) assert.unreachable(`${what} failed: ${result.error.code}: ${result.error.message}`);
  return result.value;
}

/** Asserts `result` is an Err with this MemportError code; returns the error. */
export function expectErr(result, code, what = 'result') {
  assert.ok(result.isErr(), `${what} should fail with ${code}, but succeeded`);
  assert.is(result.error.name, 'MemportError', `${what}: error is a MemportError`);
  assert.is(result.error.code, code, `${what}: ${result.error.message}`);
  assert.type(result.error.message, 'string');
  return result.error;
}

export const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Lets finalizers of detached buffers run (they are scheduled, then run on the loop). */
export async function settle() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await tick();
  }
}

export function handleCensus() {
  return unwrap(openHandles(), 'openHandles()');
}

/** Asserts no OS handle was leaked since `before`. */
export function assertNoHandleLeak(before, what) {
  const after = handleCensus();
  const leaked = handlesLeaked(before, after);
  assert.is(leaked, 0, `${what}: ${leaked} handle(s) leaked (census ${before.value} -> ${after.value}, ${after.exact ? 'count' : 'slot probe'})`);
}

/** Number of memport mappings in this process (Linux only; memfd mappings are labelled). */
export async function memportMappings() {
  if (!isLinux) return 0;
  const { readFileSync } = await import('node:fs');
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/memfd:memport')).length;
}
