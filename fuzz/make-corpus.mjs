// Writes the frame fuzzer's seed corpus into fuzz/corpus/ (checked in, so a
// fresh clone fuzzes from the same starting point).
//
//   node fuzz/make-corpus.mjs
//
// Frames are built from docs/PROTOCOL.md section 2, not with the C++ encoder,
// so a seed is also an independent example of the format. Names say what the
// decoder must do: `ok-*` decodes, `bad-*` is a near-miss that must be refused
// (one rule broken, everything else valid), which points the fuzzer straight
// at each check's boundary instead of making it discover the magic first.
// The script owns the directory: files it did not write are removed.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const outDir = join(dirname(fileURLToPath(import.meta.url)), 'corpus');

const Type = { Welcome: 1, Reject: 2, Message: 3, Ack: 4, Nack: 5 };
const MAX_REGION_SIZE = 2n ** 47n;
const MAX_DATA = 128 * 1024;
const READ_ONLY = 1;

/**
 * Serialises a frame. `regionCount` and `dataLength` override the header
 * fields (for length near-misses); `magic` and `version` override the constants.
 */
function frame({ type, seq = 0, regions = [], data = '', regionCount, dataLength, magic = 'MPRT', version = 1 }) {
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  const out = Buffer.alloc(16 + 16 * regions.length + body.length);
  out.write(magic, 0, 4, 'latin1');
  out.writeUInt8(version, 4);
  out.writeUInt8(type, 5);
  out.writeUInt16LE(regionCount ?? regions.length, 6);
  out.writeUInt32LE(seq, 8);
  out.writeUInt32LE(dataLength ?? body.length, 12);
  regions.forEach(({ size, flags = 0, handle }, i) => {
    const at = 16 + 16 * i;
    out.writeBigUInt64LE(BigInt(size), at);
    out.writeUInt32LE(flags >>> 0, at + 8);
    // On Linux the handle is the descriptor's own index (PROTOCOL.md section 2).
    out.writeUInt32LE(handle ?? i, at + 12);
  });
  body.copy(out, 16 + 16 * regions.length);
  return out;
}

/** `count` plausible descriptors: page-sized and odd sizes, every third read-only. */
function regionList(count) {
  return Array.from({ length: count }, (_, i) => ({ size: 4096 * (i + 1) + (i % 3), flags: i % 3 === 0 ? READ_ONLY : 0 }));
}

