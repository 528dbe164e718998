// The message codec: what send() puts in a MESSAGE frame, what a NACK frame
// carries, and how a peer's text is made safe to show (docs/PROTOCOL.md).
import { err, ok, type Result } from 'neverthrow';
import { MEMPORT_ERROR_CODES, memportError, peerText, toMemportError, type MemportError, type MemportErrorCode } from '../errors.js';
import type { NativeNotifier, NativeRegion } from '../native/binding.js';
import { notifierNativeOf } from '../notifier.js';
import { describe, readArray, readOptions, thrownText } from '../options.js';
import { nativeOf } from '../region.js';
import { isStreamWriter, type StreamWriter } from '../stream.js';
import { MAX_DATA_BYTES, MAX_REGIONS_PER_MESSAGE } from './protocol.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Handles one stream reader takes in a message: two regions and two notifiers. */
export const HANDLES_PER_STREAM = 4;

/**
 * A message ready for the native write: its regions' and notifiers' native
 * objects, the stream writers to make readers of (when the write starts), and
 * its serialised data.
 */
export interface EncodedMessage {
  natives: NativeRegion[];
  notifiers: NativeNotifier[];
  streams: StreamWriter[];
  bytes: Uint8Array | undefined;
}

/**
 * Reads a message to send once (src/options.ts): `regions` copied by index,
 * each a genuine SharedRegion (brand-checked, so a look-alike or a Proxy is
 * refused without running any of its code), `data` serialised once.
 */
export function encodeMessage(message: unknown): Result<EncodedMessage, MemportError> {
  if (message === null || typeof message !== 'object') {
    return err(memportError('INVALID_ARGUMENT', `send() takes { regions?, notifiers?, streams?, data? }, got ${describe(message)}`));
  }
  const read = readOptions(message, ['regions', 'notifiers', 'streams', 'data'], 'send');
  if (read.isErr()) return err(read.error);
  const { regions: given = [], notifiers: givenNotifiers = [], streams: givenStreams = [], data } = read.value;
  const regions = readArray(given, 'send: regions');
  if (regions.isErr()) return err(regions.error);
  const notifierList = readArray(givenNotifiers, 'send: notifiers');
  if (notifierList.isErr()) return err(notifierList.error);
  const streamList = readArray(givenStreams, 'send: streams');
  if (streamList.isErr()) return err(streamList.error);
  const handles = regions.value.length + notifierList.value.length + HANDLES_PER_STREAM * streamList.value.length;
  if (handles > MAX_REGIONS_PER_MESSAGE) {
    return err(memportError('INVALID_ARGUMENT', `at most ${MAX_REGIONS_PER_MESSAGE} handles per message (a region or a notifier is one, a stream ${HANDLES_PER_STREAM}), got ${handles}`));
  }
  const natives = nativesOf(regions.value, nativeOf, 'regions', 'a SharedRegion');
  if (natives.isErr()) return err(natives.error);
  const notifiers = nativesOf(notifierList.value, notifierNativeOf, 'notifiers', 'a Notifier');
  if (notifiers.isErr()) return err(notifiers.error);
  const streams: StreamWriter[] = [];
  for (const [i, writer] of streamList.value.entries()) {
    if (!isStreamWriter(writer)) return err(memportError('INVALID_ARGUMENT', `streams[${i}] is not a StreamWriter (make one with Stream.create)`));
    if (writer.closed) return err(memportError('CLOSED', `streams[${i}] is closed`));
    streams.push(writer);
  }
  if (data === undefined) return ok({ natives: natives.value, notifiers: notifiers.value, streams, bytes: undefined });
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (e) {
    return err(memportError('INVALID_ARGUMENT', `data is not JSON-serialisable: ${thrownText(e)}`, { cause: e }));
  }
  if (json === undefined) return err(memportError('INVALID_ARGUMENT', 'data is not JSON-serialisable'));
  const bytes = encoder.encode(json);
  if (bytes.length > MAX_DATA_BYTES) {
    return err(memportError('INVALID_ARGUMENT', `data is ${bytes.length} bytes once serialised; the limit is ${MAX_DATA_BYTES} (put bulk bytes in a region)`));
  }
  return ok({ natives: natives.value, notifiers: notifiers.value, streams, bytes });
}

/**
 * The native objects behind `list` (each brand-checked by `of`, which runs
 * none of a look-alike's code), or why one cannot travel: not `kind`, or closed.
 */
function nativesOf<T extends { closed(): boolean }>(list: unknown[], of: (value: unknown) => T | undefined, field: string, kind: string): Result<T[], MemportError> {
  const natives: T[] = [];
  for (const [i, value] of list.entries()) {
    const native = of(value);
    if (!native) return err(memportError('INVALID_ARGUMENT', `${field}[${i}] is not ${kind}`));
    if (native.closed()) return err(memportError('CLOSED', `${field}[${i}] is closed`));
    natives.push(native);
  }
  return ok(natives);
}

/** A received message's data: undefined, or the JSON value; Err when it is not UTF-8 JSON. */
export function decodeData(bytes: Uint8Array | undefined): Result<unknown, string> {
  if (bytes === undefined) return ok(undefined);
  try {
    return ok(JSON.parse(decoder.decode(bytes)));
  } catch {
    return err('message data is not UTF-8 JSON');
  }
}

/** The body of a NACK frame: why the message was refused. */
export function encodeNack(error: unknown): Uint8Array {
  const reason = toMemportError(error);
  return encoder.encode(JSON.stringify({ code: reason.code, message: reason.message }));
}

/** A NACK body as the sender's error: the peer's code if it is one of ours, its text made safe. */
export function decodeNack(data: Uint8Array | undefined): MemportError {
  try {
    const body = JSON.parse(decoder.decode(data ?? new Uint8Array())) as { code?: unknown; message?: unknown };
    const code = (MEMPORT_ERROR_CODES as readonly unknown[]).includes(body.code) ? (body.code as MemportErrorCode) : 'PEER_REJECTED';
    return memportError(code, `the peer refused the message: ${typeof body.message === 'string' ? peerText(body.message) : 'no reason given'}`);
  } catch {
    return memportError('PEER_REJECTED', 'the peer refused the message');
  }
}

/** A REJECT body: the listener's fixed refusal text. */
export function encodeText(text: string): Uint8Array {
  return encoder.encode(text);
}

/** A peer's UTF-8 text, made safe for an error message (src/errors.ts, peerText). */
export function safeText(bytes: Uint8Array): string {
  try {
    return peerText(decoder.decode(bytes));
  } catch {
    return '(not UTF-8)';
  }
}
