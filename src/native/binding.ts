/**
 * Exactly what the native addon (native/addon.cc) exports. Nothing else in
 * src/ may assume more of it. Every function may throw a native error object
 * ({ memport: true, code, message, osCode?, syscall? }); callers convert with
 * toMemportError in src/errors.ts.
 */
export interface NativeRegion {
  size(): number;
  readOnly(): boolean;
  /** Opened or created by name, or received flagged named (ABI 10). */
  named(): boolean;
  closed(): boolean;
  /** False once a read-only twin exists: no writable handle may leave the process. */
  writeSharingAllowed(): boolean;
  /**
   * An external ArrayBuffer over [offset, offset + length) of the mapping;
   * length >= 1. With `track` false the native side keeps no reference to it,
   * and the caller must pass it to close() (SharedRegion's whole-region buffer).
   */
  mapArrayBuffer(offset: number, length: number, track?: boolean): ArrayBuffer;
  toReadOnly(): NativeRegion;
  /**
   * Detaches every ArrayBuffer handed out (and `untracked`), closes the OS handle; idempotent.
   * True when the mapping stays in the received-mappings cache (trim it later).
   */
  close(untracked?: ArrayBuffer): boolean;
  /** Test hook: for each OS path to write access, whether it succeeded. */
  tryWriteEscalation(): Record<string, boolean>;
  /** Windows: duplicates the handle into process `pid`; returns the value valid there. */
  duplicateInto(pid: number, readOnly: boolean): number;
  /** The fd (Linux) or HANDLE value (Windows); -1 once closed. */
  osHandle(): number;
  /** A V8-allocated copy of [offset, offset + length). */
  copyOut(offset: number, length: number): Uint8Array;
  /** Copies `bytes` into the region at `offset`. */
  copyIn(offset: number, bytes: Uint8Array): void;
  /** Parks a duplicate of the handle in the process-wide token table; returns the token id. */
  forWorker(): number;
}

/**
 * One notifier (native/core/notifier.h): an eventfd (Linux) or an unnamed
 * auto-reset Event (Windows). The wait queue and wake policy live in
 * src/notifier.ts; this only notifies, consumes and reports readiness.
 */
export interface NativeNotifier {
  /** Makes one notification pending; more before it is taken coalesce. */
  notify(): void;
  /** Takes the pending notification without waiting: true if there was one. */
  tryConsume(): boolean;
  /**
   * Until disarm()/close(), calls `onReady` on the JS thread when a
   * notification may be pending (then call tryConsume). Call again after each
   * report to keep watching. `onReady` must not throw.
   */
  arm(onReady: () => void): void;
  /** Stops the reports; idempotent. */
  disarm(): void;
  /** Whether an armed notifier keeps the event loop alive (default true). */
  setRef(ref: boolean): void;
  /** Stops watching and closes the OS handle; idempotent. */
  close(): void;
  closed(): boolean;
  /** The eventfd (Linux) or Event HANDLE value (Windows); -1 once closed. */
  osHandle(): number;
  /** Windows: a handle with SYNCHRONIZE | EVENT_MODIFY_STATE in process `pid`; its value there. */
  duplicateInto(pid: number): number;
  /** Test hook: an unowned second handle in this process (Windows: with `access`, 0 = the sharing rights). */
  duplicateUnowned(access: number): number;
  /** A second handle to the object, parked for a worker to adopt (adoptNotifierToken); the token's id. */
  forWorker(): number;
}

/** The kernel's word on who is at the other end. */
export interface NativePeer {
  pid: number;
  uid?: number;
  gid?: number;
}

/**
 * Frame types of the wire format (docs/PROTOCOL.md). Kept here as literal
 * types for `write`; test/binding-contract.test.mjs checks them against the
 * addon's `protocol.frameTypes` (native/core/frame.h).
 */
