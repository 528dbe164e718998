// The package's public surface, for ESM and CommonJS alike.
import { createRequire } from 'node:module';
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

API.run();
