/**
 * Reading what a caller passed in, once and without trusting it.
 *
 * Every public function takes its options, messages and arrays through here,
 * so that a throwing getter, a `Proxy`, a revoked proxy, a hostile iterable or
 * an object posing as a platform object ends as `Err(INVALID_ARGUMENT)`
 * instead of an exception, and each option is read exactly once: a getter that
 * answers one thing to validation and another to use cannot slip a value past
 * the checks (the snapshot is what is validated and what is used).
 */
import { types } from 'node:util';
import { err, ok, type Result } from 'neverthrow';
import { memportError, type MemportError } from './errors.js';
import type { WaitOptions } from './waiter.js';

/** The options a caller gave, read once into a plain object; a key that was absent is `undefined`. */
export type OptionsSnapshot<K extends string> = { readonly [P in K]?: unknown };

/**
 * Reads `keys` of `options` once each (inherited properties included, as
 * destructuring would) into a plain object. `undefined` reads as no options.
 * Anything that throws while being read, and a non-object, is
 * `INVALID_ARGUMENT` naming `what` (the function being called).
 */
export function readOptions<K extends string>(options: unknown, keys: readonly K[], what: string): Result<OptionsSnapshot<K>, MemportError> {
  if (options === undefined) return ok({});
  if (options === null || typeof options !== 'object') {
    return err(memportError('INVALID_ARGUMENT', `${what}: options must be an object, got ${describe(options)}`));
  }
  const snapshot: { [P in K]?: unknown } = {};
  let key: K | undefined;
  try {
    for (key of keys) snapshot[key] = (options as Record<K, unknown>)[key];
  } catch (e) {
    return err(memportError('INVALID_ARGUMENT', `${what}: reading options.${String(key)} threw: ${thrownText(e)}`, { cause: e }));
  }
  return ok(snapshot);
}

/**
 * Copies every own enumerable string-keyed property of `options` once (what
 * `{ ...options }` would take), for options passed through to Node
 * (`child_process.spawn`). Same errors as {@link readOptions}.
 */
export function readOwnOptions(options: unknown, what: string): Result<Record<string, unknown>, MemportError> {
  if (options === undefined) return ok({});
  if (options === null || typeof options !== 'object') {
    return err(memportError('INVALID_ARGUMENT', `${what}: options must be an object, got ${describe(options)}`));
  }
  const copy: Record<string, unknown> = {};
  try {
    for (const key of Object.keys(options)) copy[key] = (options as Record<string, unknown>)[key];
  } catch (e) {
    return err(memportError('INVALID_ARGUMENT', `${what}: reading the options threw: ${thrownText(e)}`, { cause: e }));
  }
  return ok(copy);
}

/** Validates the `timeoutMs` and `signal` of a snapshot. */
export function waitOptionsFrom(snapshot: OptionsSnapshot<'timeoutMs' | 'signal'>, what: string): Result<WaitOptions, MemportError> {
  const { timeoutMs, signal } = snapshot;
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && Number.isFinite(timeoutMs) && timeoutMs >= 0 && timeoutMs <= 2 ** 31 - 1)) {
    return err(memportError('INVALID_ARGUMENT', `${what}: timeoutMs must be a number of milliseconds from 0 to 2^31-1, got ${describe(timeoutMs)}`));
  }
  if (signal !== undefined && !isAbortSignal(signal)) {
    return err(memportError('INVALID_ARGUMENT', `${what}: signal must be an AbortSignal, got ${describe(signal)}`));
  }
  return ok({ timeoutMs, signal });
}

/** {@link readOptions} + {@link waitOptionsFrom} for functions whose only options are `timeoutMs` and `signal`. */
export function readWaitOptions(options: unknown, what: string): Result<WaitOptions, MemportError> {
  return readOptions(options, ['timeoutMs', 'signal'], what).andThen((s) => waitOptionsFrom(s, what));
}

/**
 * A real array's elements, copied once by index (never through its iterator,
 * which a caller could replace). A proxy over an array is copied through its
 * traps, inside the guard.
 */
export function readArray(value: unknown, what: string): Result<unknown[], MemportError> {
  try {
    if (!Array.isArray(value)) return err(memportError('INVALID_ARGUMENT', `${what} must be an array, got ${describe(value)}`));
    return ok(Array.prototype.slice.call(value) as unknown[]);
  } catch (e) {
    return err(memportError('INVALID_ARGUMENT', `${what}: reading the array threw: ${thrownText(e)}`, { cause: e }));
  }
}

/** A whole number from 0 to 2^53-1 (a size, an offset, an id, a duration). */
export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A genuine `Uint8Array` (a brand check: false for a proxy or a look-alike). */
export function isUint8Array(value: unknown): value is Uint8Array {
  return types.isUint8Array(value);
}

/** The element count of a genuine typed array, from the intrinsic getter (an own `length` property cannot lie). */
export function typedArrayLength(array: Uint8Array): number {
  return typedArrayLengthGetter.call(array) as number;
}
const typedArrayLengthGetter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype) as object, 'length')!.get!;

// AbortSignal through its intrinsics: the brand-checking getters and
// EventTarget's own methods, so that neither a look-alike nor a genuine
// signal with shadowing own properties can throw inside memport.
const abortedGetter = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')!.get!;
const reasonGetter = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'reason')?.get;
const addListener = EventTarget.prototype.addEventListener;
const removeListener = EventTarget.prototype.removeEventListener;

/**
 * A genuine AbortSignal: its brand check passes, and it is not a Proxy
 * (Node's signals keep their state in symbol-keyed fields, which a Proxy
 * forwards, so a Proxy could pass the check once and throw later).
 */
export function isAbortSignal(value: unknown): value is AbortSignal {
  if (value === null || typeof value !== 'object' || types.isProxy(value)) return false;
  try {
    abortedGetter.call(value);
    return true;
  } catch {
    return false;
  }
}

/** Safe accessors for a signal that passed {@link isAbortSignal}. */
export const abortSignal = {
  aborted: (signal: AbortSignal): boolean => abortedGetter.call(signal) as boolean,
  reason: (signal: AbortSignal): unknown => reasonGetter?.call(signal),
  listen: (signal: AbortSignal, listener: () => void): void => addListener.call(signal, 'abort', listener, { once: true }),
  unlisten: (signal: AbortSignal, listener: () => void): void => removeListener.call(signal, 'abort', listener),
};

/** A short description of a caller's value for an error message; never runs the caller's code. */
export function describe(value: unknown): string {
  switch (typeof value) {
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'string':
      return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
    case 'undefined':
      return 'undefined';
    default:
      return value === null ? 'null' : typeof value;
  }
}

/** The message of something a caller's code threw, read without running more of the caller's code. */
export function thrownText(thrown: unknown): string {
  if (types.isNativeError(thrown) && !types.isProxy(thrown)) {
    const message = Object.getOwnPropertyDescriptor(thrown, 'message');
    if (message && 'value' in message && typeof message.value === 'string') return message.value.slice(0, 300);
    return 'an error';
  }
  return describe(thrown);
}
