/**
 * Exactly what the native addon (native/addon.cc) exports. Nothing else in
 * src/ may assume more of it. Every function may throw a native error object
 * ({ memport: true, code, message, osCode?, syscall? }); callers convert with
 * toMemportError in src/errors.ts.
 */
export interface NativeRegion {
  size(): number;
  readOnly(): boolean;
  closed(): boolean;
  /** False once a read-only twin exists: no writable handle may leave the process. */
  writeSharingAllowed(): boolean;
  /** An external ArrayBuffer over [offset, offset + length) of the mapping; length >= 1. */
  mapArrayBuffer(offset: number, length: number): ArrayBuffer;
  toReadOnly(): NativeRegion;
  /** Detaches every ArrayBuffer handed out, closes the OS handle; idempotent. */
  close(): void;
  /** Test hook: for each OS path to write access, whether it succeeded. */
  tryWriteEscalation(): Record<string, boolean>;
}

export interface HandleCensus {
  /** Open fds (Linux) or handles (Windows); on Wine, the lowest free handle slot. */
  value: number;
  /** False when `value` is a slot probe rather than a count (Wine). */
  exact: boolean;
}

export interface Binding {
  /** Bumped whenever this interface changes; the loader refuses a mismatch. */
  readonly abiVersion: number;
  readonly maxRegionSize: number;
  createRegion(size: number): NativeRegion;
  countOpenHandles(): HandleCensus;
  setMaxBufferLength(length: number): void;
}

export const EXPECTED_ABI_VERSION = 1;
