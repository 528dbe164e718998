// The benchmark plan: every job, in the order it runs, with its iteration
// budget. A job runs one program (a measure.mjs process or a C baseline) and
// yields one or more metrics; lib/report.mjs then compares metrics by id.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { root } from '../../scripts/lib/env.mjs';
import { runWindowsNode } from '../../scripts/lib/wine.mjs';
import { formatSize } from './bytes.mjs';
import { formatNs } from './report.mjs';
import { runProgram, runProgramUnderWine } from './c-programs.mjs';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Payload sizes of the handoff-vs-streaming sweep (and the chart). 64 MiB and 1 GiB are section 2's sizes. */
export const SWEEP_SIZES = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB, 1 * GiB];
/** Sizes the large-data section reports (and sends through child_process too). */
export const LARGE_SIZES = [64 * MiB, 1 * GiB];
export const ROUNDTRIP_SIZE = 1 * MiB;
export const CEILING_BYTES = 1 * GiB; // far beyond this machine's last-level cache

export const PLATFORMS = { linux: 'linux', wine: 'win32 (Wine)' };

export const sizeId = (bytes) => formatSize(bytes).replace(' ', '').toLowerCase().replace('ib', '');

// Iteration budgets: [warmup, min, max, budgetMs]. Fast metrics run for a
// time budget; slow ones for a minimum count. Under Wine everything is slower
// (a 1 GiB named-pipe transfer takes seconds), so its budgets are smaller.
const BUDGETS = {
  full: {
    roundtrip: [300, 300, 100_000, 6000],
    medium: [20, 30, 20_000, 4000],
    large: [3, 15, 2000, 4000],
    huge: [1, 10, 200, 5000],
    hugeSlow: [1, 6, 50, 0],
  },
  wine: {
    roundtrip: [100, 100, 20_000, 3000],
    medium: [5, 15, 5000, 2000],
    large: [2, 8, 500, 2000],
    huge: [0, 3, 20, 0],
    hugeSlow: [0, 2, 10, 0],
  },
  quick: {
    roundtrip: [20, 20, 5000, 400],
    medium: [3, 5, 1000, 300],
    large: [1, 3, 100, 300],
    huge: [1, 2, 10, 0],
    hugeSlow: [0, 1, 5, 0],
  },
};

function budgetFor(bytes, { quick, wine, slow = false }) {
  const tier = bytes >= GiB ? (slow ? 'hugeSlow' : 'huge') : bytes >= 64 * MiB ? 'large' : bytes > ROUNDTRIP_SIZE ? 'medium' : 'roundtrip';
  const [warmup, min, max, budgetMs] = BUDGETS[quick ? 'quick' : wine ? 'wine' : 'full'][tier];
  return { warmup, min, max, budgetMs };
}

