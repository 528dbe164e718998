// npm run soak — memport's soak test. Not part of `npm test`: it runs for
// minutes and kills processes on purpose.
//
//   node scripts/soak.mjs [--transfers N] [--workers N] [--seconds N] [--seed N]
//                         [--no-chaos] [--rss-slack MiB] [--json] [--wine]
//
// This process is the hub. It listens on a fresh channel name and keeps N
// worker processes (test/fixtures/soak-peer.mjs) busy: it sends them regions
// of random sizes (1 B to 4 MiB, now and then 64 MiB; writable ones and
// read-only twins, one to 64 per message, with JSON data), they check every
// page against the pattern the hub wrote, write their answer into the
// writable ones and reply; they also make regions and send them the other
// way. Mixed in: bursts of pipelined sends, receives and sends that time out
// or are aborted on purpose, connections closed by either side and reopened.
//
// A flooding peer runs beside the workers all along: it sends 512 messages at
// once (up to 16 regions and 120 KiB of data each) to a hub that never
// receives them, drops the connection and does it again. The hub's limits
// must refuse most of them (OUT_OF_MEMORY) while the workers are served.
//
// Chaos: every few hundred ms a random worker is SIGKILLed — just before,
// during or just after a send to it, while it is sending, at any moment, or
// once messages it sent sit unreceived in the hub's inbox — and a replacement
// is started; now and then one is stopped cleanly instead. Every error the hub
// sees is counted by code and must be explained by what the soak itself did
// (a kill, a close, a timeout it asked for); anything else fails the run, and
// so does a kill of a connected worker that no typed error ever reported.
//
// Before the measured run a warm-up does the same work, so that what the
// runtime allocates once is in the baseline. At the end every worker is
// stopped cleanly (each reports its own handle census against the baseline it
// took after its own warm-up), everything in the hub is closed and collected,
// and the soak checks: the hub's handle census is back to the baseline, no
// memport mapping is left (Linux: /proc/self/maps), closed connections hold
// no region (the ones whose worker died with unreceived messages are kept to
// the end and asked for them), the hub's RSS came back (start/peak/end),
// every process exit was a kill we made or a clean stop, and no error was
// unexplained. Exit 0 only if all hold. `--json` also writes the summary to
// build-soak/soak.json (soak-win32.json on Windows).
//
// `--wine` (on Linux) runs the same soak with the real Windows Node.js under
// Wine (scripts/lib/wine.mjs); its output appears when it ends, because Wine's
// Node needs stdout to be a file. On Windows the defaults are smaller (3,000
// transfers, 3 workers, a kill every 1.5-4 s): each Node start under Wine
// takes about a second.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const PEER = join(root, 'test', 'fixtures', 'soak-peer.mjs');
const argv = process.argv.slice(2);

const USAGE = `usage: node scripts/soak.mjs [options]        (npm run soak -- [options])
  --transfers N    stop after N transfers (default 100000; 3000 on Windows)
  --seconds N      stop after N seconds; given alone, time is the only stop condition
  --workers N      worker processes (default 6; 3 on Windows)
  --seed N         seed of every random choice (default: random, printed; timing still varies)
  --no-chaos       no SIGKILLs, restarts or clean retirements mid-run
  --rss-slack MiB  growth the hub's memory may show over the second half of the run,
                   on top of 4 MiB per 10,000 transfers (default 16)
  --json           also write the summary to build-soak/soak.json (soak-win32.json on Windows)
  --wine           (Linux) run the soak with the Windows Node.js under Wine`;

// ---------------------------------------------------------------------------
// Options

function option(name) {
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const value = argv[i + 1];
  if (value === undefined || value.startsWith('--')) usageError(`--${name} needs a value`);
  return value;
}
function numberOption(name, { min = 0, integer = true } = {}) {
  const raw = option(name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) usageError(`--${name} must be a ${integer ? 'whole ' : ''}number ≥ ${min}, got ${raw}`);
  return n;
}
function usageError(message) {
  console.error(`soak: ${message}\n${USAGE}`);
  process.exit(2);
}

