import { err, ok, type Result } from 'neverthrow';
import { memportError, type MemportError } from './errors.js';
import { describe } from './options.js';
import type { NativePeerLimits } from './native/binding.js';
import { NATIVE_DEFAULT_LIMITS } from './native/constants.js';

/**
 * Bounds on what the peer of one connection can make this process hold.
 * Every field is optional; the defaults ({@link DEFAULT_LIMITS}) are safe for
 * untrusted peers and documented in SECURITY.md ("Resource limits"). A
 * message that would pass one of the `maxPending*` bounds is refused: its
 * handles are closed unmapped, and the sender's `send()` fails with
 * `OUT_OF_MEMORY`; the connection goes on.
 */
export interface ConnectionLimits {
  /** Data bytes of messages that arrived but were not received yet (kept raw; parsed by `receive()`). Default 4 MiB. */
  maxPendingDataBytes?: number;
  /** Handles (fds / section handles) in messages not received yet. Default 1024. */
  maxPendingHandles?: number;
  /** Total declared size of the regions in messages not received yet (they are mapped only by `receive()`). Default 64 GiB. */
  maxPendingRegionBytes?: number;
  /**
   * ACK/NACK frames queued for a peer that does not read them. Past this the
   * peer is dropped (the connection ends with `PROTOCOL`). Default 1024.
   */
  maxOwedControlFrames?: number;
  /**
   * Linux: fds kept free for this process. A message whose fds would leave
   * fewer is refused (and a client that would is not accepted), so the
   * application's own `SharedRegion.create` keeps working. Default 256.
   */
  fdReserve?: number;
}

/** {@link ConnectionLimits} for each accepted connection, plus bounds on connections. */
export interface ListenerLimits extends ConnectionLimits {
  /** Connections open at once (admitted or waiting for `allow`). Past it a client is refused (`PEER_REJECTED`). Default 1024. */
  maxConnections?: number;
  /** Connections open at once from one process (by the kernel's PID). Default 64. */
  maxConnectionsPerPeer?: number;
}

/** Every limit, resolved, and whether the connection takes named regions (`acceptNamedRegions`). */
export type ResolvedLimits = Required<ListenerLimits> & { acceptNamedRegions: boolean };

// acceptNamedRegions is an option, not a limit: not part of DEFAULT_LIMITS.
const { acceptNamedRegions: _notALimit, ...nativeDefaults } = NATIVE_DEFAULT_LIMITS;
/**
 * The defaults of every limit (SECURITY.md, "Resource limits"): 4 MiB of
 * pending data, 1024 pending handles, 64 GiB of pending regions, 1024 owed
 * control frames, 256 fds kept free, 1024 connections, 64 per peer. The
 * per-connection ones come from the addon (native/core/inbox.h, PeerLimits),
 * which defines them once; the connection counts are TypeScript's own.
 */
export const DEFAULT_LIMITS: Readonly<Required<ListenerLimits>> = Object.freeze({
  ...nativeDefaults,
  maxConnections: 1024,
  maxConnectionsPerPeer: 64,
});

const CONNECTION_KEYS = ['maxPendingDataBytes', 'maxPendingHandles', 'maxPendingRegionBytes', 'maxOwedControlFrames', 'fdReserve'] as const;
const LISTENER_KEYS = [...CONNECTION_KEYS, 'maxConnections', 'maxConnectionsPerPeer'] as const;
/** Limits that must allow at least one of their kind. */
const AT_LEAST_ONE = new Set<string>(['maxOwedControlFrames', 'maxConnections', 'maxConnectionsPerPeer']);

/**
 * Reads `options.limits` (each property once, inside a guard, so a throwing
 * getter or a Proxy yields `INVALID_ARGUMENT` instead of an exception) and
 * fills in the defaults. `forListener` also accepts the connection-count bounds.
 */
export function readLimits(value: unknown, forListener: boolean, acceptNamedRegions?: unknown): Result<ResolvedLimits, MemportError> {
  if (acceptNamedRegions !== undefined && typeof acceptNamedRegions !== 'boolean') {
    return err(memportError('INVALID_ARGUMENT', `${forListener ? 'listen' : 'connect'}: options.acceptNamedRegions must be true or false, got ${describe(acceptNamedRegions)}`));
  }
  const resolved: ResolvedLimits = { ...DEFAULT_LIMITS, acceptNamedRegions: acceptNamedRegions === true };
  if (value === undefined) return ok(resolved);
  if (value === null || typeof value !== 'object') return err(memportError('INVALID_ARGUMENT', 'options.limits must be an object'));
  const keys: readonly string[] = forListener ? LISTENER_KEYS : CONNECTION_KEYS;
  try {
    for (const key of Object.keys(value)) {
      if (!keys.includes(key)) {
        return err(memportError('INVALID_ARGUMENT', `options.limits.${key} is not a limit${forListener ? '' : ' of connect()'}; known: ${keys.join(', ')}`));
      }
    }
    for (const key of keys) {
      const given: unknown = (value as Record<string, unknown>)[key];
      if (given === undefined) continue;
      const least = AT_LEAST_ONE.has(key) ? 1 : 0;
      if (typeof given !== 'number' || !Number.isSafeInteger(given) || given < least) {
        return err(memportError('INVALID_ARGUMENT', `options.limits.${key} must be an integer ≥ ${least}, got ${typeof given === 'number' ? given : typeof given}`));
      }
      (resolved as unknown as Record<string, number>)[key] = given;
    }
  } catch {
    return err(memportError('INVALID_ARGUMENT', 'options.limits could not be read'));
  }
  return ok(resolved);
}

/** The per-connection part, as the native side takes it. */
export function nativeLimits(limits: ResolvedLimits): NativePeerLimits {
  const { maxPendingDataBytes, maxPendingHandles, maxPendingRegionBytes, maxOwedControlFrames, fdReserve, acceptNamedRegions } = limits;
  return { maxPendingDataBytes, maxPendingHandles, maxPendingRegionBytes, maxOwedControlFrames, fdReserve, acceptNamedRegions };
}
