// Named shared memory against real programs that use names, and the classic
// inherited-handle pattern with memport on either side:
//   Linux: Python's multiprocessing.shared_memory both ways, and Python's
//          object sent on by memport to a second memport process; a C parent
//          (cc) handing a child an inherited memfd.
//   Windows (under Wine): the classic "first process / second process" C
//          programs (mingw), objects of other types under the name, a section
//          the user may only read, SEC_RESERVE; a C parent handing a child an
//          inherited section; duplicateInto a native program.
// The C programs live in examples/interop/ and are built by
// examples/interop/build.mjs (the Linux run builds the .exe files too, so
// the Windows run under Wine finds them).
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedRegion, listen } from '../dist/index.js';
import { buildInterop, interopDir } from '../examples/interop/build.mjs';
import { assertNoHandleLeak, expectErr, handleCensus, handleTable, isLinux, isWindows, realWindowsOnly, settleHandles, spawnRetrying, underWine, unwrap } from './helpers.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const INHERIT_CHILD = join(root, 'examples', 'interop', 'inherit-child.mjs');
const PYTHON_SHM = join(here, 'fixtures', 'python-shm.py');
const NAMED_PEER = join(here, 'fixtures', 'named-peer.mjs');

/**
 * A second memport process (test/fixtures/named-peer.mjs) connected to a fresh
 * listener here; `ask(message)` sends it a message and returns its answer's data.
 */
async function secondMemportProcess(timeoutMs) {
  const channel = uniqueName('ch').slice(0, 60);
  const listener = unwrap(await listen(channel));
  const peer = startUntil(process.execPath, [NAMED_PEER, channel], /^$/); // its answers come over the connection
  peer.ready.catch(() => {});
  const conn = unwrap(await listener.accept({ timeoutMs }), 'the second memport process connects');
  const ask = async (message) => {
    unwrap(await conn.send(message), 'send to the second process');
    return unwrap(await conn.receive({ timeoutMs }), 'its answer').data;
  };
  return { listener, peer, conn, ask };
}
const uniqueName = (tag) => `memport-interop-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`;
const text = (bytes) => {
  const b = Buffer.from(bytes);
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
};
const program = (name) => join(interopDir, name);

// Built here on Linux (both the Linux programs and the .exe files); under
// Wine, Windows Node can run but not build them.
const buildFailures = isLinux ? buildInterop({ quiet: true }) : [];

/** Starts a program; resolves once it printed a line matching `ready` (its match), rejects if it exits first. */
function startUntil(command, args, ready) {
  const child = spawnRetrying(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  // 'close', not 'exit': 'exit' can come before the last of stdout has been
  // read (under Wine it did, and a test saw only the child's first line).
  child.exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, output })));
  child.ready = new Promise((resolve, reject) => {
    const onData = (d) => {
      output += d;
      const m = ready.exec(output);
      if (m) resolve(m);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => (output += d));
    child.exited.then(({ code, signal }) => reject(new Error(`${command} exited (${code ?? signal}) before it was ready:\n${output}`)));
  });
  child.output = () => output;
  return child;
}

function run(command, args, input) {
  return spawnSync(command, args, { encoding: 'utf8', input, timeout: 120_000 });
}

const Build = suite('interop programs');
Build('the C programs are built', () => {
  assert.equal(buildFailures, [], buildFailures.join('\n'));
  const needed = isLinux ? ['inherit_parent_linux'] : ['first_process.exe', 'second_process.exe', 'inherit_parent_win.exe', 'duplicate_receiver_win.exe', 'named_objects_win.exe'];
  for (const name of needed) assert.ok(existsSync(program(name)), `${program(name)} exists (run node examples/interop/build.mjs on Linux first)`);
});
Build.run();

// ---------------------------------------------------------------------------
const Python = suite('Linux: Python multiprocessing.shared_memory');

