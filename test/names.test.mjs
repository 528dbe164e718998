// Names that no one else can take: a socket directory another user cannot
// plant (Linux), and a client that refuses a process serving a live
// listener's name without owning it (Linux and Windows).
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, lchownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { channelAddress, connect, listen } from '../dist/index.js';
import { assertNoHandleLeak, expectErr, handleCensus, handleTable, isLinux, isWindows, settleHandles, underWine, unwrap } from './helpers.mjs';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const uniqueName = (what) => `${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const WAIT = underWine ? 20_000 : 5_000;

/** Runs `body` with HOME (and XDG_RUNTIME_DIR) set as given, restoring both after. */
async function withEnv(env, body) {
  const saved = { HOME: process.env.HOME, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
  try {
    for (const [key, value] of Object.entries(env)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    return await body();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

/** /run/user/<uid> is used before the home when it is a private directory of ours. */
function runUserDirInUse() {
  try {
    const st = lstatSync(`/run/user/${process.getuid()}`);
    return st.isDirectory() && st.uid === process.getuid() && (st.mode & 0o77) === 0;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
const Dir = suite('Linux: a socket directory no other user can plant');

Dir('without XDG_RUNTIME_DIR the directory is ~/.cache/memport, not the shared /tmp', async () => {
  if (!isLinux) return;
  if (runUserDirInUse()) return console.log('    (/run/user/<uid> exists here and comes first: the home case is not reached)');
  const home = mkdtempSync(join(tmpdir(), 'memport-home-'));
  try {
    await withEnv({ HOME: home, XDG_RUNTIME_DIR: undefined }, async () => {
      assert.is(unwrap(channelAddress('frames')), join(home, '.cache', 'memport', 'frames.sock'));
      const name = uniqueName('home');
      const listener = unwrap(await listen(name), 'listen');
      const st = statSync(join(home, '.cache', 'memport'));
      assert.is(st.mode & 0o777, 0o700, 'created private');
      const client = connect(name, { timeoutMs: WAIT });
      const server = unwrap(await listener.accept({ timeoutMs: WAIT }), 'accept');
      unwrap(await client, 'connect').close();
      server.close();
      listener.close();
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

Dir('a directory, symlink or file planted there by another user is ACCESS_DENIED saying how to undo it; undone, listen works', async () => {
  if (!isLinux) return;
  if (runUserDirInUse()) return console.log('    (/run/user/<uid> exists here and comes first: the home case is not reached)');
  const root = process.getuid() === 0;
  const home = mkdtempSync(join(tmpdir(), 'memport-home-'));
  const cache = join(home, '.cache');
  const dir = join(cache, 'memport');
  const elsewhere = join(home, 'elsewhere');
  mkdirSync(cache, { mode: 0o700 });
  // As another user would plant them (root can make them theirs); the victim owns ~/.cache, so it can move them aside.
  const plants = {
    ...(root ? { 'a directory owned by another user': () => (mkdirSync(dir, { mode: 0o700 }), writeFileSync(join(dir, 'x'), ''), chownSync(join(dir, 'x'), 65534, 65534), chownSync(dir, 65534, 65534)) } : {}),
    'a symlink to a directory of another user': () => {
      mkdirSync(elsewhere, { mode: 0o700 });
      if (root) chownSync(elsewhere, 65534, 65534);
      symlinkSync(elsewhere, dir);
      if (root) lchownSync(dir, 65534, 65534); // the link itself
    },
    'a file': () => (writeFileSync(dir, 'planted'), root && chownSync(dir, 65534, 65534)),
  };
  if (!root) console.log('    (not root: plants are made as this user; the directory case needs chown and is not tried)');
  try {
    await withEnv({ HOME: home, XDG_RUNTIME_DIR: undefined }, async () => {
      for (const [label, plant] of Object.entries(plants)) {
        rmSync(dir, { recursive: true, force: true });
        rmSync(`${dir}.planted`, { recursive: true, force: true });
        rmSync(elsewhere, { recursive: true, force: true });
        plant();
        const name = uniqueName('planted');
        const refused = expectErr(await listen(name), 'ACCESS_DENIED', `listen with ${label}`);
        assert.ok(refused.message.includes(`mv ${dir} ${dir}.planted`), `the message says how to undo it: ${refused.message}`);
        expectErr(await connect(name, { timeoutMs: 1000 }), 'ACCESS_DENIED', `connect with ${label}`);
        // What the message says, done by the victim (who owns ~/.cache): memport makes its own directory again.
        renameSync(dir, `${dir}.planted`);
        const listener = unwrap(await listen(name), `listen after moving ${label} aside`);
        assert.is(lstatSync(dir).uid, process.getuid());
        listener.close();
      }
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

Dir('a home other users can write to is not used: the directory falls back to /tmp/memport-<uid>', async () => {
  if (!isLinux) return;
  if (runUserDirInUse()) return console.log('    (/run/user/<uid> exists here and comes first)');
  const home = mkdtempSync(join(tmpdir(), 'memport-home-'));
  try {
    chmodSync(home, 0o777);
    await withEnv({ HOME: home, XDG_RUNTIME_DIR: undefined }, async () => {
      assert.is(unwrap(channelAddress('frames')), `/tmp/memport-${process.getuid()}/frames.sock`);
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

Dir('a home too long for a socket address still works (bound through /proc/self/fd)', async () => {
  if (!isLinux) return;
  if (runUserDirInUse()) return console.log('    (/run/user/<uid> exists here and comes first)');
  const base = mkdtempSync(join(tmpdir(), 'memport-home-'));
  const home = join(base, 'h'.repeat(120));
  mkdirSync(home, { mode: 0o700 });
  try {
    await withEnv({ HOME: home, XDG_RUNTIME_DIR: undefined }, async () => {
      const name = uniqueName('long');
      const address = unwrap(channelAddress(name));
      assert.ok(address.length > 108, `the path is ${address.length} bytes, more than sun_path holds`);
      const listener = unwrap(await listen(name), 'listen');
      assert.is(listener.address, address);
      assert.ok(existsSync(address), 'the socket is at the long path');
      const client = connect(name, { timeoutMs: WAIT });
      const server = unwrap(await listener.accept({ timeoutMs: WAIT }), 'accept');
      const conn = unwrap(await client, 'connect');
      assert.is(conn.peer.pid, process.pid);
      conn.close();
      server.close();
      listener.close();
      assert.not.ok(existsSync(address), 'removed on close');
    });
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

Dir.run();

// ---------------------------------------------------------------------------
const Owner = suite('a process serving a live listener\'s name without owning it is refused');

/** Starts the impostor fixture against `address`; resolves once it serves there. */
async function startImpostor(address, ms) {
  if (isLinux) {
    const child = spawn('python3', [join(fixtures, 'impostor.py'), address, String(ms / 1000)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise((resolve) => child.once('exit', () => resolve(out)));
    for (let i = 0; i < 200 && !/^READY$/m.test(out); i++) await new Promise((r) => setTimeout(r, 25));
    assert.match(out, /^READY$/m, 'the impostor bound the path');
    return {
      pid: child.pid,
      connections: () => (out.match(/^BYTES \d+$/gm) ?? []).length,
      silentHangUps: () => (out.match(/^BYTES 0$/gm) ?? []).length,
      finish: () => (child.kill(), exited),
    };
  }
  const report = join(mkdtempSync(join(tmpdir(), 'memport-impostor-')), 'report');
  writeFileSync(report, '');
  const child = spawn(process.execPath, [join(fixtures, 'impostor.mjs'), address, report, String(ms)], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  for (let i = 0; i < 400 && !existsSync(`${report}.ready`); i++) await new Promise((r) => setTimeout(r, 50));
  assert.is(existsSync(`${report}.ready`) && readFileSync(`${report}.ready`, 'utf8'), 'READY', 'the impostor made an instance of the pipe');
  return {
    pid: child.pid,
    connections: () => (readFileSync(report, 'utf8').match(/^CONNECTION$/gm) ?? []).length,
    finish: async () => {
      child.kill();
      await exited;
      rmSync(dirname(report), { recursive: true, force: true });
    },
  };
}

Owner('the client gets ACCESS_DENIED saying the name is served by a process that does not own it, without knowing any PID', async () => {
  const name = uniqueName('owned');
  const listener = unwrap(await listen(name), 'listen');
  // Linux: the impostor unlinks the socket and binds its own. Windows: it adds
  // an instance of the pipe; clients may reach ours or its, so connect until
  // one reaches the impostor (every other one must reach the real listener).
  const impostor = await startImpostor(listener.address, WAIT * 3);
  const tableBefore = underWine ? handleTable() : undefined;
  const before = handleCensus();
  try {
    let refused = 0;
    const admitted = [];
    for (let attempt = 0; attempt < (isLinux ? 3 : 12) && (isLinux || refused === 0); attempt++) {
      const client = connect(name, { timeoutMs: WAIT });
      const result = await client;
      if (result.isErr()) {
        const error = expectErr(result, 'ACCESS_DENIED', `connect #${attempt}`);
        assert.match(error.message, new RegExp(`owned by process ${process.pid}\\b.*served by process ${impostor.pid}\\b, which does not own it`));
        refused++;
      } else {
        // Reached the real listener's own instance (Windows): that one is fine.
        assert.ok(isWindows, 'on Linux every client reaches the path, and so the impostor');
        assert.is(result.value.peer.pid, process.pid);
        admitted.push(result.value, unwrap(await listener.accept({ timeoutMs: WAIT }), 'accept'));
      }
    }
    assert.ok(refused > 0, 'a client met the impostor and refused it');
    for (const c of admitted) c.close();
    // The impostor reports each connection when it has served it: wait for all of them.
    for (let i = 0; i < WAIT / 25 && impostor.connections() < refused; i++) await new Promise((r) => setTimeout(r, 25));
    assert.is(impostor.connections(), refused, 'every refused client had reached the impostor');
    if (isLinux) assert.is(impostor.silentHangUps(), refused, 'and hung up without sending it a byte');
    if (isLinux) {
      // The real listener notices too: its socket is no longer the one at the path.
      const started = Date.now();
      const noticed = expectErr(await listener.accept({ timeoutMs: 5_000 }), 'ACCESS_DENIED', 'accept on the listener whose socket was replaced');
      assert.match(noticed.message, new RegExp(`removed or replaced this listener's ${name}\\.sock in `));
      assert.ok(Date.now() - started < 4_000, 'within about a second');
    }
    await settleHandles();
    assertNoHandleLeak(before, 'refused connects', tableBefore);
  } finally {
    await impostor.finish();
    listener.close();
  }
});

