import { constants as bufferConstants } from 'node:buffer';
import { err, ok, Result } from 'neverthrow';
import { memportError, toMemportError, type MemportError } from './errors.js';
import type { Binding, NativeRegion } from './native/binding.js';
import { loadNative } from './native/load.js';
import { describe, isCount, isUint8Array, readOptions, typedArrayLength } from './options.js';
import { parkForWorker, type ForWorkerOptions } from './worker-token.js';

/** Options for {@link SharedRegion.create}. */
export interface RegionOptions {
  /** A label for diagnostics (`util.inspect`, error messages). Never reaches the OS. */
  label?: string;
}

/** Options for {@link SharedRegion.openNamed}. */
export interface OpenNamedOptions {
  /** Open for reading only (writes through views stay private to this process). Default false. */
  readOnly?: boolean;
  /**
   * How many bytes to map. Default: the object's whole size as the OS reports
   * it (Linux exactly; Windows may round it up to whole pages).
   * Larger than the object is `INVALID_ARGUMENT`.
   */
  size?: number;
  /** A label for diagnostics. */
  label?: string;
}

/** Options for {@link SharedRegion.createNamed}. */
export interface CreateNamedOptions {
  /** Keep only a read-only handle in this process (others who open the name may still write). Default false. */
  readOnly?: boolean;
  /** A label for diagnostics. */
  label?: string;
}

/**
 * What {@link SharedRegion.forWorker} returns: a plain, structured-cloneable
 * object to `postMessage` to a `worker_thread` (or keep on this thread), where
 * {@link SharedRegion.fromWorkerToken} turns it into a region of its own. It
 * names a duplicate OS handle parked in this process; the first adoption
 * takes it, so copies of the token (postMessage copies) cannot make two owners.
 */
export interface RegionToken {
  /** Marks a memport region token. */
  readonly memport: 'region-token';
  /** Which parked handle this is. */
  readonly id: number;
  /** The region's size in bytes. */
  readonly size: number;
  /** True for a read-only region's token. */
  readonly readOnly: boolean;
  /** The region's label, if it had one. */
  readonly label?: string;
  /** The OS spelling of a named region's name. */
  readonly name?: string;
}

export type { ForWorkerOptions } from './worker-token.js';

/** The typed-array constructors {@link SharedRegion.typedView} accepts. */
export type TypedArrayConstructor =
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Uint8ClampedArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** The array {@link SharedRegion.typedView} returns for constructor `C` (a `Float32Array` for `Float32Array`). */
export type TypedViewOf<C extends TypedArrayConstructor> = C extends { new (buffer: ArrayBuffer, byteOffset?: number, length?: number): infer A } ? A : never;

const TYPED_ARRAY_CONSTRUCTORS: ReadonlySet<unknown> = new Set<TypedArrayConstructor>([
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array,
  Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array,
]);

/** Longest POSIX shm name glibc accepts, without the leading slash (NAME_MAX minus the terminator and one). */
const MAX_POSIX_NAME_BYTES = 253;
/** Longest Windows object name memport passes on, namespace prefix included (MAX_PATH). */
const MAX_WINDOWS_NAME_CHARS = 260;

/**
 * A shared-memory name in the OS's own spelling, or the rule it broke.
 * Linux: `/name` or `name` (the slash is added, as Python's
 * `SharedMemory(name=…)` does), no other slash. Windows: `Local
ame`,
 * `Global
ame`, or a bare `name` (= `Local
ame`), no other backslash.
 */
function osName(name: unknown): Result<string, MemportError> {
  const bad = (why: string) => err(memportError('INVALID_ARGUMENT', `invalid shared-memory name ${describe(name)}: ${why}`));
  if (typeof name !== 'string') return bad('a name must be a string');
  if (name.includes('\0')) return bad('a name must not contain NUL');
  if (process.platform === 'win32') {
    const prefix = /^(Local|Global)\\/.exec(name)?.[0];
    const rest = prefix === undefined ? name : name.slice(prefix.length);
    const rule = 'on Windows a name is Local\\<name>, Global\\<name> or a bare <name> (= Local\\<name>), where <name> is not empty and has no backslash';
    if (rest.length === 0 || rest.includes('\\')) return bad(rule);
    const full = (prefix ?? 'Local\\') + rest;
    if (full.length > MAX_WINDOWS_NAME_CHARS) return bad(`at most ${MAX_WINDOWS_NAME_CHARS} characters with its Local\\ or Global\\ prefix`);
    return ok(full);
  }
  const rest = name.startsWith('/') ? name.slice(1) : name;
  const rule = 'a POSIX name is /<name> or <name> (the slash is added, as Python does), where <name> is not empty, not . or .., and has no other slash';
  if (rest.length === 0 || rest.includes('/') || rest === '.' || rest === '..') return bad(rule);
  if (Buffer.byteLength(rest) > MAX_POSIX_NAME_BYTES) return bad(`at most ${MAX_POSIX_NAME_BYTES} bytes after the slash`);
  return ok(`/${rest}`);
}

