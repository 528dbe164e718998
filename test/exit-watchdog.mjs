// Loaded into every test process by scripts/test.mjs (--import). A test file
// whose suite has finished must exit: a handle left open by memport would keep
// a user's process alive too. Once uvu prints its summary, an unref'd timer is
// armed; it fires only if something still holds the event loop, and then names
// what does and fails the file, instead of the runner's 10-minute kill saying
// nothing.
const GRACE_MS = Number(process.env.MEMPORT_EXIT_WATCHDOG_MS) || 60_000;

let armed = false;
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => {
  if (!armed && /Total:\s+\d+/.test(String(chunk))) arm();
  return write(chunk, ...rest);
};

function describeHandle(h) {
  const name = h?.constructor?.name ?? typeof h;
  if (name === 'ChildProcess') return `ChildProcess pid ${h.pid} (${h.spawnfile} ${h.spawnargs?.slice(1).join(' ')})`;
  if (name === 'Socket' || name === 'Pipe') return `${name} fd ${h._handle?.fd ?? '?'}${h.remoteAddress ? ` to ${h.remoteAddress}` : ''}`;
  if (name === 'Timeout') return `Timeout ${h._idleTimeout} ms: ${String(h._onTimeout).slice(0, 120).replace(/\s+/g, ' ')}`;
  return name;
}

function arm() {
  armed = true;
  const timer = setTimeout(() => {
    const lines = [
      `exit watchdog: the suite finished ${GRACE_MS / 1000} s ago but the process is still alive.`,
      `  active resources: ${process.getActiveResourcesInfo().join(', ')}`,
      ...(process._getActiveHandles?.() ?? []).map((h) => `  handle: ${describeHandle(h)}`),
    ];
    if ((process._getActiveHandles?.() ?? []).length === 0) {
      lines.push('  no JS handle is open: a native hold keeps the loop alive (memport holds its thread-safe function while a connection, listener or connect is open)');
    }
    process.stderr.write(`${lines.join('\n')}\n✘ FAIL the process did not exit after its suite\n`);
    process.exit(1);
  }, GRACE_MS);
  timer.unref();
}
