// The install test's smoke program (scripts/test-install.mjs copies this
// directory into a fresh project that installed the packed memport). One body
// for both module systems: smoke.mjs imports memport, smoke.cjs requires it,
// and each passes it in. The parent creates a region, views it, makes a
// read-only twin, listens, starts itself again as the child, and hands the
// twin over with a notifier and a stream reader; the child connects, receives
// them, checks every byte, reads the three records the parent streams, and
// notifies the parent.
'use strict';
const { spawn } = require('node:child_process');
const { existsSync } = require('node:fs');

const PATTERN = Array.from({ length: 64 }, (_, i) => (i * 7 + 3) & 0xff);
const OFFSET = 8192;
const TIMEOUT = { timeoutMs: 120_000 }; // qemu-user and Wine start processes slowly

/** Unwraps a Result, or fails the smoke run with the MemportError's code and message. */
function must(result, what) {
  return result.match(
    (value) => value,
    (error) => {
      throw new Error(`${what}: ${error.code}: ${error.message}`);
    },
  );
}

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

async function parent(memport, entry, format) {
  const loaded = memport.addonSearchPaths().find((p) => existsSync(p));
  const region = must(memport.SharedRegion.create(1 << 20), 'SharedRegion.create');
  must(region.write(OFFSET, Uint8Array.from(PATTERN)), 'region.write');
  const view = must(region.view(OFFSET, PATTERN.length), 'region.view');
  check(view.every((b, i) => b === PATTERN[i]), 'the view shows the written bytes');
  const bad = region.view(region.size, 1);
  check(bad.isErr() && bad.error.code === 'INVALID_ARGUMENT', 'a view past the end is Err(INVALID_ARGUMENT)');
  const twin = must(region.toReadOnly(), 'toReadOnly');
  check(twin.readOnly && twin.bytes[OFFSET] === PATTERN[0], 'the read-only twin shows the same memory');
  region.bytes[OFFSET + 1] = PATTERN[1]; // unchanged value, but proves the writable side still writes
  const name = `memport-smoke-${process.pid}`;
  const listener = must(await memport.listen(name), 'listen');
  // MEMPORT_SMOKE_LAUNCHER: the arm64 run starts the child through qemu-user explicitly.
  const launcher = process.env.MEMPORT_SMOKE_LAUNCHER;
  const command = launcher ? [launcher, process.execPath] : [process.execPath];
  const child = spawn(command[0], [...command.slice(1), entry, 'child', name], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  const conn = must(await listener.accept(TIMEOUT), 'accept');
  check(conn.peer.pid === child.pid, `the kernel names the child (${child.pid}) as the peer, got ${conn.peer.pid}`);
  // A notifier and a stream reader travel with the region; the child reads
  // the stream to its end, then its notify wakes this process.
  const ready = must(memport.Notifier.create(), 'Notifier.create');
  const writer = must(memport.Stream.create({ mode: 'queue', recordBytes: 16, records: 2 }), 'Stream.create');
  must(await conn.send({ regions: [twin], notifiers: [ready], streams: [writer], data: { offset: OFFSET, pattern: PATTERN } }, TIMEOUT), 'send');
  for (let i = 0; i < 3; i++) must(await writer.write(Uint8Array.of(i, i + 1), TIMEOUT), `write ${i}`); // the third waits for the child
  writer.close();
  must(await ready.wait(TIMEOUT), "the child's notify");
  ready.close();
  const status = await exited;
  check(status === 0, `the child exited with ${status}`);
  check(region.bytes[OFFSET] === PATTERN[0], "the child's write through its read-only handle did not reach this process");
  conn.close();
  listener.close();
  twin.close();
  region.close();
  check(view.length === 0, 'closing the region empties its views');
  console.log(`smoke ${format} ${process.platform}-${process.arch}: ok (addon ${loaded})`);
}

async function child(memport, name, format) {
  const conn = must(await memport.connect(name, TIMEOUT), 'connect');
  const message = must(await conn.receive(TIMEOUT), 'receive');
  const [region] = message.regions;
  const { offset, pattern } = message.data;
  check(region.readOnly, 'the received region is read-only');
  check(pattern.every((b, i) => region.bytes[offset + i] === b), 'the child reads the parent\'s bytes');
  check(message.notifiers.length === 1, 'the notifier arrived with the region');
  check(message.streams.length === 1, 'the stream reader arrived with the region');
  const [reader] = message.streams;
  for (let i = 0; ; i++) {
    const next = await reader.next(TIMEOUT);
    if (next.isErr() && next.error.code === 'PEER_CLOSED' && i === 3) break; // the writer closed after three
    const record = must(next, `record ${i}`);
    check(record.seq === i && record.bytes.length === 2 && record.bytes[0] === i && record.bytes[1] === i + 1, `record ${i} arrives whole and in order`);
    record.release();
  }
  reader.close();
  must(message.notifiers[0].notify(), 'notify the parent');
  message.notifiers[0].close();
  // A read-only region's writes stay private to this process (copy-on-write);
  // the parent checks that its memory did not change.
  must(region.write(offset, Uint8Array.of(pattern[0] ^ 0xff)), 'private write');
  check(region.bytes[offset] === (pattern[0] ^ 0xff), 'the private write is visible here');
  region.close();
  conn.close();
  console.log(`smoke ${format} child ${process.platform}-${process.arch}: read ${pattern.length} bytes at ${offset} through a read-only handle and 3 stream records`);
}

/** Entry: `<entry>` runs the parent, `<entry> child <name>` the child. */
function main(memport, entry, format) {
  const [role, name] = process.argv.slice(2);
  (role === 'child' ? child(memport, name, format) : parent(memport, entry, format)).catch((error) => {
    console.error(`smoke ${format} ${role ?? 'parent'} FAILED: ${error.message}`);
    process.exitCode = 1;
  });
}

module.exports = { main };