const dispose: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');
const inspect = Symbol.for('nodejs.util.inspect.custom');
const EMPTY = new Uint8Array(0);

/**
 * Internal access to a region's native object, for the channel layer; not
 * exported from the package. `undefined` for anything that is not a genuine
 * SharedRegion — a brand check on the private field, so neither an object
 * made with `Object.create(SharedRegion.prototype)` nor a Proxy passes, and
 * nothing of the caller's runs.
 */
export function nativeOf(region: unknown): NativeRegion | undefined {
  return typeof region === 'object' && region !== null ? nativeAccess(region) : undefined;
}
// Set by SharedRegion's static block: reads the private field (cheaper than
// keeping a WeakMap entry per region, which every create paid for).
let nativeAccess: (region: object) => NativeRegion | undefined;

/**
 * Native housekeeping that must happen some time after close(), on a timer
 * that does not keep the process alive: `step` does the work and says whether
 * more is to come, in which case the timer runs again.
 */
function housekeeping(delayMs: (binding: Binding) => number, step: (binding: Binding) => boolean): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const schedule = (): void => {
    if (timer !== undefined) return;
    const binding = loadNative();
    if (binding.isErr()) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (step(binding.value)) schedule();
    }, delayMs(binding.value));
    timer.unref?.();
  };
  return schedule;
}

/**
 * A received region's mapping can outlive close() in the received-mappings
 * cache (native/received_mappings.h) so that the same memory arriving again
 * needs no new mapping; the ones left idle are retired.
 */
const scheduleReceivedMappingTrim = housekeeping(
  (b) => b.receivedMappingIdleMs,
  (b) => b.trimReceivedMappings(b.receivedMappingIdleMs),
);

/**
 * A closed region's address range stays mapped for a grace period after its
 * last buffer is gone, for native work (an fs.write on a pool thread) that
 * still holds a pointer into it (native/core/shared_memory.h, Mapping::Retire);
 * then it is released.
 */
const scheduleParkedRelease = housekeeping(
  (b) => b.parkedGraceMs + 100,
  (b) => b.releaseParkedMappings(),
);

/**
 * A block of memory shared between processes, with no name anywhere: the OS
 * handle (a sealed memfd on Linux, an unnamed section on Windows) is the only
 * way to reach it. Views are zero-copy `Uint8Array`s over the mapping.
 *
 * ```ts
 * const twin = SharedRegion.create(1 << 20).andThen((region) => {
 *   region.bytes.set([1, 2, 3]);
 *   return region.toReadOnly(); // a second handle the OS won't let anyone write through
 * });
 * if (twin.isErr()) console.error(twin.error.code, twin.error.message);
 * ```
 */
export class SharedRegion implements Disposable {
  /** Largest size `create` accepts (2^47 bytes, the x86-64 user address space). */
  static get maxSize(): number {
    return loadNative().map((b) => b.maxRegionSize).unwrapOr(2 ** 47);
  }

  /**
   * Longest single view this runtime can create (`buffer.constants.MAX_LENGTH`):
   * 4 GiB on Node 20, 2^53 - 1 on Node 22+. Larger regions work; view them in pieces.
   */
  static readonly maxViewLength: number = bufferConstants.MAX_LENGTH;

  /**
   * False where the runtime forbids external ArrayBuffers (Electron with its
   * V8 sandbox): then views (`bytes`, `view`) are `UNSUPPORTED` and
   * `read`/`write` — which copy — are the way in. Known after the first view
   * was attempted.
   */
  static get zeroCopy(): boolean {
    return loadNative().map((b) => b.externalBuffersAllowed()).unwrapOr(false);
  }

  readonly #native: NativeRegion;
  readonly #size: number;
  readonly #readOnly: boolean;
  readonly #label: string | undefined;
  /** The OS spelling of the name, for a region opened or created by name. */
  #name: string | undefined;
  /** The ArrayBuffer over the whole mapping, when the runtime allows one. */
  #whole: ArrayBuffer | undefined;
  #bytes: Uint8Array | undefined;
  #closed = false;

