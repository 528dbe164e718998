import { types } from 'node:util';
/**
 * Every expected failure in memport is a `MemportError`: a real `Error`
 * (with a stack) discriminated on `code`. Narrow on `code` to handle a case:
 *
 * ```ts
 * const r = SharedRegion.create(size);
 * if (r.isErr() && r.error.code === 'OUT_OF_MEMORY') shrinkAndRetry();
 * ```
 */
export const MEMPORT_ERROR_CODES = [
  'INVALID_ARGUMENT',
  'ACCESS_DENIED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'TIMEOUT',
  'ABORTED',
  'CLOSED',
  'PEER_CLOSED',
  'PEER_REJECTED',
  'PROTOCOL',
  'INVALID_HANDLE',
  'UNSUPPORTED',
  'OUT_OF_MEMORY',
  'OS',
] as const;

/** One of {@link MEMPORT_ERROR_CODES}: what kind of failure a {@link MemportError} is. */
export type MemportErrorCode = (typeof MEMPORT_ERROR_CODES)[number];

/**
 * The {@link MemportError} with code `C`, e.g. `MemportErrorOf<'TIMEOUT'>` for
 * a function that only ever times out.
 */
export interface MemportErrorOf<C extends MemportErrorCode> extends Error {
  /** Always `'MemportError'`. */
  readonly name: 'MemportError';
  /** What went wrong; narrow on it. */
  readonly code: C;
  /** errno (Linux) or GetLastError() (Windows), when an OS call failed. */
  readonly osCode?: number;
  /** The OS call that failed, when one did. */
  readonly syscall?: string;
}

/** A discriminated union on `code`; see {@link MEMPORT_ERROR_CODES}. */
export type MemportError = { [C in MemportErrorCode]: MemportErrorOf<C> }[MemportErrorCode];

class MemportErrorImpl extends Error {
  declare readonly name: 'MemportError';
  readonly code: MemportErrorCode;
  declare readonly osCode?: number;
  declare readonly syscall?: string;

  constructor(code: MemportErrorCode, message: string, extra: { osCode?: number; syscall?: string; cause?: unknown }) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    if (extra.osCode !== undefined) this.osCode = extra.osCode;
    if (extra.syscall !== undefined) this.syscall = extra.syscall;
  }
}

// Shown by util.inspect and in stacks as "MemportError", the public type's name.
Object.defineProperty(MemportErrorImpl, 'name', { value: 'MemportError' });
Object.defineProperty(MemportErrorImpl.prototype, 'name', { value: 'MemportError' });

/** Builds a MemportError. */
export function memportError<C extends MemportErrorCode>(
  code: C,
  message: string,
  extra: { osCode?: number; syscall?: string; cause?: unknown } = {},
): MemportErrorOf<C> {
  return new MemportErrorImpl(code, message, extra) as unknown as MemportErrorOf<C>;
}

/** True for any MemportError (from any copy of this module). Never throws, whatever `value` is. */
export function isMemportError(value: unknown): value is MemportError {
  try {
    return (
      value instanceof Error &&
      value.name === 'MemportError' &&
      (MEMPORT_ERROR_CODES as readonly string[]).includes((value as { code?: unknown }).code as string)
    );
  } catch {
    return false; // a Proxy or an object with throwing getters
  }
}

/**
 * Makes text that came from a peer (a REJECT reason, a NACK message) safe to
 * put in an error message: control characters (C0, DEL, C1), line and
 * paragraph separators and bidirectional overrides are shown as `\u{…}`
 * escapes, so a peer cannot forge log lines or terminal escape sequences in
 * our output, and the text is cut to `max` characters.
 */
export function peerText(text: string, max = 200): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return cut.replace(PEER_TEXT_UNSAFE, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}
// C0 controls, DEL and C1 controls; U+2028/2029; the bidi embeddings,
// overrides and isolates (CVE-2021-42574, "Trojan Source").
const PEER_TEXT_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * The one seam where anything thrown by the native layer (or an unexpected
 * JS exception) becomes a MemportError. Native errors carry `memport: true`,
 * `code`, and for OS failures `osCode` and `syscall`.
 */
export function toMemportError(thrown: unknown): MemportError {
  if (isMemportError(thrown)) return thrown;
  if (types.isNativeError(thrown) && !types.isProxy(thrown)) {
    const fields = thrown as Error & { memport?: boolean; code?: unknown; osCode?: unknown; syscall?: unknown };
    const code = fields.memport && (MEMPORT_ERROR_CODES as readonly string[]).includes(fields.code as string)
      ? (fields.code as MemportErrorCode)
      : 'OS';
    const error = memportError(code, thrown.message, {
      osCode: typeof fields.osCode === 'number' ? fields.osCode : undefined,
      syscall: typeof fields.syscall === 'string' ? fields.syscall : undefined,
      cause: fields.memport ? undefined : thrown,
    });
    if (thrown.stack) (error as { stack?: string }).stack = `MemportError: ${thrown.message}\n${thrown.stack.split('\n').slice(1).join('\n')}`;
    return error as MemportError;
  }
  return memportError('OS', `unexpected non-error value thrown: ${typeof thrown}`) as MemportError;
}

/**
 * `error` as seen from the call that started an asynchronous operation: a
 * copy (the original may be shared by several callers) whose stack is
 * `callSite`'s frames, so an `Err` that a timer or the native layer settled
 * still points at the application's `send()`, `receive()` or `connect()`.
 */
export function atCallSite(error: MemportError, callSite: string | undefined): MemportError {
  if (callSite === undefined) return error;
  const copy = memportError(error.code, error.message, {
    osCode: error.osCode,
    syscall: error.syscall,
    cause: (error as { cause?: unknown }).cause,
  }) as MemportError;
  (copy as { stack?: string }).stack = `MemportError: ${error.message}\n${callSite}`;
  return copy;
}
