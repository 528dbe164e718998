/**
 * The stream ring's shared-memory layout (docs/PROTOCOL.md, "Streams"). All
 * integers are little-endian uint32; every word another party changes is
 * read and written with the native sequentially consistent atomics
 * (native/atomics_binding.h). Positions and sequence numbers in shared memory
 * are the low 32 bits of 53-bit counters each side keeps in JS.
 */

/** 'MPST' read as a little-endian uint32: the data region's magic. */
export const DATA_MAGIC = 0x5453504d;
/** 'MPSR' read as a little-endian uint32: a reader control region's magic. */
export const CONTROL_MAGIC = 0x5253504d;
export const STREAM_VERSION = 1;

export const MODE_QUEUE = 1;
export const MODE_LATEST = 2;

/** Data region header, written once by the writer before any reader exists. */
export const H_MAGIC = 0;
export const H_VERSION = 4;
export const H_MODE = 8;
export const H_RECORD_BYTES = 12;
export const H_RECORDS = 16;
export const H_STRIDE = 20;
export const H_SLOT_TABLE = 24;
export const H_DATA_OFFSET = 28;
export const H_MAX_READERS = 32;
/** Bytes of the fixed header a reader copies out and validates. */
export const HEADER_FIXED_BYTES = 36;

/** Changing words, on their own cache line. */
export const H_WRITE_POS = 64;
export const H_LATEST = 68;
export const H_STATE = 72;
/** H_STATE bit: the writer closed the stream; nothing follows the records published. */
export const STATE_CLOSED = 1;

export const SLOT_TABLE_OFFSET = 128;
export const SLOT_ENTRY_BYTES = 16;
export const S_SEQ = 0;
export const S_LENGTH = 4;
/** The length a latest-mode writer stores while it reuses a slot. */
export const LENGTH_INVALID = 0xffffffff;

/** Reader control region (one per reader; both sides map it writable). */
export const C_MAGIC = 0;
export const C_VERSION = 4;
export const C_START_LO = 8;
export const C_START_HI = 12;
export const C_READ_POS = 16;
export const C_HOLD = 20;
export const C_READER_SLEEPING = 24;
export const C_WRITER_SLEEPING = 28;
export const C_READER_STATE = 32;
export const C_WRITER_STATE = 36;
/** C_READER_STATE bit: the reader closed. */
export const READER_CLOSED = 1;
/** C_WRITER_STATE bit: the writer dropped this reader (it lied about its position, or dropReader). */
export const READER_DETACHED = 1;
/**
 * The reader's own process's word (the writer never reads or writes it): what
 * the connection that carried the reader said, so a reader moved to a worker
 * thread learns it too. One of the LIFELINE_ values.
 */
export const C_LIFELINE = 40;
/** C_LIFELINE: nothing said yet. */
export const LIFELINE_OPEN = 0;
/** C_LIFELINE: the connection ended from the writer's side; deliver what was published, then PEER_CLOSED. */
export const LIFELINE_WRITER_GONE = 1;
/** C_LIFELINE: the connection was closed by the reader's own process; the reader ends now. */
export const LIFELINE_CLOSED_HERE = 2;
export const CONTROL_BYTES = 64;

/** Slots are a whole number of cache lines apart. */
export const STRIDE_ALIGN = 64;

/** Largest record and slot count: the layout's offsets stay uint32 and the region under 2^32 bytes... per slot. */
export const MAX_RECORD_BYTES = 2 ** 31;
export const MAX_RECORDS = 2 ** 20;
/** Most readers one writer serves (each costs a control region and a word load per publish). */
export const MAX_READERS = 1024;

export function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

export interface Geometry {
  mode: number;
  recordBytes: number;
  records: number;
  stride: number;
  slotTable: number;
  dataOffset: number;
  maxReaders: number;
  /** Size of the data region. */
  size: number;
}

export function geometry(mode: number, recordBytes: number, records: number, maxReaders: number): Geometry {
  const stride = alignUp(recordBytes, STRIDE_ALIGN);
  const dataOffset = alignUp(SLOT_TABLE_OFFSET + SLOT_ENTRY_BYTES * records, STRIDE_ALIGN);
  return { mode, recordBytes, records, stride, slotTable: SLOT_TABLE_OFFSET, dataOffset, maxReaders, size: dataOffset + stride * records };
}

/** (a - b) modulo 2^32, as a number 0..2^32-1. */
export function diff32(a: number, b: number): number {
  return (a - b) >>> 0;
}

/** Low 32 bits of a 53-bit counter. */
export function low32(n: number): number {
  return n % 2 ** 32;
}