if (argv.includes('--help') || argv.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
const known = new Set(['--transfers', '--workers', '--seconds', '--seed', '--no-chaos', '--rss-slack', '--json', '--wine']);
for (const [i, a] of argv.entries()) {
  if (!a.startsWith('--')) {
    if (i === 0 || !['--transfers', '--workers', '--seconds', '--seed', '--rss-slack'].includes(argv[i - 1])) usageError(`unexpected argument ${a}`);
  } else if (!known.has(a.split('=')[0])) usageError(`unknown option ${a}`);
}

const isWindows = process.platform === 'win32';
const isLinux = process.platform === 'linux';
const underWine = isWindows && process.env.MEMPORT_UNDER_WINE === '1';
const MiB = 1024 * 1024;

const transfersOption = numberOption('transfers', { min: 1 });
const secondsOption = numberOption('seconds', { min: 1, integer: false });
const config = {
  target: transfersOption ?? (secondsOption !== undefined ? Infinity : isWindows ? 3_000 : 100_000),
  seconds: secondsOption ?? Infinity,
  workers: numberOption('workers', { min: 1 }) ?? (isWindows ? 3 : 6),
  seed: numberOption('seed') ?? randomBytes(4).readUInt32LE(0),
  chaos: !argv.includes('--no-chaos'),
  rssSlack: (numberOption('rss-slack', { integer: false }) ?? 16) * MiB,
  rssPerTenThousand: 4 * MiB,
  json: argv.includes('--json'),
  // Time scales: Node starts in ~50 ms here and in ~1 s under Wine.
  killEveryMs: isWindows ? [1500, 4000] : [150, 600],
  planExpiryMs: isWindows ? 4_000 : 400, // a kill armed for a moment that does not come happens anyway after this
  safetyMs: isWindows ? 180_000 : 60_000, // any wait the soak did not mean to time out
  connectMs: isWindows ? 180_000 : 30_000,
  stallMs: isWindows ? 300_000 : 90_000,
  statusEveryMs: isWindows ? 15_000 : 5_000,
  pauseMs: isWindows ? 1_500 : 250, // a worker reading nothing, for send timeouts
  delayMs: isWindows ? 1_500 : 150, // a worker answering late, for receive timeouts
  shortMs: isWindows ? 100 : 25, // the timeouts the soak means to hit
  hugeEvery: isWindows ? 300 : 1_000, // one region in this many is 64 MiB
  workerWarmupOps: 20, // a worker takes its census baseline after this many operations
  postBaselineOps: 10, // and does at least this many more before a clean stop
};
// The warm-up must bring the hub's memory (heap, allocator arenas) to its steady state, or
// the RSS check compares the end of the run with a start that was still climbing.
config.warmupTarget = isWindows ? 300 : 2_000;
config.warmupSeconds = isWindows ? 300 : 30;

// ---------------------------------------------------------------------------
// --wine: the same soak, run by the Windows Node.js under Wine.

if (argv.includes('--wine')) {
  if (!isLinux) usageError('--wine is for Linux hosts');
  const { ensurePrefix, ensureWindowsNode, runWindowsNode, wineCommand } = await import('./lib/wine.mjs');
  if (!wineCommand()) {
    console.error('soak: Wine is not installed (npm run setup, or apt-get install -y wine64)');
    process.exit(2);
  }
  if (!existsSync(join(root, 'prebuilds', 'win32-x64', 'memport.node'))) {
    console.log('Building the Windows addon (npm run build:win)...');
    const r = spawnSync('npm', ['run', 'build:win', '--silent'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) process.exit(1);
  }
  // Under Wine the census is a slot probe; the evil peer lists handle tables
  // so that a probe that moved can be judged by what moved.
  if (spawnSync(process.execPath, [join(root, 'test', 'adversarial', 'build.mjs')], { cwd: root, stdio: 'inherit' }).status !== 0) process.exit(1);
  ensureWindowsNode();
  ensurePrefix();
  process.env.MEMPORT_UNDER_WINE = '1';
  const forwarded = argv.filter((a) => a !== '--wine');
  console.log(`Running the soak with the Windows Node.js under Wine: node.exe --expose-gc scripts\\soak.mjs ${forwarded.join(' ')}`);
  console.log('(Wine\'s Node needs stdout to be a file, so its output appears when it ends.)');
  const budgetMs = Number.isFinite(config.seconds) ? config.seconds * 1000 + 20 * 60_000 : 90 * 60_000;
  const r = runWindowsNode(['--expose-gc', 'scripts\\soak.mjs', ...forwarded], { timeoutMs: budgetMs });
  process.stdout.write(r.output);
  if (r.status !== 0) console.error(`soak under Wine: exit ${r.status ?? r.signal}${r.signal === 'SIGTERM' ? ' (ran past its time budget)' : ''}`);
  process.exit(r.status ?? 1);
}

// The end-of-run checks collect garbage; restart with --expose-gc if we lack it.
if (typeof globalThis.gc !== 'function') {
  process.on('SIGINT', () => {}); // the child gets it too and stops cleanly
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...argv], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

if (!existsSync(join(root, 'dist', 'index.js'))) {
  console.error('soak: memport is not built: run `npm run build` first (the soak imports dist/).');
  process.exit(2);
}
const { SharedRegion, listen, openHandles, handlesLeaked } = await import('../dist/index.js');
const { fillPattern, firstBadPage, memportMappings, payloadSum, settle, uint32Stream, PAGE, REPLY_SALT, handleTableNow } = await import('../test/fixtures/soak-peer.mjs');
const { handleTableChanges } = await import('../test/helpers.mjs');

/**
 * A census that did not come back, judged: exact counts (Linux) must; under
 * Wine a moved slot probe passes if, between the two handle tables, there is
 * no kind of object memport makes that there are more of (a worker that
 * reconnected has a new connection in place of the old one).
 * Returns { ok, changes, grown }.
 */
function judgeCensus(leaked, tableBefore, tableAfter) {
  if (leaked === 0) return { ok: true, changes: [], grown: [] };
  if (!tableBefore || !tableAfter) return { ok: false, changes: [], grown: [] };
  const { changes, grown } = handleTableChanges(new Map(tableBefore), new Map(tableAfter));
  return { ok: grown.length === 0, changes, grown };
}

// ---------------------------------------------------------------------------
// Small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** True if `promise` settles within `ms`; leaves no timer behind. */
async function within(promise, ms) {
  let timer;
  const late = new Promise((r) => (timer = setTimeout(() => r(false), ms)));
  const result = await Promise.race([promise.then(() => true), late]);
  clearTimeout(timer);
  return result;
}
const now = () => performance.now();
const fmt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '∞');
const mib = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;
const bump = (table, key, by = 1) => (table[key] = (table[key] ?? 0) + by);
const codes = (table) =>
  Object.entries(table)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(', ') || 'none';

/** Uniform floats in [0, 1) from a seed. */
function makeRng(...parts) {
  let seed = config.seed >>> 0;
  for (const p of parts) seed = uint32Stream((seed ^ Math.imul(p >>> 0, 0x9e3779b1)) >>> 0)();
  const next = uint32Stream(seed);
  const rng = () => next() / 2 ** 32;
  rng.int = (lo, hi) => lo + Math.floor(rng() * (hi - lo + 1));
  rng.pick = (list) => list[Math.floor(rng() * list.length)];
  rng.u32 = () => next();
  return rng;
}

function census() {
  const c = openHandles();
  return c.isOk() ? c.value : { value: -1, exact: false };
}
function rss() {
  return process.memoryUsage().rss;
}
/** Where the hub's memory is: V8 heap, external/array buffers, and on Linux anonymous vs shared resident pages. */
function memoryBreakdown() {
  const m = process.memoryUsage();
  const out = { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
  if (isLinux) {
    const status = readFileSync('/proc/self/status', 'utf8');
    for (const key of ['RssAnon', 'RssFile', 'RssShmem']) {
      const found = new RegExp(`${key}:\\s+(\\d+) kB`).exec(status);
      if (found) out[key] = Number(found[1]) * 1024;
    }
  }
  return out;
}
const describeMemory = (m) =>
  `heap ${mib(m.heapUsed)} of ${mib(m.heapTotal)}, external ${mib(m.external)}` +
  (m.RssAnon !== undefined ? `, anon ${mib(m.RssAnon)}, file ${mib(m.RssFile)}, shmem ${mib(m.RssShmem)}` : '');
async function settleHub() {
  await settle();
  await sleep(100);
  await settle();
}

// ---------------------------------------------------------------------------
// What a run records

function newStats() {
  return {
    transfers: 0, // messages carrying regions that arrived (hub→worker: acknowledged; worker→hub: received)
    transfersOut: 0,
    transfersIn: 0,
    messages: 0, // every message acknowledged or received, with or without regions
    regionsOut: 0,
    regionsIn: 0,
    bytesOut: 0,
    bytesIn: 0,
    huge: 0, // 64 MiB regions moved
    ops: {},
    started: 0,
    restarts: 0,
    kills: 0,
    killsByMode: {},
    killsWhileConnected: 0, // kills of a worker with an open connection to the hub
    killsObserved: 0, // of those, kills the hub then saw as a typed error on that connection
    killsPreempted: 0, // or whose connection the hub itself closed first (the hub-close operation)
    retired: 0,
    errors: {}, // code -> count, every error the hub saw
    explained: {}, // "CODE (reason)" -> count
    unexpected: [], // { code, what, worker }
    unexpectedCount: 0,
    timeoutsNotHit: 0, // intended timeouts that did not fire (the other side was quick): harmless
    strays: 0,
    exits: { killed: 0, stopped: 0, crashed: [] },
    reports: [],
    lastProgress: now(),
  };
}

/** Something the soak did not cause: fails the run. */
function recordUnexpected(phase, worker, code, what) {
  const s = phase.stats;
  s.unexpectedCount++;
  if (s.unexpected.length < 50) s.unexpected.push({ code, what: String(what).slice(0, 600), worker: worker?.label ?? null });
  if (s.unexpectedCount <= 10) console.log(`  ! unexpected ${code} ${worker ? `[${worker.label} pid ${worker.pid}] ` : ''}${String(what).slice(0, 300)}`);
}

/** Counts an error and decides whether the soak explains it. Returns the reason, or undefined. */
function noteError(w, error, where, intended) {
  const s = w.phase.stats;
  bump(s.errors, error.code);
  let reason;
  if (intended?.codes.includes(error.code)) reason = intended.reason;
  else if (w.killedAt !== undefined && error.code === 'PEER_CLOSED') reason = 'worker killed';
  else if (w.expectLoss === 'reconnect' && error.code === 'PEER_CLOSED') reason = 'worker reconnects';
  else if (w.expectLoss === 'hub-close' && error.code === 'CLOSED') reason = 'hub closed the connection';
  if (reason) {
    bump(s.explained, `${error.code} (${reason})`);
    if (reason === 'worker killed' && !w.killObserved) {
      w.killObserved = true;
      s.killsObserved++;
    }
  } else {
    recordUnexpected(w.phase, w, error.code, `${where}: ${error.message}`);
  }
  return reason;
}

// ---------------------------------------------------------------------------
// Workers

const everyChild = new Set();
function killAllChildren() {
  for (const child of everyChild) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
process.on('exit', killAllChildren);

function startWorker(phase, slot, gen) {
  const s = phase.stats;
  const label = `${phase.label}:w${slot}.${gen}`;
  const child = spawn(process.execPath, ['--expose-gc', PEER, phase.name, label], { stdio: ['ignore', 'ignore', 'pipe'], windowsHide: true });
  everyChild.add(child);
  const w = {
    phase,
    slot,
    gen,
    label,
    child,
    pid: child.pid,
    conn: undefined,
    conns: [],
    connWaiter: undefined,
    killedAt: undefined,
    killMode: undefined,
    killPlan: undefined,
    killTimer: undefined,
    killObserved: false,
    killedWhileConnected: false,
    expectLoss: undefined,
    retiring: false,
    stopRequested: false,
    baseline: undefined,
    opsDone: 0,
    opsSinceBaseline: 0,
    exit: undefined,
    stderr: '',
  };
  s.started++;
  phase.live.add(w);
  if (w.pid !== undefined) {
    phase.byPid.set(w.pid, w);
    phase.pastPids.add(w.pid); // a connection from it after it died is a straggler, not a stranger
  }
  let partial = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    w.stderr = (w.stderr + chunk).slice(-4000);
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) if (line.startsWith('UNEXPECTED')) recordUnexpected(phase, w, 'WORKER', line);
  });
  child.once('error', (e) => recordUnexpected(phase, w, 'SPAWN', e.message));
  w.closed = new Promise((resolve) =>
    child.once('close', (code, signal) => {
      w.exit = { code, signal };
      everyChild.delete(child);
      phase.live.delete(w);
      if (phase.byPid.get(w.pid) === w) phase.byPid.delete(w.pid);
      clearTimeout(w.killTimer);
      for (const c of w.conns.splice(0)) c.close();
      w.connWaiter?.(undefined);
      classifyExit(w);
      resolve();
    }),
  );
  return w;
}