Owner('Linux: a listener whose socket or lock file is removed fails accept() with ACCESS_DENIED; one left alone does not', async () => {
  if (!isLinux) return; // Windows: an added pipe instance is invisible to the listener (clients refuse it)
  const kept = unwrap(await listen(uniqueName('kept')), 'listen');
  const name = uniqueName('removed');
  const listener = unwrap(await listen(name), 'listen');
  try {
    rmSync(listener.address.replace(/\.sock$/, '.lock'));
    const noticed = expectErr(await listener.accept({ timeoutMs: 5_000 }), 'ACCESS_DENIED', 'accept once the lock file is gone');
    assert.match(noticed.message, new RegExp(`removed or replaced this listener's ${name}\\.lock`));
    expectErr(await kept.accept({ timeoutMs: 1_500 }), 'TIMEOUT', 'the untouched listener just waits');
  } finally {
    listener.close();
    kept.close();
  }
});

Owner('a listener\'s name is ALREADY_EXISTS in this process and from another, and free again once closed', async () => {
  const name = uniqueName('exclusive');
  const listener = unwrap(await listen(name), 'listen');
  expectErr(await listen(name), 'ALREADY_EXISTS', 'a second listen in this process');
  // A same-process connect after that refused listen: the name's owner is still this listener.
  const client = connect(name, { timeoutMs: WAIT });
  const server = unwrap(await listener.accept({ timeoutMs: WAIT }), 'accept');
  unwrap(await client, 'connect after a refused second listen').close();
  server.close();
  const other = spawn(process.execPath, ['--input-type=module', '-e', `
    import { listen } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
    const r = await listen(${JSON.stringify(name)});
    process.exit(r.isErr() && r.error.code === 'ALREADY_EXISTS' ? 0 : 1);`], { stdio: 'inherit' });
  assert.is(await new Promise((resolve) => other.once('exit', resolve)), 0, 'another process gets ALREADY_EXISTS');
  listener.close();
  unwrap(await listen(name), 'listen once closed').close();
});

Owner.run();
