// spawnWithRegions never leaves an orphan: when the handover fails after the
// child started (here: the child never connects, so it times out), the child
// is killed and reaped before the error is returned.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion, spawnWithRegions } from '../dist/index.js';
import { expectErr, underWine, unwrap } from './helpers.mjs';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** Whether a process with this PID is running (signal 0 only checks). */
function running(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

const Orphans = suite('spawnWithRegions: a failed handover leaves no orphan');

Orphans('a child that never connects is killed and reaped when the handover times out', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'memport-orphan-'));
  const pidFile = join(dir, 'pid');
  const region = unwrap(SharedRegion.create(4096));
  let pid;
  try {
    // Long enough for the child to start and write its PID (Windows Node under Wine starts slowly).
    const timeoutMs = underWine ? 15_000 : 3_000;
    const started = Date.now();
    const result = await spawnWithRegions(process.execPath, [join(fixtures, 'stubborn-child.mjs'), pidFile], { regions: [region], timeoutMs, stdio: 'ignore' });
    expectErr(result, 'TIMEOUT', 'spawnWithRegions with a child that never connects');
    assert.ok(Date.now() - started >= timeoutMs, 'after its timeout');
    assert.ok(existsSync(pidFile), 'the child had started and written its PID');
    pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(pid > 0);
    // Killed and reaped before the error came back: the PID names no process now.
    assert.not.ok(running(pid), `the child (process ${pid}) is gone`);
  } finally {
    if (pid && running(pid)) process.kill(pid, 'SIGKILL');
    region.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

Orphans('a command that cannot start returns its error (nothing to stop)', async () => {
  const result = await spawnWithRegions(join(fixtures, 'no-such-program'), [], { timeoutMs: 5_000 });
  expectErr(result, 'NOT_FOUND', 'spawnWithRegions of a missing program');
});

Orphans.run();