function classifyExit(w) {
  const { exits } = w.phase.stats;
  const { code, signal } = w.exit;
  // Windows has no signals: Node reports a TerminateProcess'd child as SIGKILL; accept exit code 1 too.
  const killed = signal === 'SIGKILL' || (isWindows && code === 1);
  if (w.killedAt !== undefined && killed) exits.killed++;
  else if (w.killedAt === undefined && w.stopRequested && code === 0) exits.stopped++;
  else {
    exits.crashed.push({ worker: w.label, pid: w.pid, code, signal, killed: w.killedAt !== undefined, stderr: w.stderr.slice(-1500) });
    recordUnexpected(w.phase, w, 'CRASH', `exit code ${code}, signal ${signal}${w.stderr ? `; stderr: ${w.stderr.slice(-400)}` : ''}`);
  }
}

/** SIGKILLs a worker; `mode` says at what moment. False if it is not killable now. */
function kill(w, mode) {
  if (w.killedAt !== undefined || w.exit) return false;
  if (w.stopRequested && mode !== 'after a failure') return false;
  const s = w.phase.stats;
  w.killedAt = now();
  w.killMode = mode;
  w.killPlan = undefined;
  clearTimeout(w.killTimer);
  s.kills++;
  bump(s.killsByMode, mode);
  if (w.conn && !w.conn.closed) {
    w.killedWhileConnected = true;
    s.killsWhileConnected++;
  }
  w.child.kill('SIGKILL');
  return true;
}

function cancelKillPlan(w) {
  w.killPlan = undefined;
  clearTimeout(w.killTimer);
}

/** The next connection from this worker's PID, or undefined if it exits (or never connects). */
function nextConnection(w) {
  if (w.killedAt !== undefined || w.exit) {
    for (const c of w.conns.splice(0)) c.close();
    return Promise.resolve(undefined);
  }
  if (w.conns.length) return Promise.resolve(w.conns.shift());
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      w.connWaiter = undefined;
      if (w.killedAt === undefined && !w.exit) recordUnexpected(w.phase, w, 'CONNECT_TIMEOUT', `no connection within ${config.connectMs} ms`);
      resolve(undefined);
    }, config.connectMs);
    w.connWaiter = (conn) => {
      clearTimeout(timer);
      w.connWaiter = undefined;
      resolve(conn);
    };
  });
}

async function acceptLoop(phase) {
  for (;;) {
    const next = await phase.listener.accept();
    if (next.isErr()) {
      if (next.error.code !== 'CLOSED') recordUnexpected(phase, undefined, next.error.code, `accept: ${next.error.message}`);
      return;
    }
    const conn = next.value;
    if (phase.flooder && conn.peer.pid === phase.flooder.pid) {
      // Never received from: its messages wait until the hub's limits refuse
      // more. Its previous connection (and whatever it holds) goes now.
      phase.flooder.conn?.close();
      phase.flooder.conn = conn;
      phase.flooder.connections++;
      continue;
    }
    const w = phase.byPid.get(conn.peer.pid);
    if (!w || w.exit || w.killedAt !== undefined) {
      // A worker killed after connecting: its connection may still be in the accept queue.
      conn.close();
      phase.stats.strays++;
      if (!w && !phase.pastPids.has(conn.peer.pid)) recordUnexpected(phase, undefined, 'STRAY', `a connection from pid ${conn.peer.pid}, not one of our workers`);
      continue;
    }
    if (w.connWaiter) w.connWaiter(conn);
    else w.conns.push(conn);
  }
}

// ---------------------------------------------------------------------------
// Talking to a worker. Every call goes through send/receive, which count
// transfers, apply kill plans and classify errors.

async function send(w, message, { timeoutMs = config.safetyMs, intended } = {}) {
  const s = w.phase.stats;
  if (w.killPlan?.mode === 'just before a send') kill(w, 'just before a send');
  const pending = w.conn.send(message, { timeoutMs });
  if (w.killPlan?.mode === 'during a send') kill(w, 'during a send');
  const r = await pending;
  if (r.isOk()) {
    s.messages++;
    const n = message.regions?.length ?? 0;
    if (n) countOut(s, message.regions);
    if (w.killPlan?.mode === 'just after a send') kill(w, 'just after a send');
  } else {
    r.reason = noteError(w, r.error, `send ${message.data?.op}`, intended);
  }
  return r;
}

function countOut(s, regions) {
  s.transfers++;
  s.transfersOut++;
  s.lastProgress = now();
  s.regionsOut += regions.length;
  for (const r of regions) {
    s.bytesOut += r.size;
    if (r.size >= 64 * MiB) s.huge++;
  }
}

async function receive(w, { timeoutMs = config.safetyMs, signal, intended } = {}) {
  const s = w.phase.stats;
  const plan = w.killPlan;
  if (plan?.mode === 'while the worker sends') {
    setTimeout(() => w.killPlan === plan && kill(w, 'while the worker sends'), w.rng.int(0, 3));
  }
  const r = await w.conn.receive({ timeoutMs, signal });
  if (r.isOk()) {
    s.messages++;
    const { regions } = r.value;
    if (regions.length) {
      s.transfers++;
      s.transfersIn++;
      s.lastProgress = now();
      s.regionsIn += regions.length;
      for (const region of regions) {
        s.bytesIn += region.size;
        if (region.size >= 64 * MiB) s.huge++;
      }
    }
  } else {
    r.reason = noteError(w, r.error, 'receive', intended);
  }
  return r;
}

/** Checks a reply's kind and id; closes regions that should not be there. */
function expectReply(w, r, op, id, { regions = false } = {}) {
  const data = r.value.data;
  if (!regions) {
    for (const region of r.value.regions) region.close();
    if (r.value.regions.length) recordUnexpected(w.phase, w, 'REPLY', `${r.value.regions.length} region(s) with '${data?.op}'`);
  }
  if (data?.op !== op || data?.id !== id) {
    recordUnexpected(w.phase, w, 'REPLY', `expected ${op} #${id}, got ${JSON.stringify(data)?.slice(0, 200)}`);
    if (regions) for (const region of r.value.regions) region.close();
    return false;
  }
  return true;
}

function corrupt(w, what) {
  recordUnexpected(w.phase, w, 'CORRUPT', what);
}

/**
 * After a failed send/receive: 'failed' if the soak cannot explain the error
 * (already recorded; the worker is then killed, since it may be out of step),
 * 'lost' if the connection ended for a reason the soak caused, else 'ok'.
 */
function afterError(w, r) {
  if (!r.reason) return 'failed';
  if (w.conn.closed || ['PEER_CLOSED', 'CLOSED'].includes(r.error.code)) return 'lost';
  return 'ok';
}

// ---------------------------------------------------------------------------
// Regions and payloads

let nextId = 1;

function regionSize(rng, { small = false, noHuge = false } = {}) {
  if (!small && !noHuge && rng() < 1 / config.hugeEvery) return 64 * MiB;
  if (rng() < 0.05) return rng.pick(small ? [1, 4095, 4096, 4097] : [1, 4095, 4096, 4097, 65_536, 4 * MiB]);
  // Log-uniform: as many sizes between 1 and 2 KiB as between 2 and 4 MiB.
  const bits = small ? 16 : 22;
  return Math.max(1, Math.min(4 * MiB, Math.floor(2 ** (rng() * bits))));
}

function regionCount(rng) {
  const x = rng();
  if (x < 0.65) return 1;
  if (x < 0.88) return rng.int(2, 4);
  if (x < 0.985) return rng.int(5, 16);
  return 64; // the most one message may carry
}

/** Regions the hub writes for a check: [{ region, twin, seed, size, rw }]. Undefined if creating failed. */
function makeRegions(w, rng) {
  const count = regionCount(rng);
  const made = [];
  let huge = false;
  for (let i = 0; i < count; i++) {
    const size = regionSize(rng, { small: count > 16, noHuge: huge || count > 4 });
    huge ||= size >= 64 * MiB;
    const created = SharedRegion.create(size);
    if (created.isErr()) {
      recordUnexpected(w.phase, w, created.error.code, `SharedRegion.create(${size}): ${created.error.message}`);
      releaseRegions(made);
      return undefined;
    }
    const region = created.value;
    const seed = rng.u32();
    fillPattern(region.bytes, seed);
    const rw = rng() < 0.6;
    let twin;
    if (!rw) {
      const t = region.toReadOnly();
      if (t.isErr()) {
        recordUnexpected(w.phase, w, t.error.code, `toReadOnly: ${t.error.message}`);
        region.close();
        releaseRegions(made);
        return undefined;
      }
      twin = t.value;
    }
    made.push({ region, twin, seed, size, rw });
  }
  return made;
}

