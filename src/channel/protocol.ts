// What both ends of a connection agree on: names, frame limits, the message
// window, and the few texts that cross the wire (docs/PROTOCOL.md).
import { memportError, type MemportError } from '../errors.js';
import { PROTOCOL, UNREPORTED_WRITE } from '../native/constants.js';
import { describe } from '../options.js';
import type { Notifier } from '../notifier.js';
import type { SharedRegion } from '../region.js';
import type { StreamReader, StreamWriter } from '../stream.js';

/** Who is at the other end, as the kernel reports it (never taken from a message). */
export interface Peer {
  /** Process ID (SO_PEERCRED on Linux, GetNamedPipeClient/ServerProcessId on Windows). */
  readonly pid: number;
  /** User ID (Linux only). */
  readonly uid?: number;
  /** Group ID (Linux only). */
  readonly gid?: number;
}

/** What one `send` carries and one `receive` returns. */
export interface Message<T = unknown> {
  /** Regions whose handles travel with the message; the receiver owns its copies. */
  regions: SharedRegion[];
  /**
   * Notifiers whose handles travel with the message; the receiver owns its
   * copies, which wake and are woken by the sender's (and every other copy).
   * Regions and notifiers together: at most 64 per message.
   */
  notifiers: Notifier[];
  /**
   * Stream readers handed over with the message, one per writer the sender
   * put in `streams`; the receiver owns them. A reader lives as long as the
   * connection it came on: keep the connection open while reading. Each
   * takes four of the message's 64 handles.
   */
  streams: StreamReader[];
  /** Any JSON-serialisable value (at most 128 KiB once serialised), or undefined. */
  data: T;
}

/** What one `send` takes: every field optional. */
export interface OutgoingMessage<T = unknown> {
  /** Regions to hand over (the receiver gets its own handles; yours stay usable). */
  regions?: SharedRegion[];
  /** Notifiers to hand over. */
  notifiers?: Notifier[];
  /**
   * Stream writers: the peer gets a new reader of each (`message.streams`),
   * which reads from the next record published on. The reader is served as
   * long as this connection is open: when it closes (either side, or a
   * process exits), the writer drops it and its slots come back.
   */
  streams?: StreamWriter[];
  /** Any JSON-serialisable value (at most 128 KiB once serialised). */
  data?: T;
}

/**
 * The message window (256; defined by the addon, native/core/frame.h). A receiver acknowledges a message as soon as its
 * process holds it (validated into its inbox), while fewer than this many
 * acknowledged messages wait for its application's `receive()`; so at most
 * this many MESSAGE frames await acknowledgement in each direction, and a
 * receiver holds at most twice this many unreceived messages.
 */
export const MESSAGE_WINDOW: number = PROTOCOL.messageWindow;
/** Largest serialised `data` of one message (128 KiB). Defined by the addon (native/core/frame.h). */
export const MAX_DATA_BYTES: number = PROTOCOL.maxDataBytes;
/** Most regions in one message (64). Defined by the addon (native/core/frame.h). */
export const MAX_REGIONS_PER_MESSAGE: number = PROTOCOL.maxRegionsPerMessage;
/** How long `connect` waits in all, when the caller gives no `timeoutMs`. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/**
 * How long `send` waits for the peer process to take a message when the
 * caller gives no `timeoutMs`: a peer that stopped reading (its event loop
 * blocked, or a full window of unreceived messages) ends the send with
 * `TIMEOUT` instead of leaving it pending for ever. Pass `timeoutMs` (up to
 * 2^31-1 ms) to wait longer.
 */
export const DEFAULT_SEND_TIMEOUT_MS = 30_000;
let defaultSendTimeoutMs = DEFAULT_SEND_TIMEOUT_MS;
/** @internal Test hook (memport/testing): the default send timeout. */
export function _setDefaultSendTimeout(ms: number): void {
  defaultSendTimeoutMs = ms;
}
/** @internal */
export function defaultSendTimeout(): number {
  return defaultSendTimeoutMs;
}
/** What a refused client is told, whatever the reason: nothing about the listener's policy or its errors. */
export const REFUSAL_TEXT = 'not admitted by the listener';
/** Write id of control frames: the native side reports no completion for it. */
export { UNREPORTED_WRITE };

const NAME_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

/** Why `name` is not a channel name, or undefined. */
export function checkName(name: unknown): MemportError | undefined {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    return memportError('INVALID_ARGUMENT', `a channel name is 1 to 64 characters of A-Z a-z 0-9 . _ - not starting with '.', got ${describe(name)}`);
  }
  return undefined;
}