  static {
    nativeAccess = (region) => (#native in region ? region.#native : undefined);
  }

  private constructor(native: NativeRegion, label: string | undefined, size = native.size(), readOnly = native.readOnly()) {
    this.#native = native;
    this.#size = size;
    this.#readOnly = readOnly;
    this.#label = label;
  }

  /** @internal Wraps a native region made elsewhere in memport (e.g. received from a peer). */
  static _fromNative(native: NativeRegion, label?: string): SharedRegion {
    return new SharedRegion(native, label);
  }

  /**
   * Creates a zero-filled, writable region of `size` bytes (1 to 2^47).
   * Pages are committed by the OS when first touched (on Windows the size is
   * charged against the commit limit at once). Fails with `INVALID_ARGUMENT`
   * for a bad size and `OUT_OF_MEMORY` when the OS refuses.
   */
  static create(size: number, options?: RegionOptions): Result<SharedRegion, MemportError> {
    if (!isCount(size) || size < 1) {
      return err(memportError('INVALID_ARGUMENT', `size must be a whole number of bytes from 1 to 2^47, got ${describe(size)}`));
    }
    // Hot path: no options, nothing to read.
    let label: unknown;
    if (options !== undefined) {
      const read = readOptions(options, ['label'], 'SharedRegion.create');
      if (read.isErr()) return err(read.error);
      label = read.value.label;
      if (label !== undefined && typeof label !== 'string') {
        return err(memportError('INVALID_ARGUMENT', `SharedRegion.create: options.label must be a string, got ${describe(label)}`));
      }
    }
    const binding = loadNative();
    if (binding.isErr()) return err(binding.error);
    if (size > binding.value.maxRegionSize) {
      return err(memportError('INVALID_ARGUMENT', `size must be at most 2^47 bytes, got ${size}`));
    }
    // A plain try/catch: creating regions in a loop is a hot path, and the
    // closures of Result.fromThrowable/map were a measurable part of it.
    let native: NativeRegion;
    try {
      native = binding.value.createRegion(size);
    } catch (e) {
      return err(toMemportError(e));
    }
    return ok(new SharedRegion(native, label as string | undefined, size, false));
  }

  /**
   * Adopts a region whose OS handle reached this process outside memport's
   * channels: a Windows handle value (from {@link SharedRegion.duplicateInto}
   * in another process, passed on a command line, say) or an inherited Linux
   * fd. The handle is validated first — a shared-memory object of memport's
   * kind, at least `size` bytes, with exactly the declared access — and only
   * then owned by the region. Errors: `ALREADY_EXISTS` (a live region of this
   * process — made here, received, opened by name, or adopted — already owns
   * that handle: one handle has one owner, or the second `close()` would close
   * whatever the number is reused for; use that region, or
   * {@link SharedRegion.forWorker} for a second handle), `INVALID_HANDLE` (not
   * such an object; on Windows the value is then left untouched, since it may
   * name something else this process owns), `ACCESS_DENIED` (access differs
   * from `readOnly`), `INVALID_ARGUMENT`.
   */
  static fromHandle(value: number, options: { size: number; readOnly?: boolean; label?: string }): Result<SharedRegion, MemportError> {
    if (!isCount(value) || value > 0xffffffff) {
      return err(memportError('INVALID_ARGUMENT', `the handle must be a whole number from 0 to 2^32-1, got ${describe(value)}`));
    }
    const read = readOptions(options, ['size', 'readOnly', 'label'], 'SharedRegion.fromHandle');
    if (read.isErr()) return err(read.error);
    const { size, readOnly = false, label } = read.value;
    if (!isCount(size) || size < 1) {
      return err(memportError('INVALID_ARGUMENT', `SharedRegion.fromHandle: options.size must be the region size in bytes (1 to 2^47), got ${describe(size)}`));
    }
    if (typeof readOnly !== 'boolean') {
      return err(memportError('INVALID_ARGUMENT', `SharedRegion.fromHandle: options.readOnly must be a boolean, got ${describe(readOnly)}`));
    }
    if (label !== undefined && typeof label !== 'string') {
      return err(memportError('INVALID_ARGUMENT', `SharedRegion.fromHandle: options.label must be a string, got ${describe(label)}`));
    }
    return loadNative().andThen((binding) =>
      Result.fromThrowable(() => binding.regionFromHandle(value, size, readOnly), toMemportError)().map(
        (native) => new SharedRegion(native, label),
      ),
    );
  }

  /**
   * Adopts a {@link RegionToken} made by {@link SharedRegion.forWorker},
   * usually in a `worker_thread` the token was posted to. The new region has
   * its own OS handle to the same memory: writes through either are seen by
   * the other, and each side closes its own region when it likes. A token is
   * adopted once: later attempts (a copy of it, or the same one again) fail
   * with `NOT_FOUND`, as does one that timed out or whose maker's thread
   * ended. `INVALID_ARGUMENT` for anything that is not a token as made.
   *
   * ```ts
   * // main thread
   * worker.postMessage(region.forWorker()._unsafeUnwrap());
   * // worker (no top-level await needed)
   * parentPort.once('message', (token) => {
   *   const region = SharedRegion.fromWorkerToken(token)._unsafeUnwrap();
   *   region.bytes[0] = 1; // seen by the main thread
   * });
   * ```
   */
  static fromWorkerToken(token: RegionToken): Result<SharedRegion, MemportError> {
    const bad = (why: string) => err(memportError('INVALID_ARGUMENT', `SharedRegion.fromWorkerToken: ${why}; pass the object region.forWorker() returned, as it arrived`));
    if (token === null || typeof token !== 'object') return bad(`expected a region token, got ${describe(token)}`);
    const read = readOptions(token, ['memport', 'id', 'size', 'readOnly', 'label', 'name'], 'SharedRegion.fromWorkerToken');
    if (read.isErr()) return err(read.error);
    const { memport, id, size, readOnly, label, name } = read.value;
    if (memport !== 'region-token' || !isCount(id) || !isCount(size) || size < 1 || typeof readOnly !== 'boolean') {
      return bad('this is not a region token');
    }
    if ((label !== undefined && typeof label !== 'string') || (name !== undefined && typeof name !== 'string')) {
      return bad('its label and name must be strings');
    }
    return loadNative().andThen((binding) =>
      Result.fromThrowable(() => binding.adoptRegionToken(id, size, readOnly), toMemportError)().map((native) => {
        const region = new SharedRegion(native, label);
        region.#name = name;
        return region;
      }),
    );
  }

  /**
   * Opens an existing **named** shared-memory object — one made by a program
   * that uses names (a Win32 `CreateFileMapping` with a name, Python's
   * `multiprocessing.shared_memory`, Boost.Interprocess). memport's own
   * regions have no name; use this only to talk to such programs (README,
   * "Interop with named shared memory", says what a name costs).
   *
   * Names: Linux `/name` or `name` (as Python spells them); Windows
   * `Local\name`, `Global\name` or `name` (= `Local\name`). The size comes
   * from the OS unless `size` is given; a `size` larger than the object is
   * `INVALID_ARGUMENT`. Errors: `NOT_FOUND` (no such name), `ACCESS_DENIED`
   * (the OS refused; try `readOnly: true`), `INVALID_HANDLE` (the name belongs
   * to something that is not shared memory: a Windows Event or Mutex, a FIFO
   * in /dev/shm), `INVALID_ARGUMENT` (a malformed name, with the rule).
   *
   * On Linux another process with write access can shrink the object:
   * `read`/`write` then fail with `INVALID_ARGUMENT` instead of crashing, but
   * touching a zero-copy view (`bytes`, `view`) past the new end kills the
   * process with SIGBUS. A named region can be sent over a connection; the
   * receiver gets the same live memory, but only if it connected or listened
   * with `acceptNamedRegions: true` (otherwise `send()` fails with
   * `UNSUPPORTED`; {@link SharedRegion.copyToUnnamed} is the alternative).
   *
   * ```ts
   * // Python: SharedMemory(name="telemetry", create=True, size=4096)
   * const region = SharedRegion.openNamed('telemetry', { readOnly: true })._unsafeUnwrap();
   * const header = region.read(0, 16)._unsafeUnwrap();
   * ```
   */
  static openNamed(name: string, options: OpenNamedOptions = {}): Result<SharedRegion, MemportError> {
    if (options === null || typeof options !== 'object') return err(memportError('INVALID_ARGUMENT', 'options must be an object'));
    const { readOnly = false, size, label } = options;
    if (size !== undefined && (!isCount(size) || size < 1)) {
      return err(memportError('INVALID_ARGUMENT', `options.size must be a whole number of bytes from 1 to 2^47, got ${describe(size)}`));
    }
    if (label !== undefined && typeof label !== 'string') return err(memportError('INVALID_ARGUMENT', 'options.label must be a string'));
    return SharedRegion.#byName(name, label, (binding, full) => binding.openNamedRegion(full, readOnly === true, size ?? 0));
  }

  /**
   * Creates a **named** shared-memory object of `size` zero-filled bytes, for
   * a program that will open it by name (a Win32 `OpenFileMapping`, Python's
   * `SharedMemory(name=…)`). Never opens an existing object: if the name is
   * taken — perhaps planted by someone expecting you — it is `ALREADY_EXISTS`.
   * Linux: mode 0600 (this user only), and the name outlives every process
   * until {@link SharedRegion.unlinkNamed}. Windows: the default security of
   * this process (this user, SYSTEM, administrators); the name goes with the
   * last handle. A `Global\` name needs `SeCreateGlobalPrivilege`
   * (`ACCESS_DENIED` otherwise).
   *
   * ```ts
   * const region = SharedRegion.createNamed('Local\\MyFileMappingObject', 256)._unsafeUnwrap();
   * region.write(0, new TextEncoder().encode('Message from memport'));
   * ```
   */
  static createNamed(name: string, size: number, options: CreateNamedOptions = {}): Result<SharedRegion, MemportError> {
    if (!isCount(size) || size < 1) {
      return err(memportError('INVALID_ARGUMENT', `size must be a whole number of bytes from 1 to 2^47, got ${describe(size)}`));
    }
    if (options === null || typeof options !== 'object') return err(memportError('INVALID_ARGUMENT', 'options must be an object'));
    const { readOnly = false, label } = options;
    if (label !== undefined && typeof label !== 'string') return err(memportError('INVALID_ARGUMENT', 'options.label must be a string'));
    return SharedRegion.#byName(name, label, (binding, full) => binding.createNamedRegion(full, size, readOnly === true));
  }

  /** Checks and normalises `name`, then wraps what `make` opens or creates under it as a named region. */
  static #byName(name: string, label: string | undefined, make: (binding: Binding, full: string) => NativeRegion): Result<SharedRegion, MemportError> {
    return osName(name).andThen((full) =>
      loadNative().andThen((binding) =>
        Result.fromThrowable(() => make(binding, full), toMemportError)().map((native) => {
          const region = new SharedRegion(native, label);
          region.#name = full;
          return region;
        }),
      ),
    );
  }

