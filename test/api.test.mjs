// The package's public surface, for ESM and CommonJS alike.
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as esm from '../dist/index.js';
import * as testing from '../dist/testing.js';

const API = suite('API');
const cjs = createRequire(import.meta.url)('../dist/index.cjs');

API('exports the region API and error helpers', () => {
  for (const mod of [esm, cjs]) {
    assert.type(mod.SharedRegion, 'function');
    assert.type(mod.SharedRegion.create, 'function');
    assert.type(mod.Notifier, 'function');
    assert.type(mod.Notifier.create, 'function');
    assert.type(mod.isMemportError, 'function');
    assert.type(mod.openHandles, 'function');
    assert.type(mod.handlesLeaked, 'function');
    assert.type(mod.addonSearchPaths, 'function');
    assert.ok(mod.MEMPORT_ERROR_CODES.includes('ACCESS_DENIED'));
  }
  assert.type(testing.tryWriteEscalation, 'function');
});

API('every documented error code exists', () => {
  for (const code of ['INVALID_ARGUMENT', 'ACCESS_DENIED', 'NOT_FOUND', 'ALREADY_EXISTS', 'TIMEOUT', 'ABORTED', 'CLOSED',
    'PEER_CLOSED', 'PEER_REJECTED', 'PROTOCOL', 'INVALID_HANDLE', 'UNSUPPORTED', 'OUT_OF_MEMORY', 'OS']) {
    assert.ok(esm.MEMPORT_ERROR_CODES.includes(code), code);
  }
});

API('ESM and CommonJS builds interoperate on the same native addon', () => {
  const region = cjs.SharedRegion.create(64).value;
  region.bytes[0] = 1;
  assert.ok(cjs.isMemportError(esm.SharedRegion.create(-1).error));
  assert.ok(testing.writeSharingAllowed(esm.SharedRegion.create(1).value));
  region.close();
});

API('neverthrow is re-exported, the very functions a user of neverthrow gets', async () => {
  const neverthrow = await import('neverthrow');
  const neverthrowCjs = createRequire(import.meta.url)('neverthrow');
  for (const name of ['Result', 'ResultAsync', 'Ok', 'Err', 'ok', 'err', 'okAsync', 'errAsync']) {
    assert.ok(esm[name] !== undefined && esm[name] === neverthrow[name], `ESM ${name}`);
    assert.ok(cjs[name] !== undefined && cjs[name] === neverthrowCjs[name], `CJS ${name}`);
  }
  // A Result made with the re-exported ok() chains into memport's own results.
  const chained = esm.ok(16).andThen((n) => esm.SharedRegion.create(n));
  assert.ok(chained.isOk());
  assert.is(chained.value.size, 16);
  chained.value.close();
});

API("'memport' and 'memport/testing' resolve through the package's exports, in ESM and CommonJS", async () => {
  // The package's self-reference: exactly what a user's import goes through.
  const self = await import('memport');
  const selfTesting = await import('memport/testing');
  assert.is(self.SharedRegion, esm.SharedRegion, 'memport is dist/index.js');
  assert.is(selfTesting.tryWriteEscalation, testing.tryWriteEscalation, 'memport/testing is dist/testing.js');
  const require = createRequire(import.meta.url);
  assert.is(require('memport').SharedRegion, cjs.SharedRegion, 'require(memport) is dist/index.cjs');
  const cjsTesting = require('memport/testing');
  const region = cjs.SharedRegion.create(8).value;
  const escalation = cjsTesting.tryWriteEscalation(region.toReadOnly().value);
  assert.ok(escalation.isOk(), 'CommonJS testing shares CommonJS index\'s regions');
  region.close();
});

API('the published .d.ts files hold no @internal member and no native binding type', () => {
  const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
  const files = readdirSync(dist).filter((f) => /\.d\.c?ts$/.test(f));
  assert.ok(files.includes('index.d.ts') && files.includes('index.d.cts') && files.includes('testing.d.ts'), files.join(', '));
  for (const file of files) {
    const text = readFileSync(join(dist, file), 'utf8');
    for (const leak of [/@internal/, /\bNative(Region|Connection|Listener|Peer|Binding)\b/, /\bFrameType\b/, /\b_(fromNative|client|server|open)\b/]) {
      assert.not.match(text, leak, `${file} leaks ${leak}`);
    }
  }
  // Stripping Listener's @internal factory must not leave a public constructor behind.
  const index = readFileSync(join(dist, 'index.d.ts'), 'utf8');
  const listener = /declare class Listener[\s\S]*?\n}/.exec(index)?.[0] ?? '';
  assert.match(listener, /private constructor\(\);/);
  // (Declarations index.js shares with testing.js sit in a chunk of their own.)
  const all = files.filter((f) => f.endsWith('.d.ts')).map((f) => readFileSync(join(dist, f), 'utf8')).join('\n');
  for (const name of ['StreamWriter', 'StreamReader']) {
    const declared = new RegExp(`declare class ${name}[\\s\\S]*?\\n}`).exec(all)?.[0] ?? '';
    assert.ok(declared, `${name} is declared`);
    assert.match(declared, /private constructor\(\);/, `${name} has no public constructor`);
  }
});

API.run();