export const FrameType = {
  Welcome: 1,
  Reject: 2,
  Message: 3,
  Ack: 4,
  Nack: 5,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/**
 * A MESSAGE as it arrived: opaque, its regions validated but not mapped, its
 * data raw bytes held natively, all counted against the connection's limits
 * until it is taken or released.
 */
export type NativeInbound = { readonly __nativeInbound: unique symbol };

/** Per-connection bounds, every field given (src/limits.ts fills in defaults). */
export interface NativePeerLimits {
  maxPendingDataBytes: number;
  maxPendingHandles: number;
  maxPendingRegionBytes: number;
  maxOwedControlFrames: number;
  fdReserve: number;
  /** Take regions the peer flagged named (ABI 10); absent = false. */
  acceptNamedRegions?: boolean;
}

export interface NativeConnection {
  peer(): NativePeer;
  /** False once the kernel says the peer process has exited (true where it cannot say). */
  peerRunning(): boolean;
  /**
   * Listener side, after allow() and before WELCOME: throws PROTOCOL if the
   * client sent anything yet (PEER_CLOSED if it left). Reads nothing.
   */
  admit(): void;
  /**
   * Begins reading. `onFrame` gets a MESSAGE as `message` (or, when it passed a
   * bound and was released unmapped, as `refusal`: answer NACK); other frames
   * as `data`.
   */
  start(
    onFrame: (type: number, seq: number, message: NativeInbound | undefined, data: Uint8Array | undefined, refusal: Error | undefined) => void,
    onClosed: (error: Error) => void,
    onWriteDone: (id: number, error: Error | undefined) => void,
    limits: NativePeerLimits,
  ): void;
  /**
   * Maps the message's regions and hands them over with its data; the message
   * is empty afterwards. Throws (every region released) if one cannot be mapped.
   * The last `2 * streams` regions and notifiers are stream readers' members.
   */
  takeMessage(message: NativeInbound): [NativeRegion[], Uint8Array | undefined, NativeNotifier[], number];
  /** Releases a message nobody will receive: handles closed unmapped, budget given back. */
  releaseMessage(message: NativeInbound): void;
  /**
   * Throws a native error (nothing was sent) on immediate failure. True when
   * the frame was handed to the OS already: no onWriteDone follows for `id`.
   * `streams`: the last `2 * streams` regions and notifiers are stream readers' members.
   */
  write(id: number, type: FrameType, seq: number, regions: NativeRegion[], data?: Uint8Array, notifiers?: NativeNotifier[], streams?: number): boolean;
  close(): void;
  /** Whether this connection, while open, keeps the event loop alive (default true). */
  setRef(ref: boolean): void;
}

export interface NativeListener {
  address(): string | undefined;
  close(): void;
  /** Whether this listener, while open, keeps the event loop alive (default true). */
  setRef(ref: boolean): void;
}

/**
 * A class the addon exports; only the addon makes instances. Exported so that
 * the binding's methods can be compared with these declarations
 * (test/binding-contract.test.mjs).
 */
export interface NativeClass<T> {
  readonly prototype: T;
}

/** The wire format's limits, defined once in native/core/frame.h (docs/PROTOCOL.md). */
export interface NativeProtocol {
  /** The protocol version every frame carries. */
  readonly version: number;
  /** Most regions in one MESSAGE. */
  readonly maxRegionsPerMessage: number;
  /** Largest data part of one frame, in bytes. */
  readonly maxDataBytes: number;
  /** Largest frame: header, every descriptor and the data. */
  readonly maxFrameBytes: number;
  /** Largest region a descriptor may declare. */
  readonly maxRegionBytes: number;
  /** MESSAGE frames one sender may have unacknowledged at once. */
  readonly messageWindow: number;
  /** The values of {@link FrameType}, as the addon defines them. */
  readonly frameTypes: NativeFrameTypes;
}

export interface NativeFrameTypes {
  readonly welcome: number;
  readonly reject: number;
  readonly message: number;
  readonly ack: number;
  readonly nack: number;
}

/** A count of the process's open fds or handles; see {@link openHandles}. */
export interface HandleCensus {
  /** Open fds (Linux) or handles (Windows); on Wine, the lowest free handle slot. */
  value: number;
  /** False when `value` is a slot probe rather than a count (Wine). */
  exact: boolean;
}

export interface Binding {
  readonly NativeRegion: NativeClass<NativeRegion>;
  readonly NativeConnection: NativeClass<NativeConnection>;
  readonly NativeListener: NativeClass<NativeListener>;
  readonly NativeNotifier: NativeClass<NativeNotifier>;
  /** The wire format's limits (native/core/frame.h). */
  readonly protocol: NativeProtocol;
  /** The defaults of the per-connection limits (native/core/inbox.h, PeerLimits). */
  readonly defaultLimits: NativePeerLimits;
  /** The write id whose completion is never reported: control frames use it. */
  readonly unreportedWrite: number;
  /** Throws ALREADY_EXISTS etc. before any listener object exists. */
  /** `limits`: the listener keeps `fdReserve` free at accept (Linux); the rest apply to each connection's start(). */
  listen(name: string, onConnection: (connection: NativeConnection) => void, onError: (error: Error) => void, limits?: NativePeerLimits): NativeListener;
  connect(name: string, timeoutMs: number, expectedServerPid: number, callback: (error: Error | undefined, connection?: NativeConnection) => void): void;
  channelAddress(name: string): string;
  regionFromHandle(value: number, size: number, readOnly: boolean): NativeRegion;
  /** Opens a named object; `name` in the OS's spelling (src/region.ts normalises it); size 0 = the object's size. */
  openNamedRegion(name: string, readOnly: boolean, size: number): NativeRegion;
  /** Creates a named object; ALREADY_EXISTS if the name is taken. */
  createNamedRegion(name: string, size: number, readOnly: boolean): NativeRegion;
  /** Linux: shm_unlink. Windows: throws UNSUPPORTED. */
  unlinkNamedRegion(name: string): void;
  /** Bumped whenever this interface changes; the loader refuses a mismatch. */
  readonly abiVersion: number;
  readonly maxRegionSize: number;
  createRegion(size: number): NativeRegion;
  /** A new notifier with nothing pending (ABI 11). */
  createNotifier(): NativeNotifier;
  /**
   * Adopts an fd (Linux) or HANDLE value (Windows) after checking it is a
   * notifier: ALREADY_EXISTS if memport owns it already, INVALID_HANDLE for
   * another kind of object, ACCESS_DENIED for wrong rights (left open then).
   */
  notifierFromHandle(value: number): NativeNotifier;
  /** Adopts a notifier token (NOT_FOUND if adopted or dropped, INVALID_ARGUMENT if a region's). */
  adoptNotifierToken(id: number): NativeNotifier;
  /** Test hook: closes a handle value memport does not own (ALREADY_EXISTS for one it does, INVALID_HANDLE if it was not open). */
  closeUnownedHandle(value: number): void;
  countOpenHandles(): HandleCensus;
  setMaxBufferLength(length: number): void;
  /** Test hook: behave as if external ArrayBuffers were forbidden (Electron's V8 sandbox). */
  forbidExternalBuffers(forbidden: boolean): void;
  /** False once the runtime refused an external ArrayBuffer. */
  externalBuffersAllowed(): boolean;
  /** The cache of received regions' mappings (native/received_mappings.h). */
  receivedMappings(): ReceivedMappingStats;
  /** Test hook: bounds of that cache. */
  setReceivedMappingLimits(entries: number, bytes: number): void;
  /** Unmaps closed regions' parked address ranges whose grace has run out; true while more may follow. */
  releaseParkedMappings(): boolean;
  /** How long a closed region's address range stays parked after its last buffer is gone. */
  readonly parkedGraceMs: number;
  /** How many closed regions' address ranges are parked now. */
  parkedMappings(): number;
  /** Retires kept mappings idle for `idleMs`; true while idle ones remain. */
  trimReceivedMappings(idleMs: number): boolean;
  /** How long a kept mapping may stay idle. */
  readonly receivedMappingIdleMs: number;
  /** Takes a token's handle out of the table and maps it (NOT_FOUND if already taken or dropped). */
  adoptRegionToken(id: number, size: number, readOnly: boolean): NativeRegion;
  /** Closes a token's handle if still pending; true if it was. */
  dropRegionToken(id: number): boolean;
  /**
   * Atomic, sequentially consistent operations on the aligned 32-bit word at
   * `byteOffset` of a region's view (ABI 12; native/atomics_binding.h). Throw
   * INVALID_ARGUMENT for a non-Uint8Array, an offset out of range or a
   * misaligned word. Values are uint32.
   */
  atomicLoad32(view: Uint8Array, byteOffset: number): number;
  atomicStore32(view: Uint8Array, byteOffset: number, value: number): void;
  /** Returns the word as it was; it equals `expected` when the exchange happened. */
  atomicCompareExchange32(view: Uint8Array, byteOffset: number, expected: number, desired: number): number;
  /** Returns the word before adding `delta` (modulo 2^32). */
  atomicAdd32(view: Uint8Array, byteOffset: number, delta: number): number;
}

export interface ReceivedMappingStats {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
}

export const EXPECTED_ABI_VERSION = 15;
