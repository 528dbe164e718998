// Connections between processes (docs/PROTOCOL.md). The pieces live in
// src/channel/: protocol.ts (names, limits, shared texts), codec.ts (message
// and NACK bodies), connection.ts (one end), admission.ts (the listener's
// handshake), listener.ts (listen), connect.ts (connect).
import { Result, err } from 'neverthrow';
import { toMemportError, type MemportError } from './errors.js';
import { loadNative } from './native/load.js';
import { checkName } from './channel/protocol.js';

export { Connection } from './channel/connection.js';
export { Listener, listen, type ListenOptions } from './channel/listener.js';
export { connect, type ConnectOptions } from './channel/connect.js';
export {
  MESSAGE_WINDOW,
  MAX_DATA_BYTES,
  MAX_REGIONS_PER_MESSAGE,
  DEFAULT_SEND_TIMEOUT_MS,
  type Peer,
  type Message,
  type OutgoingMessage,
} from './channel/protocol.js';

/**
 * The OS-level address a channel name maps to for this user: a socket path
 * under a private directory (Linux) or a pipe name (Windows).
 */
export function channelAddress(name: string): Result<string, MemportError> {
  const bad = checkName(name);
  if (bad) return err(bad);
  return loadNative().andThen((binding) => Result.fromThrowable(() => binding.channelAddress(name), toMemportError)());
}
