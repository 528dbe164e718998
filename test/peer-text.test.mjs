// Text from a peer reaches an error message only with its control characters
// escaped, and a client refused by a memport listener learns nothing but the
// fact (the listener's own exceptions stay with the listener: channel.test.mjs).
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { channelAddress, connect, listen } from '../dist/index.js';
import { expectErr, isLinux, underWine, unwrap } from './helpers.mjs';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const uniqueName = (what) => `${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const WAIT = underWine ? 20_000 : 5_000;
// Anything that could forge a log line, drive a terminal or reorder text.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const Text = suite('text from a peer');

Text('Linux: a REJECT reason with control characters, escapes and bidi overrides reaches error.message escaped', async () => {
  if (!isLinux) return; // a hand-made listener speaking the protocol; Python's SOCK_SEQPACKET
  const name = uniqueName('reject-text');
  const path = unwrap(channelAddress(name));
  unwrap(await listen(name)).close(); // creates the private directory
  const reason = 'go away\x1b[2J\x1b[31m\nFAKE LOG LINE\r\u202eevil\u0007\u0085' + 'x'.repeat(1000);
  const listener = spawn('python3', [join(fixtures, 'rejecting-listener.py'), path, Buffer.from(reason).toString('hex'), '10'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  listener.stdout.on('data', (d) => (out += d));
  try {
    for (let i = 0; i < 200 && !/^READY$/m.test(out); i++) await new Promise((r) => setTimeout(r, 25));
    const error = expectErr(await connect(name, { timeoutMs: WAIT }), 'PEER_REJECTED', 'connect');
    assert.not.match(error.message, UNSAFE, `no control character reaches the message: ${JSON.stringify(error.message)}`);
    assert.ok(error.message.includes('go away\\u{1b}[2J\\u{1b}[31m\\u{a}FAKE LOG LINE\\u{d}\\u{202e}evil\\u{7}\\u{85}'), error.message);
    assert.ok(error.message.length < 400, `cut to a bounded length (${error.message.length})`);
  } finally {
    listener.kill();
    rmSync(path, { force: true });
  }
});

Text('a client refused by a memport listener gets one fixed text, whatever the policy said', async () => {
  const name = uniqueName('fixed');
  const listener = unwrap(await listen(name, { allow: () => false }));
  const first = expectErr(await connect(name, { timeoutMs: WAIT }), 'PEER_REJECTED', 'refused');
  assert.is(first.message, 'the listener refused this client: not admitted by the listener');
  listener.close();
});

Text.run();