function releaseRegions(made) {
  for (const m of made) {
    m.twin?.close();
    m.region.close();
  }
}

const ALPHABET = Array.from('abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:-_/\\"\'\n\t\u0001éßøΩЖ✓→日本語😀🧪');
/** A JSON string payload: usually small, sometimes close to the 128 KiB message limit (escapes included). */
function randomPayload(rng) {
  const length = rng() < 0.1 ? rng.int(15_000, 19_000) : rng.int(0, 600);
  const chars = new Array(length);
  for (let i = 0; i < length; i++) chars[i] = ALPHABET[Math.floor(rng() * ALPHABET.length)];
  return chars.join('');
}

/** The worker's reply to regions it checked: what it found wrong, then the answers it wrote back. */
function acceptVerdict(w, r, op, id, made, what) {
  if (!expectReply(w, r, op, id)) return;
  for (const bad of r.value.data.bad ?? []) corrupt(w, `${what}: the worker found ${bad}`);
  verifyAnswers(w, made, what);
}

/** Checks what the worker wrote back: writable regions hold the reply pattern, our own bytes survived its read-only writes. */
function verifyAnswers(w, made, what) {
  for (const [i, m] of made.entries()) {
    if (m.rw) {
      const page = firstBadPage(m.region.bytes, m.seed ^ REPLY_SALT);
      if (page >= 0) corrupt(w, `${what}: writable region ${i} (${m.size} B): the worker's answer is missing at page ${page}`);
    } else {
      const last = Math.ceil(m.size / PAGE) - 1;
      const page = firstBadPage(m.region.bytes, m.seed, [0, last]);
      if (page >= 0) corrupt(w, `${what}: region ${i} (${m.size} B) sent read-only changed at page ${page}: a write through the twin reached it`);
    }
  }
}

// ---------------------------------------------------------------------------
// Operations. Each returns 'ok', 'lost' (the connection ended for a reason the
// soak caused) or 'failed' (something unexplained, already recorded).

/** Hub → worker: regions the worker checks and answers into. `mode`: plain, send-timeout or hub-close. */
async function opCheck(w, rng, mode = 'plain') {
  const made = makeRegions(w, rng);
  if (!made) return 'ok';
  const id = nextId++;
  const data = { op: 'check', id, items: made.map(({ seed, size, rw }) => ({ seed, size, rw })) };
  if (rng() < 0.15) {
    data.payload = randomPayload(rng);
    data.payloadSum = payloadSum(data.payload);
  }
  const message = { regions: made.map((m) => m.twin ?? m.region), data };
  try {
    if (mode === 'hub-close') {
      // Close our end while the message may be in flight: the send ends CLOSED (or was acknowledged first).
      w.expectLoss = 'hub-close';
      const pending = send(w, message);
      if (rng() < 0.5) await sleep(rng.int(0, 3));
      w.conn.close();
      const sent = await pending;
      return sent.isErr() && !sent.reason ? 'failed' : 'lost';
    }
    let timedOut = false;
    if (mode === 'send-timeout') {
      const sent = await send(w, message, { timeoutMs: config.shortMs, intended: { codes: ['TIMEOUT'], reason: 'send timeout asked for' } });
      if (sent.isErr() && sent.error.code !== 'TIMEOUT') return afterError(w, sent);
      if (sent.isOk()) w.phase.stats.timeoutsNotHit++;
      timedOut = sent.isErr();
    } else {
      const sent = await send(w, message);
      if (sent.isErr()) return afterError(w, sent);
    }
    const r = await receive(w);
    if (r.isErr()) return afterError(w, r);
    if (timedOut) countOut(w.phase.stats, message.regions); // delivered after all: the reply proves it
    acceptVerdict(w, r, 'checked', id, made, `check #${id}`);
    return 'ok';
  } finally {
    releaseRegions(made);
  }
}

/** Worker → hub: the worker makes regions, the hub checks them and answers into the writable ones. */
async function opProduce(w, rng) {
  const count = regionCount(rng);
  const items = [];
  let huge = false;
  for (let i = 0; i < count; i++) {
    const size = regionSize(rng, { small: count > 16, noHuge: huge || count > 4 });
    huge ||= size >= 64 * MiB;
    items.push({ size, seed: rng.u32(), ro: rng() < 0.4 });
  }
  const id = nextId++;
  const asked = await send(w, { data: { op: 'produce', id, items } });
  if (asked.isErr()) return afterError(w, asked);
  const r = await receive(w);
  if (r.isErr()) return afterError(w, r);
  if (!expectReply(w, r, 'produced', id, { regions: true })) return 'ok';
  const { regions, data } = r.value;
  try {
    if (data.failed) return 'ok'; // the worker reported it (UNEXPECTED on its stderr)
    if (regions.length !== items.length) {
      corrupt(w, `produce #${id}: ${regions.length} regions arrived for ${items.length}`);
      return 'ok';
    }
    for (const [i, region] of regions.entries()) {
      const item = items[i];
      if (region.size !== item.size || region.readOnly !== item.ro) {
        corrupt(w, `produce #${id}: region ${i} is ${region.size} B readOnly=${region.readOnly}, expected ${item.size} B readOnly=${item.ro}`);
        continue;
      }
      const page = firstBadPage(region.bytes, item.seed);
      if (page >= 0) corrupt(w, `produce #${id}: region ${i} (${item.size} B) differs at page ${page}`);
      if (item.ro) {
        region.bytes[0] ^= 0xff; // our private copy; the worker checks its bytes are intact
        region.bytes[region.size - 1] ^= 0xff;
      } else {
        fillPattern(region.bytes, item.seed ^ REPLY_SALT);
      }
    }
  } finally {
    for (const region of regions) region.close();
  }
  const told = await send(w, { data: { op: 'verify-produce', id } });
  if (told.isErr()) return afterError(w, told);
  const v = await receive(w);
  if (v.isErr()) return afterError(w, v);
  if (!expectReply(w, v, 'produce-verified', id)) return 'ok';
  for (const bad of v.value.data.bad ?? []) corrupt(w, `produce #${id}: the worker found ${bad}`);
  return 'ok';
}

/** Many small messages sent back to back without waiting for each acknowledgement. */
async function opBurst(w, rng) {
  const count = isWindows ? rng.int(4, 16) : rng.int(8, 48);
  const id = nextId++;
  const made = [];
  const sends = [send(w, { data: { op: 'burst', id, count } })];
  try {
    for (let index = 0; index < count; index++) {
      const size = regionSize(rng, { small: true });
      const created = SharedRegion.create(size);
      if (created.isErr()) {
        recordUnexpected(w.phase, w, created.error.code, `SharedRegion.create(${size}): ${created.error.message}`);
        break;
      }
      const seed = rng.u32();
      fillPattern(created.value.bytes, seed);
      made.push({ region: created.value, seed, size, rw: true });
      sends.push(send(w, { regions: [created.value], data: { op: 'burst-item', burst: id, index, item: { seed, size, rw: true } } }));
    }
    const results = await Promise.all(sends);
    const failed = results.find((r) => r.isErr());
    if (failed) return afterError(w, failed);
    if (made.length < count) return 'failed'; // the worker waits for items that never come
    const r = await receive(w);
    if (r.isErr()) return afterError(w, r);
    acceptVerdict(w, r, 'burst-done', id, made, `burst #${id}`);
    return 'ok';
  } finally {
    releaseRegions(made);
  }
}

/** JSON only, both ways, sometimes close to the size limit. */
async function opPing(w, rng) {
  const id = nextId++;
  const payload = randomPayload(rng);
  const sum = payloadSum(payload);
  const echo = rng() < 0.5;
  const sent = await send(w, { data: { op: 'ping', id, payload, payloadSum: sum, echo } });
  if (sent.isErr()) return afterError(w, sent);
  const r = await receive(w);
  if (r.isErr()) return afterError(w, r);
  if (!expectReply(w, r, 'pong', id)) return 'ok';
  const { ok, payload: back } = r.value.data;
  if (!ok) corrupt(w, `ping #${id}: the worker's checksum of the payload differs`);
  if (echo && (typeof back !== 'string' || payloadSum(back) !== sum)) corrupt(w, `ping #${id}: the echoed payload differs`);
  return 'ok';
}

