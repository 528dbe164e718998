/**
 * memport: share memory between processes without names.
 * @packageDocumentation
 */
export {
  SharedRegion,
  type RegionOptions,
  type OpenNamedOptions,
  type CreateNamedOptions,
  type RegionToken,
  type ForWorkerOptions,
  type TypedArrayConstructor,
  type TypedViewOf,
} from './region.js';
export {
  listen,
  connect,
  channelAddress,
  Connection,
  Listener,
  MESSAGE_WINDOW,
  MAX_DATA_BYTES,
  MAX_REGIONS_PER_MESSAGE,
  DEFAULT_SEND_TIMEOUT_MS,
  type Peer,
  type Message,
  type ListenOptions,
  type ConnectOptions,
} from './channel.js';
export { spawnWithRegions, connectToParent, PARENT_CHANNEL_ENV, PARENT_PID_ENV, type SpawnWithRegionsOptions } from './child.js';
export type { WaitOptions } from './waiter.js';
export {
  MEMPORT_ERROR_CODES,
  isMemportError,
  type MemportError,
  type MemportErrorCode,
} from './errors.js';
export { openHandles, handlesLeaked, type HandleCensus } from './diagnostics.js';
export { addonSearchPaths } from './native/load.js';
