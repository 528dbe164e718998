// The frames of the latest-mode benchmark (section 6): 1920x1080 RGBA, filled
// by the writer with a byte that changes every frame (never ABSENT_BYTE, so a
// reader's read-every-byte check holds), with a 16-byte header (the publish
// time, then the frame's seq) and a 16-byte trailer (the seq again), so a
// reader can tell a torn frame and the publish -> receive latency.
import { ABSENT_BYTE } from './bytes.mjs';

export const FRAME_BYTES = 1920 * 1080 * 4;
export const FRAME_HEADER = 16;

/** Fills a frame for `seq`, except its publish time (see stampFrame). */
export function fillFrame(bytes, seq) {
  bytes.fill(seq % ABSENT_BYTE); // 0..254
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(8, seq >>> 0, true);
  view.setUint32(bytes.byteLength - FRAME_HEADER, seq >>> 0, true);
}

/** Writes the publish time (process.hrtime.bigint(), CLOCK_MONOTONIC on Linux, the performance counter on Windows): the last thing before publish(). */
export function stampFrame(bytes) {
  new DataView(bytes.buffer, bytes.byteOffset, 8).setBigUint64(0, process.hrtime.bigint(), true);
}

/** What a reader reads from a frame's header and trailer. */
export function frameLayout(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    publishedAt: view.getBigUint64(0, true),
    seq: view.getUint32(8, true),
    trailerSeq: view.getUint32(bytes.byteLength - FRAME_HEADER, true),
  };
}