/** A receive that times out (or is aborted) while the worker takes its time; the late reply still arrives. */
async function opReceiveTimeout(w, rng) {
  const id = nextId++;
  const sent = await send(w, { data: { op: 'delay', id, ms: config.delayMs } });
  if (sent.isErr()) return afterError(w, sent);
  let early;
  if (rng() < 0.5) {
    early = await receive(w, { timeoutMs: config.shortMs, intended: { codes: ['TIMEOUT'], reason: 'receive timeout asked for' } });
  } else {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), config.shortMs);
    early = await receive(w, { signal: controller.signal, intended: { codes: ['ABORTED'], reason: 'receive aborted on purpose' } });
  }
  let r = early;
  if (early.isErr()) {
    if (!early.reason || w.conn.closed) return afterError(w, early);
    r = await receive(w);
    if (r.isErr()) return afterError(w, r);
  } else {
    w.phase.stats.timeoutsNotHit++;
  }
  expectReply(w, r, 'delayed', id);
  return 'ok';
}

/** A send that times out: the worker reads nothing for a while. The message is still delivered and answered. */
async function opSendTimeout(w, rng) {
  const id = nextId++;
  const sent = await send(w, { data: { op: 'pause', id, ms: config.pauseMs } });
  if (sent.isErr()) return afterError(w, sent);
  const r = await receive(w);
  if (r.isErr()) return afterError(w, r);
  if (!expectReply(w, r, 'paused', id)) return 'ok';
  return opCheck(w, rng, 'send-timeout');
}

/** The worker closes its connection and connects again. */
async function opReconnect(w) {
  const id = nextId++;
  w.expectLoss = 'reconnect';
  const sent = await send(w, { data: { op: 'reconnect', id } });
  if (sent.isErr()) return afterError(w, sent);
  const r = await receive(w); // PEER_CLOSED once the worker has closed
  if (r.isOk()) {
    expectReply(w, r, 'nothing', id); // records the surprise
    w.expectLoss = undefined;
    return 'failed';
  }
  return afterError(w, r);
}

/**
 * Chaos with unread mail: the worker sends messages with regions that the hub
 * never receives, and is killed once they are in the hub's inbox. The hub then
 * closes the connection, which must release those regions (README: "regions
 * of messages not yet received are released"). The closed connection stays
 * referenced until the end, when receive() on it must fail.
 */
async function opUnreadMail(w, rng) {
  clearTimeout(w.killTimer); // this operation does the kill itself
  const id = nextId++;
  const count = rng.int(1, 4);
  const sent = await send(w, { data: { op: 'mail', id, count, size: regionSize(rng, { small: true }), seed: rng.u32() } });
  if (sent.isErr()) return afterError(w, sent);
  await sleep(isWindows ? 500 : 30); // the worker sends; its messages land in our inbox
  const conn = w.conn;
  if (!kill(w, 'with unread messages in the hub')) return 'ok';
  const deadline = now() + config.safetyMs;
  while (!conn.closed && now() < deadline) await sleep(5);
  if (!conn.closed) {
    recordUnexpected(w.phase, w, 'TIMEOUT', 'the connection of a killed worker did not end');
  } else if (!w.killObserved) {
    w.killObserved = true; // no call was pending; the connection ended, which is what the hub can see
    w.phase.stats.killsObserved++;
  }
  conn.close();
  w.phase.kept.push(conn);
  return 'lost';
}

async function opBaseline(w) {
  const id = nextId++;
  const sent = await send(w, { data: { op: 'baseline', id } });
  if (sent.isErr()) return afterError(w, sent);
  const r = await receive(w);
  if (r.isErr()) return afterError(w, r);
  if (expectReply(w, r, 'baseline', id)) w.baseline = r.value.data.census;
  return 'ok';
}

/** Stops the worker cleanly; it reports its own census first. */
async function opStop(w) {
  const id = nextId++;
  cancelKillPlan(w);
  w.stopRequested = true;
  const sent = await send(w, { data: { op: 'stop', id } });
  if (sent.isErr()) return afterError(w, sent);
  const r = await receive(w);
  if (r.isErr()) return afterError(w, r);
  if (expectReply(w, r, 'report', id)) {
    const d = r.value.data;
    w.phase.stats.reports.push({
      worker: w.label,
      pid: w.pid,
      ops: d.stats.ops,
      reconnects: d.stats.reconnects,
      before: d.before,
      after: d.after,
      leaked: d.leaked,
      census: judgeCensus(d.leaked, d.tableBefore, d.tableAfter),
      mappings: d.mappings,
      leftovers: d.leftovers,
      unexpected: d.stats.unexpected,
      errors: d.stats.errors,
      rss: d.rss,
    });
  }
  w.conn.close(); // the worker exits once it sees us hang up
  return 'stopped';
}

const OPS = [
  ['check', 50, (w, rng) => opCheck(w, rng)],
  ['produce', 20, opProduce],
  ['ping', 8, opPing],
  ['burst', 7, opBurst],
  ['receive timeout', 5, opReceiveTimeout],
  ['send timeout', 4, opSendTimeout],
  ['reconnect', 2, opReconnect],
  ['hub close', 2, (w, rng) => opCheck(w, rng, 'hub-close')],
];
const OPS_WEIGHT = OPS.reduce((n, [, weight]) => n + weight, 0);
function pickOp(rng) {
  let x = rng() * OPS_WEIGHT;
  for (const op of OPS) if ((x -= op[1]) < 0) return op;
  return OPS[0];
}

/** One worker process from start to exit. */
async function lifeOf(w) {
  const { phase } = w;
  w.rng = makeRng(0x51, w.slot, w.gen, phase.index);
  w.conn = await nextConnection(w);
  if (!w.conn) {
    if (w.killedAt === undefined && !w.exit) kill(w, 'after a failure');
    return;
  }
  for (;;) {
    if (w.killedAt !== undefined && w.killedWhileConnected && !w.killObserved) {
      // Killed between two operations: the next call on its connection must fail with a typed error.
      for (;;) {
        const r = await receive(w);
        if (r.isErr()) break;
        for (const region of r.value.regions) region.close();
        if (r.value.data?.op === 'unread') continue; // mail it sent before it died, still deliverable
        recordUnexpected(phase, w, 'REPLY', `a message from a killed worker: ${JSON.stringify(r.value.data)?.slice(0, 200)}`);
      }
    }
    if (w.killedAt !== undefined || w.exit) break;
    const finishing = phase.stopping || w.retiring;
    if (finishing) cancelKillPlan(w);
    let name;
    let outcome;
    if (!w.baseline && w.opsDone >= config.workerWarmupOps) {
      name = 'baseline';
      outcome = await opBaseline(w);
    } else if (finishing && w.baseline && w.opsSinceBaseline >= config.postBaselineOps) {
      name = 'stop';
      outcome = await opStop(w);
    } else if (w.killPlan?.mode === 'with unread messages in the hub') {
      name = 'unread mail';
      outcome = await opUnreadMail(w, w.rng);
    } else {
      const [opName, , run] = pickOp(w.rng);
      name = opName;
      outcome = await run(w, w.rng);
    }
    if (outcome === 'stopped') break;
    if (outcome === 'ok' || (outcome === 'lost' && w.expectLoss)) {
      bump(phase.stats.ops, name);
      w.opsDone++;
      if (w.baseline && name !== 'baseline') w.opsSinceBaseline++;
    }
    if (outcome === 'ok') continue;
    // The connection is gone.
    w.conn.close();
    if (w.killedAt !== undefined || w.exit) {
      if (w.killedWhileConnected && !w.killObserved && w.expectLoss === 'hub-close') phase.stats.killsPreempted++;
      break;
    }
    if (outcome === 'lost' && w.expectLoss) {
      w.expectLoss = undefined;
      w.conn = await nextConnection(w);
      if (!w.conn) break;
      continue;
    }
    // Failed for a reason the soak did not cause (already recorded): end this worker.
    if (outcome === 'lost') recordUnexpected(phase, w, 'LOST', 'the connection ended and the soak knows no reason');
    kill(w, 'after a failure');
    break;
  }
  w.conn?.close();
}

