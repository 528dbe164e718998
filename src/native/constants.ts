/**
 * The values the addon defines once in C++ (the wire format's limits in
 * native/core/frame.h, the per-connection limits' defaults in
 * native/core/inbox.h), read from it when memport is imported. TypeScript
 * keeps no copy of its own.
 *
 * When the addon cannot be loaded every value here is NaN: every memport call
 * then fails with UNSUPPORTED anyway, saying why.
 */
import type { NativePeerLimits, NativeProtocol } from './binding.js';
import { loadNative } from './load.js';

const binding = loadNative();

/** The wire format's limits (docs/PROTOCOL.md). */
export const PROTOCOL: Readonly<NativeProtocol> = binding.match(
  (b) => b.protocol,
  () => ({
    version: NaN,
    maxRegionsPerMessage: NaN,
    maxDataBytes: NaN,
    maxFrameBytes: NaN,
    maxRegionBytes: NaN,
    messageWindow: NaN,
    frameTypes: { welcome: NaN, reject: NaN, message: NaN, ack: NaN, nack: NaN },
  }),
);

/** The per-connection limits' defaults (SECURITY.md, "Resource limits"). */
export const NATIVE_DEFAULT_LIMITS: Readonly<NativePeerLimits> = binding.match(
  (b) => b.defaultLimits,
  () => ({ maxPendingDataBytes: NaN, maxPendingHandles: NaN, maxPendingRegionBytes: NaN, maxOwedControlFrames: NaN, fdReserve: NaN }),
);

/** The write id whose completion the addon never reports (control frames). */
export const UNREPORTED_WRITE: number = binding.match((b) => b.unreportedWrite, () => NaN);
