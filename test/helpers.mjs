// Shared by every test file. Tests import the built package (dist/), exactly
// as users do, so the same files run on Linux and under Wine.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { openHandles, handlesLeaked } from '../dist/index.js';

export const isWindows = process.platform === 'win32';
export const isLinux = process.platform === 'linux';
/** Set by scripts/test.mjs when it runs the suite with Windows Node under Wine. */
export const underWine = isWindows && process.env.MEMPORT_UNDER_WINE === '1';
/** Checks that only real Windows enforces are skipped under Wine, and say so. */
export const realWindowsOnly = (name) => (underWine ? `${name} [real Windows only: skipped under Wine]` : name);

/** The raw-protocol attacker (test/adversarial/evil_peer.c); npm test builds it first. */
export const EVIL_PEER = join(dirname(fileURLToPath(import.meta.url)), '..', 'build-adversarial', isWindows ? 'evil_peer.exe' : 'evil_peer');

/**
 * child_process.spawn, tried again when the OS refuses to start a process for
 * a moment (Wine under heavy load answers CreateProcess with "spawn UNKNOWN").
 */
export function spawnRetrying(command, args, options) {
  for (let attempt = 1; ; attempt++) {
    try {
      return spawn(command, args, options);
    } catch (e) {
      if (attempt >= 5 || !['UNKNOWN', 'EAGAIN', 'EMFILE'].includes(e.code)) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200 * attempt);
    }
  }
}

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

/** Lets closes that complete on I/O threads (Windows process handles, cancelled reads) land. */
export async function settleHandles() {
  await settle();
  await new Promise((resolve) => setTimeout(resolve, 50));
  await settle();
}

export function handleCensus() {
  return unwrap(openHandles(), 'openHandles()');
}

/**
 * Asserts no OS handle was leaked since `before`. Under Wine, pass the handle
 * table taken before `before`: a probe that moved is then judged by what moved.
 */
export function assertNoHandleLeak(before, what, tableBefore) {
  const after = handleCensus();
  const leaked = handlesLeaked(before, after);
  if (leaked > 0 && tableBefore) return explainWineDrift(before, what, tableBefore, { leak: true });
  assert.is(leaked, 0, `${what}: ${leaked} handle(s) leaked (census ${before.value} -> ${after.value}, ${after.exact ? 'count' : 'slot probe'})`);
}

/** Number of memport mappings in this process (Linux only; memfd mappings are labelled). */
export async function memportMappings() {
  if (!isLinux) return 0;
  const { readFileSync } = await import('node:fs');
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/memfd:memport')).length;
}

/** The census must not have moved at all: nothing leaked, and nothing the process held was closed. */
export function assertCensusUnchanged(before, what, tableBefore) {
  if (tableBefore && handleCensus().value !== before.value) return explainWineDrift(before, what, tableBefore);
  assertNoHandleLeak(before, what);
  const after = handleCensus();
  assert.is(after.value, before.value, `${what}: census ${before.value} -> ${after.value} (${after.exact ? 'count' : 'slot probe'}): a handle this process held was closed`);
}

// Under Wine the census is a slot probe (the lowest free handle value), and
// Wine itself allocates a few objects lazily (critical-section semaphores on
// first contention, events) at moments no warm-up can pin down. When the probe
// moves, this process's handle table, listed by type, says what moved: any
// change among the objects memport makes (pipes and files, processes,
// sections, completion ports, threads) is a failure; a drift made only of
// Wine's own object types is reported and let through.
const MEMPORT_OBJECT_TYPES = new Set(['File', 'Process', 'Section', 'IoCompletion', 'Thread']);
// Pipes are listed with their name: libuv's stdio pipes to child processes
// (uv\<address>-<pid>), which Node closes some time after the child exits,
// are not memport's (memport's are memport-<sid>-<channel>).
const LIBUV_STDIO_PIPE = / File pipe-client=\d+,uv\\/;