async function runSlot(phase, slot) {
  for (let gen = 0; ; gen++) {
    if (gen > 0) phase.stats.restarts++;
    const w = startWorker(phase, slot, gen);
    await lifeOf(w);
    await w.closed;
    if (w.stopRequested && w.killedAt === undefined) {
      if (phase.stopping) return;
      phase.stats.retired++;
      continue; // retired mid-run: a replacement takes its place
    }
    // Killed (by chaos, or after a failure) or crashed: replace it — also while stopping, so that every
    // slot ends with a clean stop — unless the run is failing anyway.
    if (phase.aborting || (phase.stopping && (w.killedAt === undefined || w.killMode === 'after a failure'))) return;
  }
}

async function chaosLoop(phase) {
  const rng = makeRng(0xc4a05, phase.index);
  const modes = ['just before a send', 'during a send', 'just after a send', 'while the worker sends', 'at any moment'];
  while (!phase.stopping) {
    await sleep(rng.int(...config.killEveryMs));
    if (phase.stopping) break;
    const candidates = [...phase.live].filter((w) => w.killedAt === undefined && !w.retiring && !w.stopRequested && !w.killPlan);
    if (!candidates.length) continue;
    const w = rng.pick(candidates);
    if (rng() < 0.08) {
      w.retiring = true; // a clean stop mid-run, with its census report
      continue;
    }
    // Not in the warm-up: a region that mode leaks would hide in the baseline.
    const mode = phase.label !== 'warm-up' && rng() < 0.05 ? 'with unread messages in the hub' : rng.pick(modes);
    if (mode === 'at any moment') {
      kill(w, mode);
      continue;
    }
    // Armed for the next matching moment; if none comes soon (the worker is still starting, say), now.
    const plan = { mode };
    w.killPlan = plan;
    w.killTimer = setTimeout(() => w.killPlan === plan && kill(w, 'at any moment (plan expired)'), config.planExpiryMs);
  }
}

// ---------------------------------------------------------------------------
// Phases: a warm-up, then the measured run.

let interrupted = false;
const samples = []; // [seconds since start, rss, transfers, anonymous rss (Linux)]
const runStarted = now();
let peakRss = 0;

function statusLine(phase) {
  const s = phase.stats;
  const t = (now() - phase.started) / 1000;
  const rate = s.transfers / Math.max(t, 0.001);
  const r = rss();
  peakRss = Math.max(peakRss, r);
  const fds = census();
  const target = Number.isFinite(phase.target) ? ` / ${fmt(phase.target)}` : '';
  return (
    `[${t.toFixed(1).padStart(6)} s] ${phase.label.padEnd(7)} ${fmt(s.transfers)}${target} transfers  ${fmt(rate)}/s  ` +
    `kills ${s.kills}  restarts ${s.restarts}  errors: ${codes(s.errors)}  unexpected ${s.unexpectedCount}  ` +
    `hub ${isWindows ? 'handles' : 'fds'} ${fds.value}${fds.exact ? '' : ' (slot)'}  rss ${mib(r)}`
  );
}

let phaseIndex = 0;
async function runPhase(label, { target, seconds, workers, chaos }) {
  const phase = {
    index: phaseIndex++,
    label,
    name: `soak-${process.pid}-${label}-${randomBytes(3).toString('hex')}`,
    stats: newStats(),
    target,
    seconds,
    stopping: false,
    aborting: false,
    live: new Set(),
    byPid: new Map(),
    pastPids: new Set(),
    kept: [], // closed connections that had unreceived messages, referenced until the end
    started: now(),
  };
  const listened = await listen(phase.name);
  if (listened.isErr()) {
    recordUnexpected(phase, undefined, listened.error.code, `listen: ${listened.error.message}`);
    return phase;
  }
  phase.listener = listened.value;
  phase.flooder = startFlooder(phase);
  const accepting = acceptLoop(phase);
  const slots = Array.from({ length: workers }, (_, i) => runSlot(phase, i));
  const chaosing = chaos ? chaosLoop(phase) : Promise.resolve();
  const status = setInterval(() => console.log(statusLine(phase)), config.statusEveryMs);
  const sampler = setInterval(() => {
    const r = rss();
    peakRss = Math.max(peakRss, r);
    if (label === 'main') samples.push([Number(((now() - runStarted) / 1000).toFixed(1)), r, phase.stats.transfers, memoryBreakdown().RssAnon ?? null]);
  }, 1000);

  for (;;) {
    await sleep(100);
    const s = phase.stats;
    const elapsed = (now() - phase.started) / 1000;
    if (s.transfers >= target || elapsed >= seconds || interrupted) break;
    if (s.unexpectedCount >= 100) {
      console.log('  ! over 100 unexpected events: stopping early');
      phase.aborting = true;
      break;
    }
    if (now() - s.lastProgress > config.stallMs) {
      recordUnexpected(phase, undefined, 'STALL', `no transfer completed for ${config.stallMs / 1000} s`);
      phase.aborting = true;
      break;
    }
  }
  phase.transferElapsed = (now() - phase.started) / 1000;
  // The flood ends with the measured run, so the clean stops below are not
  // raced by it (under Wine one stop was seen to hang behind it: see SECURITY.md).
  await stopFlooder(phase);
  phase.stopping = true;
  for (const w of phase.live) cancelKillPlan(w);
  // Every worker finishes its operation, then is stopped cleanly (after its warm-up, if it is new).
  const stopped = await within(Promise.all(slots), config.connectMs + config.safetyMs);
  if (!stopped) {
    recordUnexpected(phase, undefined, 'STOP_TIMEOUT', `workers still running: ${[...phase.live].map((w) => w.label).join(', ')}`);
    phase.aborting = true;
    for (const w of phase.live) kill(w, 'after a failure');
    await within(Promise.all(slots), 10_000);
  }
  await chaosing;
  clearInterval(status);
  clearInterval(sampler);
  phase.listener.close();
  await accepting;
  phase.elapsed = (now() - phase.started) / 1000;
  console.log(statusLine(phase).replace(/^\[[^\]]*\]/, `[${phase.elapsed.toFixed(1).padStart(6)} s]`) + '  (done)');
  return phase;
}

/** Starts the flooding peer of a phase (soak-peer.mjs flood); it stops when its stdin closes. */
function startFlooder(phase) {
  const child = spawn(process.execPath, ['--expose-gc', PEER, phase.name, `${phase.label}:flood`, 'flood'], { stdio: ['pipe', 'ignore', 'pipe'], windowsHide: true });
  everyChild.add(child);
  const f = { child, pid: child.pid, conn: undefined, connections: 0, stderr: '', report: undefined, exit: undefined };
  child.stdin.on('error', () => {});
  child.stderr.setEncoding('utf8');
  let partial = '';
  child.stderr.on('data', (chunk) => {
    f.stderr = (f.stderr + chunk).slice(-4000);
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      if (line.startsWith('UNEXPECTED')) recordUnexpected(phase, undefined, 'FLOODER', line);
      if (line.startsWith('FLOOD ')) f.report = JSON.parse(line.slice(6));
    }
  });
  f.closed = new Promise((resolve) =>
    child.once('close', (code, signal) => {
      f.exit = { code, signal };
      everyChild.delete(child);
      resolve();
    }),
  );
  return f;
}

async function stopFlooder(phase) {
  const f = phase.flooder;
  f.child.stdin.end();
  if (!(await within(f.closed, config.connectMs + config.safetyMs))) {
    recordUnexpected(phase, undefined, 'FLOODER', 'the flooding peer did not stop');
    f.child.kill('SIGKILL');
    await f.closed;
  }
  f.conn?.close();
  if (f.exit.code !== 0) recordUnexpected(phase, undefined, 'FLOODER', `the flooding peer exited with ${f.exit.code ?? f.exit.signal}: ${f.stderr.slice(-400)}`);
}

// ---------------------------------------------------------------------------
// Main

process.on('SIGINT', () => {
  if (interrupted) {
    killAllChildren();
    process.exit(130);
  }
  interrupted = true;
  console.log('\nInterrupted: stopping the workers cleanly (Ctrl-C again to kill everything).');
});
for (const event of ['uncaughtException', 'unhandledRejection']) {
  process.on(event, (e) => {
    console.error(`\nsoak: the hub crashed (${event}):`, e);
    console.log('verdict: FAIL (the hub crashed)');
    killAllChildren();
    process.exit(70);
  });
}