  /**
   * Linux: removes a name (`shm_unlink`), as Python's `SharedMemory.unlink()`
   * does; the memory lives on while anyone has it open or mapped. `NOT_FOUND`
   * if no such name. Windows: always `UNSUPPORTED` — a name there goes away
   * with the last handle to it, so close the regions instead.
   */
  static unlinkNamed(name: string): Result<void, MemportError> {
    return osName(name).andThen((full) =>
      loadNative().andThen((binding) => Result.fromThrowable(() => binding.unlinkNamedRegion(full), toMemportError)()),
    );
  }

  /**
   * True for a region opened or created by name ({@link SharedRegion.openNamed},
   * {@link SharedRegion.createNamed}), and for one received over a connection
   * that the sender had opened by name (accepted only with
   * `acceptNamedRegions: true`): such memory has none of the guarantees of
   * memport's own (README, "Interop with named shared memory").
   */
  get named(): boolean {
    return this.#name !== undefined || this.#native.named();
  }

  /**
   * The name in the OS's spelling (`/x` on Linux, `Local\x` on Windows) for a
   * region opened or created by name here; otherwise undefined — also for a
   * named region received over a connection, whose name memport does not pass
   * on (though the OS may reveal it: SECURITY.md, "Named shared memory").
   */
  get name(): string | undefined {
    return this.#name;
  }