/** This process's handle table, value → type (Windows; listed by the evil peer). */
export function handleTable() {
  const r = spawnSync(EVIL_PEER, ['handle-table', '-', String(process.pid)], { encoding: 'utf8' });
  assert.match(r.stdout ?? '', /^TABLE done\r?$/m, `handle-table failed: ${r.stdout}${r.stderr}`);
  return new Map([...r.stdout.matchAll(/^H (0x[0-9a-f]+) (\S+)(?: (\S+))?\r?$/gm)].map((m) => [m[1], `${m[2]}${m[3] ? ` ${m[3]}` : ''}`]));
}

/**
 * What changed between two handle tables: every change, the changes among the
 * objects memport makes (`ours`), and the kinds of those objects there are now
 * more of (`grown`: "<kind> <before> -> <after>"; a connection replaced by a
 * new one to the same channel is a change but no growth).
 */
export function handleTableChanges(tableBefore, tableAfter) {
  const changes = [];
  for (const [value, kind] of tableBefore) if (tableAfter.get(value) !== kind) changes.push(`${value} ${kind} -> ${tableAfter.get(value) ?? 'closed'}`);
  for (const [value, kind] of tableAfter) if (!tableBefore.has(value)) changes.push(`${value} new ${kind}`);
  const isOurs = (text) => !LIBUV_STDIO_PIPE.test(text) && [...MEMPORT_OBJECT_TYPES].some((t) => text.includes(` ${t}`));
  const ours = changes.filter(isOurs);
  const count = (table) => {
    const counts = new Map();
    for (const kind of table.values()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
    return counts;
  };
  const [was, now] = [count(tableBefore), count(tableAfter)];
  const grown = [...now].filter(([kind, n]) => n > (was.get(kind) ?? 0) && isOurs(` ${kind}`)).map(([kind, n]) => `${kind} ${was.get(kind) ?? 0} -> ${n}`);
  return { changes, ours, grown };
}

/**
 * A Wine slot probe that moved from `before` to `after` (in this process or a
 * peer's) passes only if no object of a kind memport makes changed between
 * the two handle tables.
 */
export function assertWineDriftNotOurs(before, after, tableBefore, tableAfter, what, { leak = false } = {}) {
  const { changes, ours, grown } = handleTableChanges(tableBefore, tableAfter);
  if (leak) {
    // A leak check asks whether memport holds more objects than before: a
    // listener's pipe instance replaced by a fresh one (it tops its backlog
    // up when a client takes one) is a change, not a leak.
    assert.equal(grown, [], `${what}: census ${before.value} -> ${after.value} (slot probe), and memport holds more of: ${grown.join('; ')} (changes: ${ours.join('; ')})`);
  } else {
    assert.equal(ours, [], `${what}: census ${before.value} -> ${after.value} (slot probe), and among the objects memport makes: ${ours.join('; ')}`);
  }
  console.log(`\n    (${what}: Wine slot probe ${before.value} -> ${after.value}, ${leak ? 'no growth among' : 'none of it'} memport's objects: ${changes.join('; ') || 'no change in the table'})`);
}

function explainWineDrift(before, what, tableBefore, options) {
  assertWineDriftNotOurs(before, handleCensus(), tableBefore, handleTable(), what, options);
}

/**
 * memfds of memport memory this process holds (Linux); undefined on Windows,
 * where Wine's handle table (handleTable) does not list sections, so such
 * counts are checked on Linux only.
 */
export function memoryHandles() {
  if (isLinux) {
    return readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:memport');
      } catch {
        return false; // the directory's own fd, gone by now
      }
    }).length;
  }
  return undefined;
}

/** Asserts this many memport memfds are open (Linux; see memoryHandles). */
export function memoryHandlesAre(expected, what) {
  const now = memoryHandles();
  if (now !== undefined) assert.is(now, expected, what);
}