const json = (value) => JSON.stringify(value);
const oneRegion = [{ size: 65536, flags: 0 }];
const seeds = {
  // Accepted frames: every type, 0/1/3/64 regions, with and without data, and each cap exactly.
  'ok-welcome': frame({ type: Type.Welcome }),
  'ok-reject-reason': frame({ type: Type.Reject, data: 'uid 1001 is not on the allow list' }),
  'ok-reject-empty': frame({ type: Type.Reject }),
  'ok-message-0-regions-empty': frame({ type: Type.Message, seq: 1 }),
  'ok-message-0-regions-json': frame({ type: Type.Message, seq: 2, data: json({ op: 'ping', n: 1 }) }),
  'ok-message-1-region': frame({ type: Type.Message, seq: 3, regions: oneRegion }),
  'ok-message-1-region-json': frame({
    type: Type.Message,
    seq: 4,
    regions: [{ size: 4096, flags: READ_ONLY }],
    data: json({ name: 'frame-0001', width: 640, height: 480 }),
  }),
  'ok-message-3-regions-json': frame({
    type: Type.Message,
    seq: 5,
    // The smallest and the largest legal sizes, and a Windows-style handle value.
    regions: [
      { size: 1, flags: READ_ONLY },
      { size: MAX_REGION_SIZE, flags: 0 },
      { size: 12345, flags: 0, handle: 0x1a4 },
    ],
    data: json({ parts: ['header', 'body', 'index'] }),
  }),
  'ok-message-64-regions': frame({ type: Type.Message, seq: 6, regions: regionList(64) }),
  'ok-message-64-regions-json': frame({ type: Type.Message, seq: 7, regions: regionList(64), data: json({ batch: 64 }) }),
  'ok-message-max-data': frame({ type: Type.Message, seq: 0xffffffff, regions: regionList(64), data: Buffer.alloc(MAX_DATA, 0x20) }),
  'ok-ack': frame({ type: Type.Ack, seq: 7 }),
  'ok-nack': frame({ type: Type.Nack, seq: 6, data: json({ code: 'NO_MEMORY', message: 'could not map region 2' }) }),
  'ok-nack-empty': frame({ type: Type.Nack, seq: 5 }),

  // Near-misses: each breaks exactly one rule of PROTOCOL.md section 2.
  'bad-empty': Buffer.alloc(0),
  'bad-short-header': frame({ type: Type.Welcome }).subarray(0, 15),
  'bad-magic': frame({ type: Type.Message, seq: 1, data: '{}', magic: 'MPRS' }),
  'bad-version-0': frame({ type: Type.Welcome, version: 0 }),
  'bad-version-2': frame({ type: Type.Message, seq: 1, regions: oneRegion, version: 2 }),
  'bad-type-0': frame({ type: 0 }),
  'bad-type-6': frame({ type: 6 }),
  'bad-length-short-by-one': frame({ type: Type.Message, seq: 1, regions: oneRegion, data: '{"a":1}' }).subarray(0, -1),
  'bad-length-long-by-one': Buffer.concat([frame({ type: Type.Message, seq: 1, data: '{"a":1}' }), Buffer.from([0])]),
  'bad-region-count-off-by-one': frame({ type: Type.Message, seq: 1, regions: oneRegion, regionCount: 2 }),
  'bad-unknown-flag': frame({ type: Type.Message, seq: 1, regions: [{ size: 4096, flags: 2 }] }),
  'bad-flag-bit-31': frame({ type: Type.Message, seq: 1, regions: [{ size: 4096, flags: 0x80000001 }] }),
  'notifier-and-region': frame({ type: Type.Message, seq: 1, regions: [{ size: 4096, flags: 0 }, { size: 0, flags: 4, handle: 1 }] }),
  'bad-notifier-with-size': frame({ type: Type.Message, seq: 1, regions: [{ size: 4096, flags: 4 }] }),
  'bad-notifier-read-only': frame({ type: Type.Message, seq: 1, regions: [{ size: 0, flags: 5 }] }),
  // A stream reader (PROTOCOL.md section 6): a plain region and notifier, then the members (flag bit 3).
  'stream-reader': frame({
    type: Type.Message,
    seq: 1,
    regions: [
      { size: 4096, flags: 0 },
      { size: 8192, flags: 9 },
      { size: 64, flags: 8 },
      { size: 0, flags: 4 },
      { size: 0, flags: 12 },
      { size: 0, flags: 12 },
    ],
  }),
  'bad-stream-control-read-only': frame({ type: Type.Message, seq: 1, regions: [{ size: 8192, flags: 9 }, { size: 64, flags: 9 }, { size: 0, flags: 12 }, { size: 0, flags: 12 }] }),
  'bad-stream-one-notifier': frame({ type: Type.Message, seq: 1, regions: [{ size: 8192, flags: 9 }, { size: 64, flags: 8 }, { size: 0, flags: 12 }] }),
  'bad-stream-member-before-plain': frame({ type: Type.Message, seq: 1, regions: [{ size: 8192, flags: 9 }, { size: 64, flags: 8 }, { size: 4096, flags: 0 }, { size: 0, flags: 12 }, { size: 0, flags: 12 }] }),
  'bad-stream-named': frame({ type: Type.Message, seq: 1, regions: [{ size: 8192, flags: 11 }, { size: 64, flags: 8 }, { size: 0, flags: 12 }, { size: 0, flags: 12 }] }),
  'bad-region-size-0': frame({ type: Type.Message, seq: 1, regions: [{ size: 0 }] }),
  'bad-region-size-over-cap': frame({ type: Type.Message, seq: 1, regions: [{ size: MAX_REGION_SIZE + 1n }] }),
  'bad-65-regions': frame({ type: Type.Message, seq: 1, regions: regionList(65) }),
  // Only the header claims the oversized payload: the cap is checked before the length.
  'bad-data-over-cap': frame({ type: Type.Message, seq: 1, dataLength: MAX_DATA + 1 }),
  'bad-regions-on-ack': frame({ type: Type.Ack, seq: 1, regions: oneRegion }),
  'bad-regions-on-reject': frame({ type: Type.Reject, regions: oneRegion, data: 'no' }),
  'bad-regions-on-nack': frame({ type: Type.Nack, seq: 1, regions: oneRegion }),
  'bad-data-on-welcome': frame({ type: Type.Welcome, data: 'hi' }),
  'bad-data-on-ack': frame({ type: Type.Ack, seq: 1, data: '{}' }),
  // The largest frame plus one byte: refused by the overall size cap before any field is read.
  'bad-max-frame-plus-one': Buffer.concat([
    frame({ type: Type.Message, seq: 1, regions: regionList(64), data: Buffer.alloc(MAX_DATA, 0x20) }),
    Buffer.from([0x20]),
  ]),
};

mkdirSync(outDir, { recursive: true });
for (const name of readdirSync(outDir)) {
  if (!(name in seeds)) {
    rmSync(join(outDir, name));
    console.log(`removed stale ${name}`);
  }
}
for (const [name, bytes] of Object.entries(seeds)) writeFileSync(join(outDir, name), bytes);
console.log(`wrote ${Object.keys(seeds).length} seeds to ${outDir}`);