  /**
   * A new unnamed memport region holding a copy of this region's bytes as
   * they are now — the way to hand what a named region holds to a memport
   * peer that does not accept named regions (`acceptNamedRegions`). Later writes on either side are
   * not seen by the other. Works for any region. Errors: `CLOSED`,
   * `OUT_OF_MEMORY`, and `INVALID_ARGUMENT` if another process shrank a named
   * object under this region (nothing is returned then).
   */
  copyToUnnamed(options: RegionOptions = {}): Result<SharedRegion, MemportError> {
    if (this.#closed) return err(memportError('CLOSED', 'the region is closed'));
    const created = SharedRegion.create(this.#size, options);
    if (created.isErr()) return created;
    const copy = created.value;
    // In pieces, so no single buffer exceeds this Node's limit; read() checks
    // a named object's current size, so a shrunk one fails instead of faulting.
    const chunk = Math.min(64 * 1024 * 1024, SharedRegion.maxViewLength);
    for (let offset = 0; offset < this.#size; offset += chunk) {
      const piece = this.read(offset, Math.min(chunk, this.#size - offset)).andThen((bytes) => copy.write(offset, bytes));
      if (piece.isErr()) {
        copy.close();
        return err(piece.error);
      }
    }
    return ok(copy);
  }

  /**
   * The way to use this region in a `worker_thread` without copying. Posting
   * or transferring `bytes.buffer` to a Worker does not share it: the worker
   * gets a copy, and its writes never reach the region. Post this token
   * instead; the worker adopts it with {@link SharedRegion.fromWorkerToken}
   * and gets its own region over the same memory (a duplicate OS handle, same
   * size and mode): writes are seen both ways, each side closes its region
   * independently, and nothing is owned twice.
   *
   * Until adopted, the duplicate handle is held by memport; it is closed if
   * nobody adopts the token within `timeoutMs` (default 60 s) or when this
   * thread ends. Make one token per worker. Errors: `CLOSED`,
   * `ACCESS_DENIED` (a writable region that has a read-only twin: Linux
   * refuses new writable mappings of sealed memory; share `twin.forWorker()`),
   * `INVALID_ARGUMENT` (options), `OS`/`OUT_OF_MEMORY` when the OS refuses a
   * duplicate (out of fds or handles).
   */
  forWorker(options?: ForWorkerOptions): Result<RegionToken, MemportError> {
    if (this.#closed) return err(memportError('CLOSED', 'the region is closed'));
    return parkForWorker(options, 'region.forWorker', () => this.#native.forWorker()).map((id) => {
      const token: RegionToken = { memport: 'region-token', id, size: this.#size, readOnly: this.#readOnly };
      return { ...token, ...(this.#label === undefined ? {} : { label: this.#label }), ...(this.#name === undefined ? {} : { name: this.#name }) };
    });
  }

  /**
   * Windows: duplicates this region's section handle into process `pid` and
   * returns the handle value valid there — the classic Win32 way to share
   * memory without a name, for callers who carry the value themselves. Pass
   * `readOnly: true` to give read access only (always so for a read-only
   * region). The receiver adopts it with `SharedRegion.fromHandle`.
   * Elsewhere: `UNSUPPORTED`. Prefer `Connection.send`, which also handles
   * acknowledgement and revocation.
   */
  duplicateInto(pid: number, options?: { readOnly?: boolean }): Result<number, MemportError> {
    if (this.#closed) return err(memportError('CLOSED', 'the region is closed'));
    if (!isCount(pid) || pid < 1 || pid > 0xffffffff) {
      return err(memportError('INVALID_ARGUMENT', `pid must be a positive integer, got ${describe(pid)}`));
    }
    const read = readOptions(options, ['readOnly'], 'region.duplicateInto');
    if (read.isErr()) return err(read.error);
    const { readOnly = false } = read.value;
    if (typeof readOnly !== 'boolean') {
      return err(memportError('INVALID_ARGUMENT', `region.duplicateInto: options.readOnly must be a boolean, got ${describe(readOnly)}`));
    }
    return Result.fromThrowable(() => this.#native.duplicateInto(pid, readOnly), toMemportError)();
  }

  /**
   * This process's OS handle for the region — the fd on Linux, the HANDLE
   * value on Windows — or -1 once closed. Still owned by the region. For
   * handing the fd to a child through `spawn`'s `stdio` on Linux (the child
   * adopts it with `SharedRegion.fromHandle(3, …)`); prefer `spawnWithRegions`.
   */
  get osHandle(): number {
    return this.#closed ? -1 : this.#native.osHandle();
  }

  /** Size in bytes. Unchanged by `close()`. */
  get size(): number {
    return this.#size;
  }

  /** True for a read-only handle: writes through its views stay private to this process. */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * A `Uint8Array` over the whole region, no copy; zero-length after `close()`.
   *
   * A region longer than {@link SharedRegion.maxViewLength} (over 4 GiB on
   * Node 20) cannot be one typed array: then this getter throws a
   * `MemportError` with code `UNSUPPORTED` rather than return a truncated
   * array. Use `view(offset, length)` for such regions (or Node 22+).
   */
  get bytes(): Uint8Array {
    if (this.#closed) return EMPTY;
    if (this.#bytes === undefined) {
      if (this.#size > SharedRegion.maxViewLength) {
        throw memportError(
          'UNSUPPORTED',
          `this region is ${this.#size} bytes but this Node.js limits a typed array to ${SharedRegion.maxViewLength}; use region.view(offset, length) for parts of it, or Node 22+`,
        );
      }
      // Without view()'s Result wrapping: the first view is a hot path.
      this.#bytes = new Uint8Array(this.#wholeBuffer());
    }
    return this.#bytes;
  }

  /**
   * A zero-copy `Uint8Array` over `length` bytes at `offset` (any alignment).
   * `length` defaults to the rest of the region. Views become zero-length
   * when the region is closed. Its `.buffer` is the whole mapping, not just
   * these bytes: for numbers, use {@link SharedRegion.typedView}.
   *
   * Errors: `INVALID_ARGUMENT` (out of range, not whole numbers), `CLOSED`,
   * `UNSUPPORTED` (longer than {@link SharedRegion.maxViewLength}).
   */
  view(offset = 0, length?: number): Result<Uint8Array, MemportError> {
    return this.#window(Uint8Array, offset, length);
  }

  /**
   * A zero-copy typed array of `length` elements (default: the rest of the
   * region, which must then be whole elements) starting `byteOffset` bytes
   * into the region — the safe form of `new Float32Array(view.buffer)`, which
   * is silently wrong because a view's `.buffer` is the whole mapping.
   * `type` is one of the typed-array constructors (`Float32Array`,
   * `BigInt64Array`, …; not `DataView`, which takes no element type: wrap a
   * {@link SharedRegion.view} as `new DataView(v.buffer, v.byteOffset, v.byteLength)`).
   * `byteOffset` must be a multiple of `type.BYTES_PER_ELEMENT` (the mapping
   * itself is page-aligned). Like `view()`: becomes zero-length on close, and
   * on a read-only region writes stay private to this process.
   *
   * Errors: `INVALID_ARGUMENT` (not a typed-array constructor, misaligned,
   * out of range), `CLOSED`, `UNSUPPORTED` (longer than
   * {@link SharedRegion.maxViewLength} bytes).
   *
   * ```ts
   * const samples = region.typedView(Float32Array, 64, 256)._unsafeUnwrap(); // Float32Array
   * samples[0] = 0.5; // bytes 64..67 of the region
   * ```
   */
  typedView<C extends TypedArrayConstructor>(type: C, byteOffset = 0, length?: number): Result<TypedViewOf<C>, MemportError> {
    return this.#window(type, byteOffset, length);
  }

  /** view() and typedView(): the checks once, for any element size. */
  #window<C extends TypedArrayConstructor>(type: C, byteOffset: number, length: number | undefined): Result<TypedViewOf<C>, MemportError> {
    if (this.#closed) return err(memportError('CLOSED', 'the region is closed'));
    if (!TYPED_ARRAY_CONSTRUCTORS.has(type)) {
      return err(memportError('INVALID_ARGUMENT', `type must be a typed-array constructor such as Float32Array or BigInt64Array, got ${describe(type)}` +
        (type === (DataView as unknown) ? '; for a DataView, wrap region.view(offset, length): new DataView(v.buffer, v.byteOffset, v.byteLength)' : '')));
    }
    const unit = type.BYTES_PER_ELEMENT;
    const elements = unit === 1 ? 'bytes' : `${type.name} elements`;
    if (!isCount(byteOffset) || byteOffset > this.#size) {
      return err(memportError('INVALID_ARGUMENT', `offset must be a whole number from 0 to ${this.#size}, got ${describe(byteOffset)}`));
    }
    if (byteOffset % unit !== 0) {
      return err(memportError('INVALID_ARGUMENT', `byteOffset ${byteOffset} is not a multiple of ${unit}, as a ${type.name} needs; choose an aligned offset, or copy the bytes with region.read`));
    }
    const room = Math.floor((this.#size - byteOffset) / unit);
    if (length === undefined && (this.#size - byteOffset) % unit !== 0) {
      return err(memportError('INVALID_ARGUMENT', `the ${this.#size - byteOffset} bytes after offset ${byteOffset} are not whole ${elements}; pass a length (at most ${room})`));
    }
    const count = length === undefined ? room : length;
    // Compared in elements, so a huge length cannot overflow into range.
    if (!isCount(count) || count > room) {
      return err(memportError('INVALID_ARGUMENT', `length must be a whole number from 0 to ${room} (the ${elements} after offset ${byteOffset}), got ${describe(length)}`));
    }
    const bytes = count * unit;
    if (bytes === 0) return ok(new type(0) as TypedViewOf<C>);
    if (bytes > SharedRegion.maxViewLength) {
      return err(memportError('UNSUPPORTED', `a view of ${bytes} bytes exceeds this Node.js typed-array limit of ${SharedRegion.maxViewLength}; view it in pieces or use Node 22+`));
    }
    try {
      // Over the whole-mapping buffer where one can exist, so close() detaches
      // it with the rest; past that, a tracked buffer of its own.
      const buffer = this.#size <= SharedRegion.maxViewLength ? this.#wholeBuffer() : this.#native.mapArrayBuffer(byteOffset, bytes);
      const start = this.#size <= SharedRegion.maxViewLength ? byteOffset : 0;
      return ok(new type(buffer, start, count) as TypedViewOf<C>);
    } catch (e) {
      return err(toMemportError(e));
    }
  }

  /**
   * One ArrayBuffer over the whole mapping (regions a typed array can span);
   * every view is a window on it, so close() detaches them all at once. The
   * native side keeps no reference to it: this region holds it until close()
   * hands it back. Throws a MemportError.
   */
  #wholeBuffer(): ArrayBuffer {
    if (this.#whole === undefined) {
      try {
        this.#whole = this.#native.mapArrayBuffer(0, this.#size, false);
      } catch (e) {
        throw toMemportError(e);
      }
    }
    return this.#whole;
  }

  /**
   * Copies `length` bytes at `offset` out of the region into a new
   * `Uint8Array`. Works everywhere, including runtimes without zero-copy views
   * (see {@link SharedRegion.zeroCopy}). Errors: `INVALID_ARGUMENT`, `CLOSED`.
   */
  read(offset: number, length: number): Result<Uint8Array, MemportError> {
    const range = this.#checkRange(offset, length);
    if (range) return err(range);
    return Result.fromThrowable(() => this.#native.copyOut(offset, length), toMemportError)();
  }

  /**
   * Copies `bytes` into the region at `offset`. Works everywhere (see
   * {@link SharedRegion.zeroCopy}); on a read-only region the bytes stay
   * private to this process, as with a view. Errors: `INVALID_ARGUMENT`, `CLOSED`.
   */
  write(offset: number, bytes: Uint8Array): Result<void, MemportError> {
    // A brand check and the intrinsic length: a Proxy or an own `length`
    // property cannot make the range check and the copy disagree.
    if (!isUint8Array(bytes)) return err(memportError('INVALID_ARGUMENT', `bytes must be a Uint8Array, got ${describe(bytes)}`));
    const range = this.#checkRange(offset, typedArrayLength(bytes));
    if (range) return err(range);
    return Result.fromThrowable(() => this.#native.copyIn(offset, bytes), toMemportError)();
  }

  #checkRange(offset: unknown, length: unknown): MemportError | undefined {
    if (this.#closed) return memportError('CLOSED', 'the region is closed');
    if (!isCount(offset) || offset > this.#size) {
      return memportError('INVALID_ARGUMENT', `offset must be a whole number from 0 to ${this.#size}, got ${describe(offset)}`);
    }
    if (!isCount(length) || length > this.#size - offset) {
      return memportError('INVALID_ARGUMENT', `length must be a whole number from 0 to ${this.#size - offset}, got ${describe(length)}`);
    }
    if (length > SharedRegion.maxViewLength) {
      return memportError('UNSUPPORTED', `${length} bytes exceed this Node.js buffer limit of ${SharedRegion.maxViewLength}; copy in pieces`);
    }
    return undefined;
  }

  /**
   * A second region over the same memory, through a handle the OS will not let
   * anyone use for writing (Linux: `F_SEAL_FUTURE_WRITE` and an `O_RDONLY` fd;
   * Windows: a handle with `FILE_MAP_READ | SECTION_QUERY` on a section whose
   * DACL refuses any increase). Writes through this region's views never
   * reach the shared bytes; later writes through the writable region are seen.
   *
   * Afterwards no writable handle to this memory can be given out (sending it
   * writable fails with `ACCESS_DENIED`), though this region stays writable.
   */
  toReadOnly(): Result<SharedRegion, MemportError> {
    if (this.#closed) return err(memportError('CLOSED', 'the region is closed'));
    return Result.fromThrowable(() => this.#native.toReadOnly(), toMemportError)().map(
      (native) => new SharedRegion(native, this.#label),
    );
  }

  /**
   * Releases the region. Idempotent. Every view handed out becomes
   * zero-length (detached) instead of dangling; the OS handle is closed now and
   * the mapping as soon as the runtime has dropped the detached buffers.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#native.close(this.#whole)) scheduleReceivedMappingTrim();
    scheduleParkedRelease();
    this.#whole = undefined;
    this.#bytes = undefined;
  }

  /** Closes the region (`using region = …`); same as {@link SharedRegion.close}. */
  [dispose](): void {
    this.close();
  }

  /** What `util.inspect` and `console.log` show: label, size and state, never the bytes. */
  [inspect](): string {
    const state = this.#closed ? 'closed' : this.#readOnly ? 'read-only' : 'writable';
    const name = this.#name === undefined ? '' : `name: ${JSON.stringify(this.#name)}, `;
    return `SharedRegion { ${this.#label ? `label: ${JSON.stringify(this.#label)}, ` : ''}${name}size: ${this.#size}, ${state} }`;
  }
}