const cpuCount = cpus().length;
const platform = `${process.platform} ${process.arch}${underWine ? ' (Windows Node under Wine)' : ''}, Node ${process.version}, ${cpuCount} CPU${cpuCount === 1 ? '' : 's'}`;
console.log(`memport soak — ${platform}`);
console.log(
  `seed ${config.seed}, ${config.workers} workers, target ${Number.isFinite(config.target) ? `${fmt(config.target)} transfers` : 'none'}` +
    `${Number.isFinite(config.seconds) ? `, at most ${config.seconds} s` : ''}, chaos ${config.chaos ? `on (a kill every ${config.killEveryMs.join('-')} ms)` : 'off'}`,
);

// Warm-up: the same work, so what the runtime and memport allocate once is in the baseline.
const warmup = await runPhase('warm-up', { target: config.warmupTarget, seconds: config.warmupSeconds, workers: config.workers, chaos: config.chaos });
await settleHub();
const baselineTable = handleTableNow(); // (before the census: listing it starts a process)
const baseline = { census: census(), mappings: memportMappings(), rss: rss(), memory: memoryBreakdown(), table: baselineTable };
peakRss = baseline.rss;
console.log(
  `baseline after warm-up: hub ${isWindows ? 'handles' : 'fds'} ${baseline.census.value}${baseline.census.exact ? '' : ' (lowest free slot)'}, ` +
    `memport mappings ${baseline.mappings ?? 'n/a'}, rss ${mib(baseline.rss)}`,
);

const main = interrupted ? undefined : await runPhase('main', { target: config.target, seconds: config.seconds, workers: config.workers, chaos: config.chaos });

// Everything is closed; let the loop and the collector catch up. Then ask the
// closed connections whose worker died with messages unreceived for those
// messages (close() must have released them), and measure again without them.
const phasesRun = [warmup, main].filter(Boolean);
const keptCount = phasesRun.reduce((n, p) => n + p.kept.length, 0);
await new Promise((r) => setImmediate(r));
const beforeGc = { census: census(), mappings: memportMappings(), rss: rss() };
await settleHub();
const withKept = { census: census(), mappings: memportMappings(), messages: 0, regions: 0, codes: {} };
// After close(), receive() must fail (CLOSED, or PEER_CLOSED as the peer died first): anything still
// delivered was held by a closed connection.
for (const conn of phasesRun.flatMap((p) => p.kept)) {
  for (;;) {
    const r = await conn.receive({ timeoutMs: 0 });
    if (r.isErr()) {
      bump(withKept.codes, r.error.code);
      break;
    }
    withKept.messages++;
    withKept.regions += r.value.regions.length;
    for (const region of r.value.regions) region.close();
  }
}
for (const p of phasesRun) p.kept.length = 0;
await settleHub();
const endTable = handleTableNow();
const end = { census: census(), mappings: memportMappings(), rss: rss(), memory: memoryBreakdown(), table: endTable };
peakRss = Math.max(peakRss, end.rss);

// ---------------------------------------------------------------------------
// Verdict

const phases = phasesRun;
const s = main?.stats ?? newStats();
const allReports = phases.flatMap((p) => p.stats.reports);
const allCrashes = phases.flatMap((p) => p.stats.exits.crashed.map((c) => ({ phase: p.label, ...c })));
const allUnexpected = phases.flatMap((p) => p.stats.unexpected.map((u) => ({ phase: p.label, ...u })));
const unexpectedCount = phases.reduce((n, p) => n + p.stats.unexpectedCount, 0);
const leaked = handlesLeaked(baseline.census, end.census);
const hubCensus = judgeCensus(leaked, baseline.table, end.table);
const badReports = allReports.filter((r) => !r.census.ok || (r.mappings ?? 0) !== 0 || r.leftovers !== 0 || r.unexpected !== 0);
/** How a moved Wine slot probe was judged, for the summary. */
const driftNote = (judged) =>
  judged.grown.length
    ? `; more of memport's objects: ${judged.grown.join('; ')} (changes: ${judged.changes.join('; ')})`
    : judged.changes.length
      ? `; no more of memport's objects than before (changes: ${judged.changes.join('; ')})`
      : '';
const started = phases.reduce((n, p) => n + p.stats.started, 0);
const exited = phases.reduce((n, p) => n + p.stats.exits.killed + p.stats.exits.stopped + p.stats.exits.crashed.length, 0);
const timeBound = Number.isFinite(config.seconds) && main && main.transferElapsed >= config.seconds - 0.5;

/**
 * Is the hub's memory still climbing late in the run? The median over the
 * samples taken at 40-60 % of the transfers against the median at 85-100 %,
 * in anonymous RSS where Linux reports it (regions in flight are shared
 * memory and would only add noise), else in RSS. The end-of-run figures are
 * reported but not judged: after the warm-up the allocator is still growing
 * its arenas to their steady size, by tens of MiB, leak or no leak.
 */
function memoryTrend() {
  if (!main || samples.length < 12) return undefined;
  const total = samples.at(-1)[2];
  const metric = (sample) => sample[3] ?? sample[1];
  const median = (list) => list.map(metric).sort((a, b) => a - b)[Math.floor(list.length / 2)];
  const window = (from, to) => samples.filter(([, , done]) => done >= from * total && done <= to * total);
  const early = window(0.4, 0.6);
  const late = window(0.85, 1);
  if (early.length < 3 || late.length < 3) return undefined;
  const transfers = median(late.map((x) => [0, x[2]])) - median(early.map((x) => [0, x[2]]));
  const growth = median(late) - median(early);
  const allowed = config.rssSlack + (config.rssPerTenThousand * Math.max(0, transfers)) / 10_000;
  return { kind: samples[0][3] !== null ? 'anonymous RSS' : 'RSS', from: median(early), to: median(late), growth, transfers, allowed };
}
const trend = memoryTrend();

const checks = [
  [
    'transfers',
    !!main && !interrupted && (s.transfers >= config.target || timeBound),
    `${fmt(s.transfers)} of ${Number.isFinite(config.target) ? fmt(config.target) : 'no target'}${timeBound ? ` (time limit ${config.seconds} s reached)` : ''}${interrupted ? ' (interrupted)' : ''}`,
  ],
  ['chaos happened', !config.chaos || s.kills > 0, config.chaos ? `${fmt(s.kills)} kills` : 'off (--no-chaos)'],
  [
    'every kill seen as an error',
    phases.every((p) => p.stats.killsObserved + p.stats.killsPreempted === p.stats.killsWhileConnected),
    `${fmt(s.killsObserved)} of ${fmt(s.killsWhileConnected)} kills of connected workers surfaced (PEER_CLOSED) on the hub` +
      (s.killsPreempted ? `, ${fmt(s.killsPreempted)} more were preempted by the hub closing that connection itself` : ''),
  ],
  ['no unexplained error', unexpectedCount === 0, unexpectedCount === 0 ? 'every error explained by a kill, close or timeout the soak made' : `${unexpectedCount} unexpected event(s)`],
  [
    'flooding peer bounded',
    !!main?.flooder?.report && (main.flooder.report.codes.OUT_OF_MEMORY ?? 0) > 0 && main.flooder.exit?.code === 0,
    main?.flooder?.report
      ? `${fmt(main.flooder.report.sent)} messages in ${fmt(main.flooder.report.rounds)} connections to a hub that never receives them: ` +
        `${fmt(main.flooder.report.codes.OUT_OF_MEMORY ?? 0)} refused by its limits (OUT_OF_MEMORY); otherwise ${fmt(main.flooder.report.ok)} ok, ${codes(Object.fromEntries(Object.entries(main.flooder.report.codes).filter(([c]) => c !== 'OUT_OF_MEMORY')))}`
      : 'no report from the flooding peer',
  ],
  ['no crash', allCrashes.length === 0, `${allCrashes.length} worker exit(s) neither a kill nor a clean stop`],
  ['every process accounted for', started === exited && everyChild.size === 0, `${started} started, ${exited} exited, ${everyChild.size} still running`],
  ['hub census at baseline', hubCensus.ok, `${baseline.census.value} → ${end.census.value} ${isWindows ? 'handles' : 'fds'}${end.census.exact ? '' : ' (lowest free handle slot; Wine has no count)'}, leaked ${leaked}${driftNote(hubCensus)}`],
  [
    'hub memport mappings 0',
    end.mappings === null || (end.mappings === 0 && baseline.mappings === 0),
    end.mappings === null ? 'n/a (no /proc/self/maps on this platform)' : `${baseline.mappings} after the warm-up, ${end.mappings} at the end`,
  ],
  [
    'closed connections hold nothing',
    withKept.messages === 0 && Object.keys(withKept.codes).every((code) => code === 'CLOSED' || code === 'PEER_CLOSED'),
    keptCount === 0
      ? 'n/a (no worker was killed with unread messages in the hub)'
      : `${keptCount} connections closed after their worker died with messages unreceived: ${withKept.messages} message(s) with ${withKept.regions} region(s) ` +
        `still receivable after close() (must be 0: close() releases them; receive() then failed with ${codes(withKept.codes)})`,
  ],
  [
    'hub memory not growing',
    !trend || trend.growth <= trend.allowed,
    trend
      ? `${trend.kind} ${mib(trend.from)} at mid-run → ${mib(trend.to)} at the end of the run: ${trend.growth >= 0 ? '+' : ''}${mib(trend.growth)} over ${fmt(trend.transfers)} transfers (allowed ${mib(trend.allowed)})`
      : 'n/a (run too short to tell)',
  ],
  [
    'worker censuses at baseline',
    allReports.length > 0 && badReports.length === 0,
    `${allReports.length} clean stops reported; ${badReports.length} not back to baseline` +
      (allReports.length ? `; leaked max ${Math.max(...allReports.map((r) => r.leaked ?? Infinity))}, mappings max ${Math.max(...allReports.map((r) => r.mappings ?? 0))}` : ''),
  ],
];
const pass = checks.every(([, ok]) => ok);