/** Runs measure.mjs on Linux (this Node) or under Wine (Windows Node); returns its parsed result. */
function runMeasure(platform, kind, options) {
  const args = [kind];
  for (const [key, value] of Object.entries(options)) args.push(`--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, String(value));
  if (platform === 'wine') {
    const r = runWindowsNode(['bench\\measure.mjs', ...args], { timeoutMs: 15 * 60_000 });
    return parseResult(r.output, r.status);
  }
  const r = spawnSync(process.execPath, [join(root, 'bench', 'measure.mjs'), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 15 * 60_000,
    maxBuffer: 256 << 20,
  });
  return parseResult(`${r.stdout}\n${r.stderr}`, r.status ?? r.signal);
}

function parseResult(output, status) {
  const line = output.split('\n').find((l) => l.startsWith('BENCH-RESULT '));
  if (!line) throw new Error(`measure.mjs failed (${status}):\n${output.trim().slice(-3000)}`);
  return JSON.parse(line.slice('BENCH-RESULT '.length));
}

/**
 * A job made of one measure.mjs run that yields one metric.
 * `kind: 'latency'` metrics are reported as times; 'throughput' ones as
 * bytes / time (GB/s, 10^9 bytes per second).
 */
function nodeJob({ id, platform, section, name, measure, options, unit = 'us', kind = 'latency', bytes }) {
  return {
    id: `${platform === 'wine' ? 'wine.' : ''}${id}`,
    platform,
    section,
    title: name,
    run: () => {
      const result = runMeasure(platform, measure, options);
      return [{ id: `${platform === 'wine' ? 'wine.' : ''}${id}`, platform, section, name, unit, kind, bytes, samples: result.samples.main }];
    },
  };
}

export function buildPlan({ quick, wine }) {
  const jobs = [];
  const C = quick ? { rt: [2000, 200], create: [5000, 500], passes: 2, mapRead: 2 } : { rt: [20_000, 2000], create: [50_000, 5000], passes: 10, mapRead: 10 };

  // ---- 1. Handoff round trip -------------------------------------------------
  const rt = formatSize(ROUNDTRIP_SIZE);
  jobs.push({
    id: 'rt.c',
    platform: 'linux',
    section: 1,
    title: `C: SCM_RIGHTS + mmap round trip, ${rt}`,
    run: () => {
      const r = runProgram('scm_rights_roundtrip', [ROUNDTRIP_SIZE, ...C.rt]);
      return [{ id: 'rt.c', platform: 'linux', section: 1, name: `C: SCM_RIGHTS + mmap + read 1 byte + reply, ${rt}`, unit: 'us', kind: 'latency', samples: r.roundtrip_ns }];
    },
  });
  const roundTrips = (platform) => {
    const budget = budgetFor(ROUNDTRIP_SIZE, { quick, wine: platform === 'wine' });
    jobs.push(
      nodeJob({
        id: 'rt.memport',
        platform,
        section: 1,
        name: `memport: send region, peer maps + reads 1 byte + replies, ${rt}`,
        measure: 'memport',
        options: { size: ROUNDTRIP_SIZE, mode: 'touch', ...budget, budgetMs: budget.budgetMs * (quick ? 1 : 1.5) },
      }),
      nodeJob({ id: 'rt.memport-ack', platform, section: 1, name: `memport: send() until the peer's ACK, ${rt}`, measure: 'memport', options: { size: ROUNDTRIP_SIZE, mode: 'ack', ...budget } }),
      nodeJob({ id: 'rt.node-ipc', platform, section: 1, name: 'Node child_process IPC round trip, 64-byte JSON', measure: 'ipc', options: budget }),
      nodeJob({ id: 'rt.node-handle', platform, section: 1, name: 'Node handle passing round trip (net.Socket over IPC)', measure: 'handle', options: budget }),
    );
  };
  roundTrips('linux');

  // ---- 2. Large data, and the sweep the chart is drawn from ------------------
  const transfers = (platform, sizes, { withChildProcess }) => {
    const wineRun = platform === 'wine';
    const stream = wineRun ? 'Node named-pipe stream' : 'Node Unix-socket stream';
    for (const bytes of sizes) {
      const s = formatSize(bytes);
      const id = sizeId(bytes);
      const section = LARGE_SIZES.includes(bytes) ? 2 : 5;
      const unit = bytes >= 64 * MiB ? 'ms' : 'us';
      const budget = budgetFor(bytes, { quick, wine: wineRun });
      jobs.push(
        nodeJob({ id: `handoff.memport.${id}`, platform, section, name: `memport handoff, ${s} (consumer views it)`, measure: 'memport', options: { size: bytes, mode: 'touch', ...budget }, unit, bytes }),
        nodeJob({ id: `handoff.stream.${id}`, platform, section, name: `${stream}, ${s} (all bytes arrive)`, measure: 'stream', options: { size: bytes, mode: 'touch', ...budget }, unit, bytes }),
        nodeJob({ id: `read.memport.${id}`, platform, section, name: `memport handoff + consumer reads every byte, ${s}`, measure: 'memport', options: { size: bytes, mode: 'read', ...budget }, unit: 'GB/s', kind: 'throughput', bytes }),
        nodeJob({ id: `read.stream.${id}`, platform, section, name: `${stream} + consumer reads every byte, ${s}`, measure: 'stream', options: { size: bytes, mode: 'read', ...budget }, unit: 'GB/s', kind: 'throughput', bytes }),
      );
      if (withChildProcess && LARGE_SIZES.includes(bytes) && !(wineRun && bytes >= GiB)) {
        const slow = budgetFor(bytes, { quick, wine: wineRun, slow: true });
        jobs.push(
          nodeJob({ id: `handoff.cp.${id}`, platform, section, name: `Node child_process send(Buffer), ${s} (child has it)`, measure: 'cp-buffer', options: { size: bytes, mode: 'touch', ...slow }, unit, bytes }),
          nodeJob({ id: `read.cp.${id}`, platform, section, name: `Node child_process send(Buffer) + child reads every byte, ${s}`, measure: 'cp-buffer', options: { size: bytes, mode: 'read', ...slow }, unit: 'GB/s', kind: 'throughput', bytes }),
        );
      }
    }
  };
  transfers('linux', SWEEP_SIZES, { withChildProcess: true });
  const bigAck = budgetFor(GiB, { quick, wine: false });
  jobs.push(nodeJob({ id: 'ack.memport.1g', platform: 'linux', section: 2, name: "memport: send() until the peer's ACK, 1 GiB (peer views it after)", measure: 'memport', options: { size: GiB, mode: 'ack', ...bigAck }, unit: 'ms' }));

  // ---- 3. Region lifecycle ---------------------------------------------------
  jobs.push({
    id: 'create.c',
    platform: 'linux',
    section: 3,
    title: `C: memfd_create + ftruncate + mmap, ${rt}`,
    run: () => {
      const r = runProgram('memfd_lifecycle', ['create', ROUNDTRIP_SIZE, ...C.create]);
      return [{ id: 'create.c', platform: 'linux', section: 3, name: `C: memfd_create + ftruncate + mmap, ${rt}`, unit: 'us', kind: 'latency', samples: r.create_ns }];
    },
  });
  const lifecycle = (platform) => {
    const budget = budgetFor(ROUNDTRIP_SIZE, { quick, wine: platform === 'wine' });
    jobs.push(nodeJob({ id: 'create.memport', platform, section: 3, name: `memport: SharedRegion.create + region.bytes, ${rt}`, measure: 'region-create', options: { size: ROUNDTRIP_SIZE, ...budget, max: 200_000 } }));
  };
  lifecycle('linux');

  // ---- 4. Reference ceiling ------------------------------------------------------
  const g = formatSize(CEILING_BYTES);
  jobs.push({
    id: 'ceiling',
    platform: 'linux',
    section: 4,
    title: `C: memory read and memcpy bandwidth, ${g}`,
    run: () => {
      const r = runProgram('mem_bandwidth', [CEILING_BYTES, C.passes]);
      const metric = (id, name, samples) => ({ id, platform: 'linux', section: 4, name, unit: 'GB/s', kind: 'throughput', bytes: r.bytes, samples });
      return [
        metric('ceiling.read', `C: memory read bandwidth (sum of 64-bit words), ${g}`, r.sum_ns),
        metric('ceiling.memchr', `C: memchr over ${g} (the routine the Node consumers use)`, r.memchr_ns),
        metric('ceiling.memcpy', `C: memcpy bandwidth, ${g} copied`, r.memcpy_ns),
      ];
    },
  });
  jobs.push({
    id: 'ceiling.fresh-map',
    platform: 'linux',
    section: 4,
    title: `C: read a ${g} memfd through a fresh vs a kept mapping`,
    run: () => {
      const r = runProgram('memfd_lifecycle', ['map-read', CEILING_BYTES, C.mapRead]);
      const metric = (id, name, samples) => ({ id, platform: 'linux', section: 4, name, unit: 'GB/s', kind: 'throughput', bytes: CEILING_BYTES, samples });
      return [
        metric('ceiling.fresh-map', `C: mmap a ${g} memfd afresh + read every byte + munmap`, r.fresh_ns),
        metric('ceiling.populate-map', `C: the same with MAP_POPULATE`, r.populate_ns),
        metric('ceiling.kept-map', `C: read every byte through a mapping kept from before`, r.mapped_ns),
      ];
    },
  });

  // ---- 6. Streams: wake-ups, records, frames -------------------------------------
  // memport's notifiers and streams (issue 11) next to what a user would pick
  // instead: the raw OS wake-up, Node's IPC round trip, length-prefixed
  // records over a socket, worker_threads with a SharedArrayBuffer (the
  // in-process ceiling), and for bulk records the memcpy they cannot beat.
  const RECORD = 64;
  const BULK = 1 * MiB;
  const BULK_SLOTS = 8;
  const streamJobs = (platform) => {
    const wineRun = platform === 'wine';
    const budget = budgetFor(ROUNDTRIP_SIZE, { quick, wine: wineRun });
    const records = { warmup: 1, min: quick ? 2 : 8, max: 200, budgetMs: quick ? 300 : 3000 };
    const recordCount = quick ? 10_000 : wineRun ? 20_000 : 100_000;
    const prefix = wineRun ? 'wine.' : '';
    jobs.push(
      nodeJob({ id: 'stream.notifier', platform, section: 6, name: 'memport: two Notifiers ping-pong between two processes, round trip', measure: 'notifier-pingpong', options: budget }),
      nodeJob({ id: 'stream.node-ipc', platform, section: 6, name: 'Node child_process IPC round trip, 64-byte JSON', measure: 'ipc', options: budget }),
      nodeJob({
        id: 'stream.memport-64',
        platform,
        section: 6,
        name: `memport queue stream: ${RECORD}-byte records, reader in another process`,
        measure: 'stream-records',
        options: { size: RECORD, count: recordCount, slots: 256, ...records },
        unit: 'records/s',
        kind: 'rate',
      }),
      nodeJob({
        id: 'stream.memport-64-batched',
        platform,
        section: 6,
        name: `memport queue stream: ${RECORD}-byte records, batched (tryAcquire/tryNext, await only when full/empty)`,
        measure: 'stream-records',
        options: { size: RECORD, count: recordCount, slots: 256, batched: 1, ...records },
        unit: 'records/s',
        kind: 'rate',
      }),
      nodeJob({
        id: 'stream.socket-64',
        platform,
        section: 6,
        name: `Node ${wineRun ? 'named pipe' : 'Unix socket'}: ${RECORD}-byte length-prefixed records, one write() each`,
        measure: 'socket-records',
        options: { size: RECORD, count: recordCount, ...records },
        unit: 'records/s',
        kind: 'rate',
      }),
      nodeJob({
        id: 'stream.memport-1m',
        platform,
        section: 6,
        name: `memport queue stream: ${formatSize(BULK)} records, ${BULK_SLOTS} slots, reader reads all`,
        measure: 'stream-bytes',
        options: { size: BULK, slots: BULK_SLOTS, count: quick ? 32 : wineRun ? 128 : 256, warmup: 1, min: quick ? 2 : 8, max: 200, budgetMs: quick ? 300 : 3000 },
        unit: 'GB/s',
        kind: 'throughput',
        bytes: BULK,
      }),
    );
    // Latest mode: 1080p RGBA frames to two readers, flat out and at 60 fps.
    const frames = (fps) => {
      const tag = fps ? `-${fps}fps` : '';
      const how = fps ? `at ${fps} fps` : 'flat out';
      const budgetMs = quick ? 1000 : wineRun ? 4000 : 6000;
      return {
        id: `${prefix}stream.frames${tag}`,
        platform,
        section: 6,
        title: `memport latest stream: 1920x1080 RGBA frames to 2 reader processes, ${how}`,
        run: () => {
          const r = runMeasure(platform, 'stream-frames', { readers: 2, fps, window: fps ? 10 : 20, warmup: fps ? 10 : 20, min: fps ? 30 : 50, budgetMs });
          const base = { platform, section: 6 };
          const metrics = [
            { ...base, id: `${prefix}stream.frames${tag}.latency`, name: `memport latest, 8 MiB frames, 2 readers ${how}: publish -> receive latency (clocks agree within ${formatNs(r.clockBoundNs)})`, unit: 'us', kind: 'latency', samples: r.samples.main },
          ];
          if (!fps) {
            metrics.push(
              { ...base, id: `${prefix}stream.frames.per-reader`, name: '  the same: frames/s delivered to each reader (each reads every byte)', unit: 'frames/s', kind: 'rate', samples: r.samples.perFrame },
              { ...base, id: `${prefix}stream.frames.written`, name: '  the same: frames/s the writer fills and publishes', unit: 'frames/s', kind: 'rate', samples: r.samples.written },
            );
          }
          return metrics;
        },
      };
    };
    jobs.push(frames(0), frames(60));
  };
  jobs.push({
    id: 'stream.c-eventfd',
    platform: 'linux',
    section: 6,
    title: 'C: eventfd ping-pong between two processes',
    run: () => {
      const r = runProgram('eventfd_pingpong', C.rt);
      return [{ id: 'stream.c-eventfd', platform: 'linux', section: 6, name: 'C: eventfd ping-pong round trip (two processes)', unit: 'us', kind: 'latency', samples: r.roundtrip_ns }];
    },
  });
  jobs.push({
    id: 'stream.c-memcpy',
    platform: 'linux',
    section: 6,
    title: `C: memcpy of ${formatSize(BULK)} records into a ring, the stream's footprint and DRAM`,
    run: () => {
      const r = runProgram('ring_memcpy', [BULK, BULK_SLOTS, 1024, quick ? 64 : 256, quick ? 5 : 20]);
      const metric = (id, name, samples) => ({ id, platform: 'linux', section: 6, name, unit: 'GB/s', kind: 'throughput', bytes: BULK, samples });
      return [
        metric('stream.c-memcpy-1m', `C: memcpy ${formatSize(BULK)} records into an ${BULK_SLOTS}-slot ring (stream's footprint)`, r.ring_ns),
        metric('stream.c-memcpy-dram', `C: memcpy ${formatSize(BULK)} records into a 1 GiB ring (DRAM)`, r.dram_ns),
      ];
    },
  });
  jobs.push({
    id: 'stream.c-pipe',
    platform: 'linux',
    section: 6,
    title: `C: ${formatSize(BULK)} records through a shared ${BULK_SLOTS}-slot ring to a second process`,
    run: () => {
      const r = runProgram('ring_pipe', [BULK, BULK_SLOTS, quick ? 64 : 256, quick ? 5 : 20]);
      return [{ id: 'stream.c-pipe-1m', platform: 'linux', section: 6, name: `C: ${formatSize(BULK)} records, shared ${BULK_SLOTS}-slot ring, 2nd process reads all`, unit: 'GB/s', kind: 'throughput', bytes: BULK, samples: r.pipe_ns }];
    },
  });
  streamJobs('linux');
  jobs.push(
    nodeJob({
      id: 'stream.sab-64',
      platform: 'linux',
      section: 6,
      name: `worker_threads + SharedArrayBuffer ring: ${RECORD}-byte records (in-process ceiling)`,
      measure: 'sab-records',
      options: { size: RECORD, count: quick ? 100_000 : 1_000_000, slots: 256, warmup: 1, min: quick ? 2 : 8, max: 200, budgetMs: quick ? 300 : 3000 },
      unit: 'records/s',
      kind: 'rate',
    }),
  );

  // ---- Windows under Wine ----------------------------------------------------------
  if (wine) {
    jobs.push({
      id: 'wine.rt.c',
      platform: 'wine',
      section: 1,
      title: `C: DuplicateHandle + named pipe + MapViewOfFile round trip, ${rt}`,
      run: () => {
        const [iterations, warmup] = quick ? [500, 50] : [5000, 500];
        const r = runProgramUnderWine('win_dup_roundtrip', [ROUNDTRIP_SIZE, iterations, warmup]);
        return [{ id: 'wine.rt.c', platform: 'wine', section: 1, name: `C: DuplicateHandle + pipe + MapViewOfFile + read + reply, ${rt}`, unit: 'us', kind: 'latency', samples: r.roundtrip_ns }];
      },
    });
    roundTrips('wine');
    transfers('wine', LARGE_SIZES, { withChildProcess: true });
    lifecycle('wine');
    jobs.push({
      id: 'wine.stream.c-event',
      platform: 'wine',
      section: 6,
      title: 'C: Event ping-pong between two processes',
      run: () => {
        const [iterations, warmup] = quick ? [500, 50] : [5000, 500];
        const r = runProgramUnderWine('win_event_pingpong', [iterations, warmup]);
        return [{ id: 'wine.stream.c-event', platform: 'wine', section: 6, name: 'C: Event ping-pong round trip (two processes)', unit: 'us', kind: 'latency', samples: r.roundtrip_ns }];
      },
    });
    streamJobs('wine');
  }
  return jobs;
}
