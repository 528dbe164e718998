/**
 * memport: share memory between processes without names.
 * @module memport
 */
/**
 * neverthrow's `Result` types and constructors, re-exported so code that handles
 * memport's results can name their types without depending on neverthrow
 * itself. If your project does depend on neverthrow (7.x or 8.x), npm installs
 * one copy for both, so your Results and memport's mix freely.
 */
export { Result, ResultAsync, Ok, Err, ok, err, okAsync, errAsync } from 'neverthrow';
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
  type OutgoingMessage,
  type ListenOptions,
  type ConnectOptions,
} from './channel.js';
export { DEFAULT_LIMITS, type ConnectionLimits, type ListenerLimits } from './limits.js';
export { spawnWithRegions, connectToParent, PARENT_CHANNEL_ENV, PARENT_PID_ENV, type SpawnWithRegionsOptions } from './child.js';
export { Notifier, type NotifierToken } from './notifier.js';
export type { WaitOptions } from './waiter.js';
// Streams (issue 11): the ring, its readers here, in workers and (through connections) in other processes.
export {
  Stream,
  StreamWriter,
  StreamReader,
  ThreadWaker,
  type StreamOptions,
  type StreamWaitOptions,
  type StreamRecord,
  type Slot,
  type Waker,
  type ReaderBundle,
  type WorkerReaderBundle,
} from './stream.js';
export {
  MEMPORT_ERROR_CODES,
  isMemportError,
  type MemportError,
  type MemportErrorOf,
  type MemportErrorCode,
} from './errors.js';
export { openHandles, handlesLeaked, type HandleCensus } from './diagnostics.js';
export { addonSearchPaths } from './native/load.js';
