// What every producer writes and how every consumer reads, shared by all the
// Node paths (memport, socket/pipe streaming, child_process) so that "reads
// every byte" means the same work everywhere.

/** Producers fill payloads with this byte. */
export const FILL_BYTE = 0x01;
/** Consumers search for this byte, which no producer writes. */
export const ABSENT_BYTE = 0xff;

/**
 * Reads every byte of `bytes`: Buffer#indexOf(number) is memchr in libc, so
 * this runs at close to memory speed (the C baseline mem_bandwidth.c times the
 * same routine) rather than at the speed of a JavaScript loop.
 */
export function readEveryByte(bytes) {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.indexOf(ABSENT_BYTE) !== -1) throw new Error('a payload byte was not the fill byte');
  return buffer.length;
}

/** Human size: 64 KiB, 1 MiB, 1 GiB. */
export function formatSize(bytes) {
  for (const [unit, scale] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]]) {
    if (bytes >= scale && bytes % scale === 0) return `${bytes / scale} ${unit}`;
  }
  return `${bytes} B`;
}