if (isLinux) {
  const shmNames = () => readdirSync('/dev/shm').filter((n) => n.startsWith('memport-interop-'));

  Python('Python creates, memport opens by the name Python reports, reads and writes; Python sees the reply and unlinks', async () => {
    const name = uniqueName('py-create');
    const python = startUntil('python3', [PYTHON_SHM, 'create', name, '5000', 'Message from Python'], /^READY (\S+)$/m);
    const [, reported] = await python.ready;
    assert.is(reported, name, 'Python reports the name without its slash');
    const base = handleCensus();
    for (const spelling of [reported, `/${reported}`]) {
      const region = unwrap(SharedRegion.openNamed(spelling), `openNamed(${spelling})`);
      assert.is(region.size, 5000, 'the size from fstat is what Python asked for');
      assert.is(text(unwrap(region.read(0, 64))), 'Message from Python');
      region.close();
    }
    const region = unwrap(SharedRegion.openNamed(reported));
    unwrap(region.write(1024, Buffer.from('Reply from memport\0')));
    region.close();
    await settleHandles();
    assertNoHandleLeak(base, 'opening Python’s object');
    python.stdin.end('\n');
    const { code, output } = await python.exited;
    assert.is(code, 0, output);
    assert.match(output, /^REPLY Reply from memport$/m, 'Python read what memport wrote');
    assert.equal(shmNames(), [], 'Python unlinked its name: nothing left in /dev/shm');
  });

  Python('memport creates, Python opens it by name, checks the bytes and replies; memport unlinks', () => {
    const name = uniqueName('mp-create');
    const region = unwrap(SharedRegion.createNamed(name, 8192));
    try {
      unwrap(region.write(0, Buffer.from('Message from memport\0')));
      const python = run('python3', [PYTHON_SHM, 'open', name, 'Message from memport']);
      assert.is(python.status, 0, `${python.stdout}${python.stderr}`);
      assert.match(python.stdout, /^SIZE 8192$/m, 'Python sees the size memport gave it');
      assert.not.match(python.stderr, /leaked|Warning/i, 'no resource-tracker complaint');
      assert.is(text(unwrap(region.read(1024, 64))), 'Reply from Python', 'memport reads the reply in the same memory');
    } finally {
      region.close();
    }
    unwrap(SharedRegion.unlinkNamed(name));
    assert.equal(shmNames(), [], 'nothing left in /dev/shm');
  });

  Python('Python creates, memport opens by name and sends the live memory to a second memport process, which sees Python’s later writes and Python sees its reply', async () => {
    const name = uniqueName('py-send');
    const python = startUntil('python3', [PYTHON_SHM, 'create', name, '8192', 'Message from Python'], /^READY (\S+)$/m);
    await python.ready;
    const region = unwrap(SharedRegion.openNamed(name), 'openNamed(Python’s object)');
    const { listener, peer, conn, ask } = await secondMemportProcess(20_000);
    try {
      const arrived = await ask({ regions: [region] });
      assert.equal(arrived, { named: true, name: null, size: 8192, readOnly: false, head: 'Message from Pyt' }, 'the second process got Python’s memory, not its name');
      // Python writes after memport sent it: the second process sees it.
      python.stdin.write('WRITE 2048 Later from Python\n');
      await new Promise((resolve) => {
        const poll = () => (/^WROTE$/m.test(python.output()) ? resolve() : setTimeout(poll, 20));
        poll();
      });
      assert.equal(await ask({ data: { read: [2048, 17] } }), { read: 'Later from Python', view: 'Later from Python' }, 'the second process sees Python’s later write');
      assert.is(await ask({ data: { write: [1024, 'Reply from the second process\0'] } }), 'written');
      unwrap(await conn.send({ data: 'stop' }));
      const { code, output } = await peer.exited;
      assert.is(code, 0, output);
    } finally {
      conn.close();
      listener.close();
      region.close();
      peer.kill();
    }
    python.stdin.end('\n');
    const { code, output } = await python.exited;
    assert.is(code, 0, output);
    assert.match(output, /^REPLY Reply from the second process$/m, 'Python read what the second process wrote');
    assert.equal(shmNames(), [], 'Python unlinked its name: nothing left in /dev/shm');
  });

  Python('createNamed on a name Python holds is ALREADY_EXISTS; Python’s object is untouched', async () => {
    const name = uniqueName('py-squat');
    const python = startUntil('python3', [PYTHON_SHM, 'create', name, '4096', 'Python was first'], /^READY (\S+)$/m);
    await python.ready;
    expectErr(SharedRegion.createNamed(name, 4096), 'ALREADY_EXISTS', 'createNamed of Python’s name');
    python.stdin.end('\n');
    const { code, output } = await python.exited;
    assert.is(code, 0, output);
    assert.match(output, /^REPLY $/m, 'nothing was written into Python’s object');
    assert.equal(shmNames(), [], 'nothing left in /dev/shm');
  });
}
Python.run();

// ---------------------------------------------------------------------------
const Inherit = suite('the inherited-handle pattern');

Inherit('a C parent hands a Node child an inherited unnamed mapping; the child adopts it with fromHandle', () => {
  const parent = isLinux ? program('inherit_parent_linux') : program('inherit_parent_win.exe');
  const r = run(parent, [process.execPath, INHERIT_CHILD]);
  const output = `${r.stdout}${r.stderr}`;
  assert.is(r.status, 0, output);
  assert.match(output, new RegExp(`^CHILD READ: Message from the C parent, through an inherited ${isLinux ? 'fd' : 'handle'}\\.\\r?$`, 'm'));
  assert.match(output, /^PARENT READ: Reply from the Node child \(memport\)\.\r?$/m, 'the parent reads the child’s reply');
});

