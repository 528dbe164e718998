// ESM entry of the install smoke test (see smoke-core.cjs).
import { fileURLToPath } from 'node:url';
import * as memport from 'memport';
import core from './smoke-core.cjs';

core.main(memport, fileURLToPath(import.meta.url), 'esm');
