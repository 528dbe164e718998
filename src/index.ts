/**
 * memport: share memory between processes without names.
 * @packageDocumentation
 */
export { SharedRegion, type RegionOptions } from './region.js';
export {
  MEMPORT_ERROR_CODES,
  isMemportError,
  type MemportError,
  type MemportErrorCode,
} from './errors.js';
export { openHandles, handlesLeaked, type HandleCensus } from './diagnostics.js';
export { addonSearchPaths } from './native/load.js';