if (isWindows) {
  Inherit('Windows: duplicateInto a native program, the value on its stdin; it reads, and cannot write', async () => {
    const receiver = startUntil(program('duplicate_receiver_win.exe'), [], /^READY (\d+)\r?$/m);
    const [, pid] = await receiver.ready;
    assert.is(Number(pid), receiver.pid);
    const region = unwrap(SharedRegion.create(4096));
    region.bytes.set(Buffer.from('Message from memport, by duplicateInto\0'));
    const value = unwrap(region.duplicateInto(receiver.pid, { readOnly: true }));
    receiver.stdin.end(`${value} 4096\n`);
    const { code, output } = await receiver.exited;
    region.close();
    assert.match(output, /^RECEIVER READ: Message from memport, by duplicateInto\r?$/m, output);
    assert.match(output, /^WRITABLE VIEW: refused/m, 'a read-only duplicate cannot be mapped for write');
    assert.is(code, 0, output);
  });
}
Inherit.run();

// ---------------------------------------------------------------------------
const Classic = suite('Windows: the classic first process / second process');

if (isWindows) {
  const CLASSIC = 'Local\\MyFileMappingObject';
  const classicOutput = (r) => `${r.stdout}${r.stderr}`.replace(/\r/g, '');

  Classic('openNamed reads the first process’s message; createNamed on its name is ALREADY_EXISTS', async () => {
    const first = startUntil(program('first_process.exe'), [], /^READY\r?$/m);
    await first.ready;
    try {
      for (const spelling of [CLASSIC, 'MyFileMappingObject']) {
        const region = unwrap(SharedRegion.openNamed(spelling, { readOnly: true }), `openNamed(${spelling})`);
        assert.ok(region.size >= 256, `the section's size from the OS: ${region.size}`);
        assert.is(text(unwrap(region.read(0, 256))), 'Message from first process.');
        region.close();
      }
      const base = handleCensus();
      const table = underWine ? handleTable() : undefined;
      expectErr(SharedRegion.createNamed(CLASSIC, 256), 'ALREADY_EXISTS', 'createNamed on the first process’s name');
      expectErr(SharedRegion.createNamed('MyFileMappingObject', 4096), 'ALREADY_EXISTS', 'the bare spelling of it');
      await settleHandles();
      assertNoHandleLeak(base, 'refused creates', table);
    } finally {
      first.stdin.end('\n');
    }
    const { code, output } = await first.exited;
    assert.is(code, 0, output);
  });

  Classic('the second process reads a message memport wrote with createNamed; the name goes with the last handle', () => {
    const region = unwrap(SharedRegion.createNamed(CLASSIC, 256));
    unwrap(region.write(0, Buffer.from('Message from memport.\0')));
    const second = run(program('second_process.exe'), []);
    assert.is(second.status, 0, classicOutput(second));
    assert.is(classicOutput(second), 'Message from memport.\n');
    // The first process refuses a name that exists, as memport does.
    const first = run(program('first_process.exe'), [], '\n');
    assert.is(first.status, 3, classicOutput(first));
    region.close();
    const gone = run(program('second_process.exe'), []);
    assert.is(gone.status, 1, 'once memport closed its region, the name is gone');
    assert.match(classicOutput(gone), /Could not open file mapping object \(2\)/);
  });

  Classic('the first process’s section, opened by name and sent by memport to a second memport process: it reads the message, and what it writes the classic second process reads by name', async () => {
    const first = startUntil(program('first_process.exe'), [], /^READY\r?$/m);
    await first.ready;
    const region = unwrap(SharedRegion.openNamed(CLASSIC), 'openNamed(the first process’s section)');
    const { listener, peer, conn, ask } = await secondMemportProcess(30_000);
    try {
      const arrived = await ask({ regions: [region] });
      assert.is(arrived.named, true);
      assert.is(arrived.name, null, 'the name is not passed on');
      assert.is(arrived.head, 'Message from fir', 'the second memport process reads the first process’s message');
      assert.is(await ask({ data: { write: [0, 'Written by the receiver.\0'] } }), 'written');
      const second = run(program('second_process.exe'), []);
      assert.is(second.status, 0, classicOutput(second));
      assert.is(classicOutput(second), 'Written by the receiver.\n', 'the classic second process reads it by name: the same live section');
      unwrap(await conn.send({ data: 'stop' }));
      const { code, output } = await peer.exited;
      assert.is(code, 0, output);
    } finally {
      conn.close();
      listener.close();
      region.close();
      peer.kill();
      first.stdin.end('\n');
    }
    assert.is((await first.exited).code, 0);
  });

  Classic('objects of other types under the name: INVALID_HANDLE to open, ALREADY_EXISTS to create; nothing leaked', async () => {
    for (const kind of ['event', 'mutex']) {
      const name = uniqueName(kind);
      const holder = startUntil(program('named_objects_win.exe'), [kind, `Local\\${name}`], /^READY\r?$/m);
      await holder.ready;
      try {
        const base = handleCensus();
        const table = underWine ? handleTable() : undefined;
        for (let i = 0; i < 10; i++) {
          const e = expectErr(SharedRegion.openNamed(name), 'INVALID_HANDLE', `openNamed of a ${kind}`);
          assert.match(e.message, /another type/);
          expectErr(SharedRegion.openNamed(name, { readOnly: true }), 'INVALID_HANDLE', `openNamed(readOnly) of a ${kind}`);
          expectErr(SharedRegion.createNamed(name, 4096), 'ALREADY_EXISTS', `createNamed over a ${kind}`);
        }
        await settleHandles();
        assertNoHandleLeak(base, `refused ${kind}`, table);
      } finally {
        holder.stdin.end('\n');
      }
      assert.is((await holder.exited).code, 0);
    }
  });

  Classic('a section this user may only read: write-open is ACCESS_DENIED, readOnly works; nothing leaked', async () => {
    const name = uniqueName('readonly');
    const holder = startUntil(program('named_objects_win.exe'), ['readonly', `Local\\${name}`, 'only for reading'], /^READY\r?$/m);
    await holder.ready;
    try {
      const base = handleCensus();
      const table = underWine ? handleTable() : undefined;
      const e = expectErr(SharedRegion.openNamed(name), 'ACCESS_DENIED', 'write-open of a read-only section');
      assert.match(e.message, /readOnly: true/);
      await settleHandles();
      assertNoHandleLeak(base, 'refused write-open', table);
      const region = unwrap(SharedRegion.openNamed(name, { readOnly: true }), 'read-only open');
      assert.is(text(unwrap(region.read(0, 64))), 'only for reading');
      region.close();
    } finally {
      holder.stdin.end('\n');
    }
    assert.is((await holder.exited).code, 0);
  });

  Classic('a section whose size this user may not query: the size comes from a view (VirtualQuery)', async () => {
    const name = uniqueName('maponly');
    const holder = startUntil(program('named_objects_win.exe'), ['maponly', `Local\\${name}`, 'no query rights'], /^READY\r?$/m);
    await holder.ready;
    try {
      const region = unwrap(SharedRegion.openNamed(name, { readOnly: true }), 'read-only open without SECTION_QUERY');
      assert.is(region.size, 4096, 'the whole view: one page');
      assert.is(text(unwrap(region.read(0, 64))), 'no query rights');
      region.close();
      expectErr(SharedRegion.openNamed(name, { readOnly: true, size: 4097 }), 'INVALID_ARGUMENT', 'a size past the view');
    } finally {
      holder.stdin.end('\n');
    }
    assert.is((await holder.exited).code, 0);
  });

  Classic('a reserve-only (SEC_RESERVE) section is UNSUPPORTED: touching its uncommitted pages would crash', async () => {
    const name = uniqueName('reserve');
    const holder = startUntil(program('named_objects_win.exe'), ['reserve', `Local\\${name}`], /^READY\r?$/m);
    await holder.ready;
    try {
      const e = expectErr(SharedRegion.openNamed(name), 'UNSUPPORTED', 'openNamed of a SEC_RESERVE section');
      assert.match(e.message, /SEC_RESERVE/);
    } finally {
      holder.stdin.end('\n');
    }
    assert.is((await holder.exited).code, 0);
  });

  Classic(realWindowsOnly('Global\\ without SeCreateGlobalPrivilege is ACCESS_DENIED and says so'), () => {
    // Wine creates Global\ objects for anyone. On real Windows an ordinary
    // (non-elevated, non-service) user lacks the privilege.
    if (underWine) return;
    const privileges = run('whoami', ['/priv']);
    assert.is(privileges.status, 0, 'whoami /priv lists this token’s privileges');
    const r = SharedRegion.createNamed(`Global\\${uniqueName('global')}`, 4096);
    if (/SeCreateGlobalPrivilege.*\bEnabled\b/.test(privileges.stdout)) {
      unwrap(r, 'createNamed(Global\\...) with the privilege').close();
    } else {
      const e = expectErr(r, 'ACCESS_DENIED', 'createNamed(Global\\...) without the privilege');
      assert.match(e.message, /SeCreateGlobalPrivilege/);
    }
  });
}
Classic.run();