const line = '─'.repeat(78);
const row = (k, v) => console.log(`${k.padEnd(22)} ${v}`);
console.log(`\n${line}\nmemport soak: summary\n${line}`);
row('platform', platform);
row('seed', `${config.seed}  (re-run: --seed ${config.seed}; timing still varies)`);
row('parameters', `${config.workers} workers, target ${Number.isFinite(config.target) ? fmt(config.target) : 'none'}, seconds ${Number.isFinite(config.seconds) ? config.seconds : 'none'}, chaos ${config.chaos ? 'on' : 'off'}`);
row('warm-up', `${warmup.elapsed?.toFixed(1) ?? '?'} s, ${fmt(warmup.stats.transfers)} transfers, ${warmup.stats.kills} kills, errors: ${codes(warmup.stats.errors)}`);
if (main) {
  row('duration', `${main.elapsed.toFixed(1)} s (transfers in ${main.transferElapsed.toFixed(1)} s, then clean stops)`);
  row('transfers', `${fmt(s.transfers)} (${fmt(s.transfers / main.transferElapsed)}/s): hub→worker ${fmt(s.transfersOut)}, worker→hub ${fmt(s.transfersIn)}`);
  row('  regions', `${fmt(s.regionsOut)} sent (${mib(s.bytesOut)}), ${fmt(s.regionsIn)} received (${mib(s.bytesIn)}), ${fmt(s.huge)} of 64 MiB`);
  row('  messages', `${fmt(s.messages)} acknowledged or received, regions or not`);
  row('  operations', codes(s.ops));
  row('processes', `${fmt(s.started)} workers started: ${config.workers} + ${fmt(s.restarts)} restarts`);
  row('kills', `${fmt(s.kills)} SIGKILLs: ${codes(s.killsByMode)}`);
  row(
    '  seen as errors',
    `${fmt(s.killsObserved)} of the ${fmt(s.killsWhileConnected)} kills of a connected worker surfaced as a typed error on the hub` +
      `${s.killsPreempted ? ` (${fmt(s.killsPreempted)} preempted: the hub closed that connection first)` : ''}; ${fmt(s.kills - s.killsWhileConnected)} hit a worker starting or reconnecting`,
  );
  row('retired cleanly', `${fmt(s.retired)} mid-run, ${fmt(s.exits.stopped - s.retired)} at the end`);
  row('errors (hub)', codes(s.errors));
  row('  explained by', codes(s.explained));
  row('  intended, missed', `${fmt(s.timeoutsNotHit)} timeouts asked for did not fire (the peer was quicker): harmless`);
  row('exits', `${fmt(s.exits.killed)} killed (SIGKILL), ${fmt(s.exits.stopped)} clean (code 0), ${s.exits.crashed.length} crashed`);
  const workerErrors = {};
  for (const r of main.stats.reports) for (const [code, n] of Object.entries(r.errors)) bump(workerErrors, code, n);
  row('worker errors', `${codes(workerErrors)} (in the ${main.stats.reports.length} clean-stop reports)`);
}
row('hub census', `baseline ${baseline.census.value}, end ${end.census.value} (before GC ${beforeGc.census.value}; before draining ${keptCount} closed connections ${withKept.census.value})${end.census.exact ? '' : ' — slot probe'}`);
row('hub mappings', `baseline ${baseline.mappings ?? 'n/a'}, end ${end.mappings ?? 'n/a'} (before GC ${beforeGc.mappings ?? 'n/a'}; before draining closed connections ${withKept.mappings ?? 'n/a'})`);
row('hub RSS', `start ${mib(baseline.rss)}, peak ${mib(peakRss)}, end ${mib(end.rss)}`);
if (samples.length >= 8) {
  const at = (f) => samples[Math.min(samples.length - 1, Math.floor(f * samples.length))];
  const quarter = (f) => `${mib(at(f)[1])}${at(f)[3] !== null ? ` (anon ${mib(at(f)[3])})` : ''}`;
  row('  during the run', `at 25 % ${quarter(0.25)}, 50 % ${quarter(0.5)}, 75 % ${quarter(0.75)}, 100 % ${quarter(1)} — regions in flight included`);
}
row('  at the start', describeMemory(baseline.memory));
row('  at the end', describeMemory(end.memory));
if (allReports.length) {
  const exact = allReports.every((r) => r.after?.exact);
  const drifted = allReports.filter((r) => r.leaked !== 0 && r.census.ok);
  row('worker census', `${allReports.length} clean stops: ${allReports.length - badReports.length} back to baseline${exact ? '' : ' (slot probe)'}${drifted.length ? `, ${drifted.length} of them by their handle tables` : ''}, ${badReports.length} not`);
  for (const r of badReports.slice(0, 10)) row('', `${r.worker}: ${r.before?.value} → ${r.after?.value} (leaked ${r.leaked}${driftNote(r.census)}), mappings ${r.mappings}, leftovers ${r.leftovers}, unexpected ${r.unexpected}`);
  for (const r of drifted.slice(0, 5)) row('', `${r.worker}: ${r.before?.value} → ${r.after?.value} (probe moved by ${r.leaked}${driftNote(r.census)})`);
}
if (allUnexpected.length) {
  console.log(`\nunexpected events (${unexpectedCount}; first ${allUnexpected.length}):`);
  for (const u of allUnexpected.slice(0, 20)) console.log(`  ${u.phase} ${u.code} ${u.worker ?? ''} ${u.what}`);
}
if (allCrashes.length) {
  console.log('\ncrashed workers:');
  for (const c of allCrashes.slice(0, 5)) console.log(`  ${c.phase} ${c.worker} pid ${c.pid}: code ${c.code} signal ${c.signal}\n${c.stderr.replace(/^/gm, '    ')}`);
}
console.log('\nchecks:');
for (const [name, ok, detail] of checks) console.log(`  ${ok ? '✔' : '✘'} ${name.padEnd(30)} ${detail}`);
console.log(`\nverdict: ${pass ? 'PASS' : 'FAIL'}`);

if (config.json) {
  const dir = join(root, 'build-soak');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, isWindows ? 'soak-win32.json' : 'soak.json');
  const phaseRecord = (p) => ({
    label: p.label,
    seconds: p.elapsed,
    transferSeconds: p.transferElapsed,
    ...Object.fromEntries(Object.entries(p.stats).filter(([k]) => k !== 'lastProgress')),
  });
  const record = {
    date: new Date().toISOString(),
    platform,
    underWine,
    config: { ...config, target: Number.isFinite(config.target) ? config.target : null, seconds: Number.isFinite(config.seconds) ? config.seconds : null },
    verdict: pass ? 'PASS' : 'FAIL',
    checks: checks.map(([name, ok, detail]) => ({ name, ok, detail })),
    hub: { baseline, beforeGc, withKept: { ...withKept, kept: keptCount }, end, peakRss, leaked },
    phases: phases.map(phaseRecord),
    rssSamples: samples,
  };
  writeFileSync(file, JSON.stringify(record, null, 2) + '\n');
  console.log(`wrote ${relative(process.cwd(), file)}`);
}
process.exit(pass ? 0 : 1);
