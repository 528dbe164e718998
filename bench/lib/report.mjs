// Turns raw samples into records (median, p99, baseline, ratio, target), and
// records into the console table and the JSON file.
import { formatSize } from './bytes.mjs';
import { PLATFORMS, SWEEP_SIZES, sizeId } from './plan.mjs';
import { summarize } from './stats.mjs';

const NS_PER_UNIT = { ns: 1, us: 1e3, ms: 1e6, s: 1e9 };

/**
 * Every comparison the report makes. `target` is one of issue 5's goals:
 * `max`/`min` bound the ratio metric.median / baseline.median (for times,
 * lower is better; for GB/s, higher is better); `maxMs` bounds the metric's
 * own median. Comparisons without a target are shown for context only.
 */
export const COMPARISONS = [
  { metric: 'rt.memport', baseline: 'rt.c', target: { max: 1.5, text: 'handoff round trip ≤ 1.5× the raw C baseline (SCM_RIGHTS + mmap)' } },
  { metric: 'rt.memport', baseline: 'rt.node-handle', target: { max: 1, strict: true, text: "handoff round trip faster than Node's own handle passing" } },
  { metric: 'rt.memport', baseline: 'rt.node-ipc' },
  { metric: 'rt.memport-ack', baseline: 'rt.c' },
  { metric: 'rt.node-handle', baseline: 'rt.c' },
  { metric: 'rt.node-ipc', baseline: 'rt.c' },
  { metric: 'handoff.memport.1g', target: { maxMs: 1, text: '1 GiB made available to another process in < 1 ms' } },
  { metric: 'handoff.memport.1g', baseline: 'handoff.stream.1g', target: { max: 1 / 300, text: '1 GiB made available ≥ 300× faster than streaming it through Node' } },
  { metric: 'handoff.memport.1g', baseline: 'handoff.cp.1g' },
  { metric: 'ack.memport.1g', baseline: 'handoff.stream.1g' },
  { metric: 'handoff.memport.64m', baseline: 'handoff.stream.64m' },
  { metric: 'handoff.memport.64m', baseline: 'handoff.cp.64m' },
  { metric: 'read.memport.1g', baseline: 'read.stream.1g', target: { min: 5, text: "consumer reading all of a repeatedly shared 1 GiB region: ≥ 5× Node's socket streaming throughput" } },
  { metric: 'read.memport.1g', baseline: 'ceiling.read', target: { min: 0.6, text: 'consumer reading all of a repeatedly shared 1 GiB region: ≥ 60 % of memory read bandwidth' } },
  { metric: 'read.memport.1g', baseline: 'read.cp.1g' },
  { metric: 'read.stream.1g', baseline: 'ceiling.read' },
  { metric: 'read.memport.64m', baseline: 'read.stream.64m' },
  { metric: 'read.memport.64m', baseline: 'read.cp.64m' },
  { metric: 'create.memport', baseline: 'create.c', target: { max: 2, text: 'region create + first view ≤ 2× raw C (memfd_create + ftruncate + mmap)' } },
  { metric: 'ceiling.memchr', baseline: 'ceiling.read' },
  { metric: 'ceiling.fresh-map', baseline: 'ceiling.read' },
  { metric: 'ceiling.populate-map', baseline: 'ceiling.read' },
  { metric: 'ceiling.kept-map', baseline: 'ceiling.read' },
  // Section 6: memport's streams (issue 11 §4).
  { metric: 'stream.notifier', baseline: 'stream.node-ipc', target: { max: 1, text: "notify -> wake round trip between two processes no slower than Node's child_process IPC round trip" } },
  { metric: 'stream.notifier', baseline: 'stream.c-eventfd' },
  { metric: 'stream.node-ipc', baseline: 'stream.c-eventfd' },
  { metric: 'stream.memport-64', baseline: 'stream.socket-64', target: { min: 10, text: "64-byte records, queue stream to another process: ≥ 10× the rate of length-prefixed records over a Node Unix socket" } },
  { metric: 'stream.memport-64', baseline: 'stream.sab-64' },
  { metric: 'stream.memport-64-batched', baseline: 'stream.socket-64', target: { min: 10, text: '64-byte records, queue stream to another process, batched (tryAcquire/tryNext): ≥ 10× the rate of length-prefixed records over a Node Unix socket' } },
  { metric: 'stream.socket-64', baseline: 'stream.sab-64' },
  { metric: 'stream.memport-1m', baseline: 'stream.c-memcpy-1m', target: { min: 0.5, text: '1 MiB records, queue stream to a reader that reads every byte: ≥ 50 % of memcpy bandwidth (C, same ring footprint)' } },
  { metric: 'stream.memport-1m', baseline: 'stream.c-pipe-1m' },
  { metric: 'stream.memport-1m', baseline: 'stream.c-memcpy-dram' },
  { metric: 'stream.c-pipe-1m', baseline: 'stream.c-memcpy-1m' },
  { metric: 'stream.memport-1m', baseline: 'ceiling.memcpy' },
  { metric: 'stream.frames.per-reader', baseline: 'stream.frames.written' },
  { metric: 'wine.stream.notifier', baseline: 'wine.stream.node-ipc', target: { max: 1, text: "under Wine: notify -> wake round trip no slower than Node's child_process IPC round trip" } },
  { metric: 'wine.stream.notifier', baseline: 'wine.stream.c-event' },
  { metric: 'wine.stream.node-ipc', baseline: 'wine.stream.c-event' },
  { metric: 'wine.stream.memport-64', baseline: 'wine.stream.socket-64', target: { min: 10, text: 'under Wine: 64-byte records, queue stream: ≥ 10× the rate of length-prefixed records over a Node named pipe' } },
  { metric: 'wine.stream.memport-64-batched', baseline: 'wine.stream.socket-64', target: { min: 10, text: 'under Wine: 64-byte records, queue stream, batched (tryAcquire/tryNext): ≥ 10× the rate of length-prefixed records over a Node named pipe' } },
  { metric: 'wine.stream.memport-1m', baseline: 'stream.c-memcpy-1m', target: { min: 0.5, text: "under Wine: 1 MiB records, reader reads every byte: ≥ 50 % of this machine's memcpy bandwidth (C on Linux, same ring footprint)" } },
  { metric: 'wine.stream.memport-1m', baseline: 'stream.c-pipe-1m' },
  { metric: 'wine.stream.memport-1m', baseline: 'stream.c-memcpy-dram' },
  { metric: 'wine.stream.frames.per-reader', baseline: 'wine.stream.frames.written' },
  { metric: 'wine.rt.memport', baseline: 'wine.rt.c', target: { max: 1.5, text: 'under Wine: handoff round trip ≤ 1.5× the raw C baseline under Wine (DuplicateHandle + pipe + MapViewOfFile)' } },
  { metric: 'wine.rt.memport', baseline: 'wine.rt.node-handle' },
  { metric: 'wine.rt.memport', baseline: 'wine.rt.node-ipc' },
  { metric: 'wine.rt.memport-ack', baseline: 'wine.rt.c' },
  { metric: 'wine.rt.node-handle', baseline: 'wine.rt.c' },
  { metric: 'wine.handoff.memport.64m', baseline: 'wine.handoff.stream.64m' },
  { metric: 'wine.handoff.memport.64m', baseline: 'wine.handoff.cp.64m' },
  { metric: 'wine.read.memport.64m', baseline: 'wine.read.stream.64m' },
  { metric: 'wine.handoff.memport.1g', baseline: 'wine.handoff.stream.1g' },
  { metric: 'wine.read.memport.1g', baseline: 'wine.read.stream.1g' },
];

/** A short name for a metric when it appears as a baseline. */
function shortName(id) {
  const rules = [
    [/rt\.c$/, (w) => (w ? 'C DuplicateHandle' : 'C SCM_RIGHTS')],
    [/rt\.node-handle$/, () => 'Node handle passing'],
    [/rt\.node-ipc$/, () => 'Node IPC'],
    [/^(wine\.)?(handoff|read)\.stream\./, (w) => (w ? 'named-pipe stream' : 'Unix-socket stream')],
    [/\.cp\./, () => 'child_process send'],
    [/^create\.c$/, () => 'C memfd'],
    [/^ceiling\.read$/, () => 'memory read bandwidth'],
    [/stream\.c-eventfd$/, () => 'C eventfd ping-pong'],
    [/stream\.c-event$/, () => 'C Event ping-pong'],
    [/stream\.sab-64$/, () => 'worker_threads + SharedArrayBuffer'],
    [/stream\.socket-64$/, (w) => (w ? 'named-pipe records' : 'Unix-socket records')],
    [/stream\.node-ipc$/, () => 'Node IPC'],
    [/stream\.c-memcpy-1m$/, () => 'C memcpy, same ring'],
    [/stream\.c-memcpy-dram$/, () => 'C memcpy, DRAM'],
    [/stream\.c-pipe-1m$/, () => 'C two-process ring'],
    [/^ceiling\.memcpy$/, () => 'memcpy bandwidth (1 GiB)'],
    [/stream\.frames\.written$/, () => "the writer's rate"],
  ];
  const wine = id.startsWith('wine.');
  for (const [pattern, name] of rules) if (pattern.test(id)) return name(wine);
  return id;
}

/**
 * A metric's summary in its own unit: times in `unit`, throughputs in GB/s
 * (bytes per ns), rates (samples are nanoseconds per item) in items per second.
 */
export function toRecord(metric) {
  const s = summarize(metric.samples);
  const inUnit = (ns) => (metric.kind === 'throughput' ? metric.bytes / ns : metric.kind === 'rate' ? 1e9 / ns : ns / NS_PER_UNIT[metric.unit]);
  return {
    id: metric.id,
    name: metric.name,
    platform: PLATFORMS[metric.platform],
    section: metric.section,
    kind: metric.kind,
    unit: metric.unit,
    median: inUnit(s.median),
    // For a throughput, "p99" is the rate of the 99th-percentile (slow-end) iteration.
    p99: inUnit(s.p99),
    n: s.n,
    medianNs: s.median,
    p99Ns: s.p99,
    ...(metric.bytes ? { bytes: metric.bytes } : {}),
  };
}

function evaluate(target, ratio, record) {
  if ('maxMs' in target) return record.medianNs / 1e6 < target.maxMs;
  if (ratio === undefined) return null;
  if ('max' in target) return target.strict ? ratio < target.max : ratio <= target.max;
  return ratio >= target.min;
}

function targetText(target) {
  if ('maxMs' in target) return `< ${target.maxMs} ms`;
  if ('min' in target) return target.min < 1 ? `≥ ${Math.round(target.min * 100)} %` : `≥ ${target.min}×`;
  if (target.max < 1 && !target.strict) return `≥ ${Math.round(1 / target.max)}× faster`;
  return target.strict ? 'faster' : `≤ ${target.max}×`;
}

/** Adds baseline, ratio, target and met to each record; returns the list of evaluated comparisons. */
export function compare(records) {
  const byId = new Map(records.map((r) => [r.id, r]));
  const results = [];
  for (const c of COMPARISONS) {
    const record = byId.get(c.metric);
    if (!record) {
      if (c.target) results.push({ ...c, record: undefined, met: null, missing: c.metric });
      continue;
    }
    const base = c.baseline ? byId.get(c.baseline) : undefined;
    if (c.baseline && !base) {
      if (c.target) results.push({ ...c, record, met: null, missing: c.baseline });
      continue;
    }
    const ratio = base ? record.median / base.median : undefined;
    const met = c.target ? evaluate(c.target, ratio, record) : undefined;
    const entry = { ...c, record, base, ratio, met };
    results.push(entry);
    record.comparisons ??= [];
    record.comparisons.push({
      baseline: base?.name ?? null,
      baselineId: base?.id ?? null,
      baselineMedian: base?.median ?? null,
      ratio: ratio ?? null,
      ...(c.target ? { target: c.target.text, met } : {}),
    });
  }
  // The brief's flat fields come from each record's first comparison; a
  // target-only check (no baseline) still sets target/met.
  for (const r of records) {
    const first = r.comparisons?.find((x) => x.baseline) ?? r.comparisons?.[0];
    r.baseline = first?.baseline ?? null;
    r.ratio = first?.ratio ?? null;
    const targeted = r.comparisons?.filter((x) => x.target) ?? [];
    if (targeted.length) {
      r.target = targeted.map((x) => x.target).join('; ');
      r.met = targeted.every((x) => x.met === true) ? true : targeted.some((x) => x.met === false) ? false : null;
    }
  }
  return results;
}

// ---- formatting ----------------------------------------------------------------

function sig(value, digits = 3) {
  if (!Number.isFinite(value)) return String(value);
  if (value >= 10 ** digits) return Math.round(value).toString();
  return Number(value.toPrecision(digits)).toString();
}

export function formatNs(ns) {
  if (ns < 1e3) return `${sig(ns)} ns`;
  if (ns < 1e6) return `${sig(ns / 1e3)} µs`;
  if (ns < 1e9) return `${sig(ns / 1e6)} ms`;
  return `${sig(ns / 1e9)} s`;
}

/** Items per second, short: 1.23 M/s, 541 k/s, 60.1 /s. */
export function formatRate(perSecond) {
  if (perSecond >= 1e6) return `${sig(perSecond / 1e6)} M/s`;
  if (perSecond >= 1e3) return `${sig(perSecond / 1e3)} k/s`;
  return `${sig(perSecond)} /s`;
}

function formatValue(record, which) {
  if (record.kind === 'throughput') return `${sig(record[which])} GB/s`;
  if (record.kind === 'rate') return formatRate(record[which]);
  return formatNs(record[`${which}Ns`]);
}

/** A ratio with three significant digits, kept even when they are zeros (1.00×, not 1×). */
function times(ratio) {
  return ratio >= 1000 ? `${Math.round(ratio)}×` : `${ratio.toPrecision(3)}×`;
}

function describeRatio(entry) {
  const { ratio, record } = entry;
  const name = shortName(entry.base.id);
  if (record.kind === 'throughput' || record.kind === 'rate') {
    return ratio >= 1 ? `${times(ratio)} ${name}` : `${sig(ratio * 100, 2)} % of ${name}`;
  }
  return ratio <= 1 ? `${times(1 / ratio)} faster than ${name}` : `${times(ratio)} ${name}'s time`;
}

function verdict(entry) {
  if (!entry.target) return '';
  const label = targetText(entry.target);
  if (entry.met === null) return `target ${label}: n/a`;
  return `target ${label}: ${entry.met ? 'MET' : 'NOT MET'}`;
}

const SECTIONS = {
  1: (s) => `1. Handoff round trip (${s})`,
  2: () => '2. Large data (time to make available; read-all in GB/s)',
  3: () => '3. Region lifecycle',
  4: () => '4. Reference ceiling (C, this machine)',
  6: () => '6. Streams (issue 11): wake-ups, records, frames',
};

function pad(text, width, right = false) {
  const t = String(text);
  const len = [...t].length;
  if (len >= width) return t;
  return right ? ' '.repeat(width - len) + t : t + ' '.repeat(width - len);
}

/** The console table: one block per platform and section, then the sweep, then the targets. */
export function renderTable({ records, comparisons, header }) {
  const lines = [...header, ''];
  const NAME = 66;
  const row = (name, median, p99, n, note) =>
    `  ${pad(name, NAME)} ${pad(median, 10, true)} ${pad(p99, 10, true)} ${pad(n, 7, true)}  ${note}`.trimEnd();
  for (const platform of Object.values(PLATFORMS)) {
    const mine = records.filter((r) => r.platform === platform && (r.section <= 4 || r.section === 6));
    if (!mine.length) continue;
    lines.push(`${platform === PLATFORMS.linux ? 'Linux' : 'Windows Node under Wine (Wine figures only, not Windows figures)'}`);
    for (const section of [1, 2, 3, 4, 6]) {
      const rows = mine.filter((r) => r.section === section);
      if (!rows.length) continue;
      lines.push(row(SECTIONS[section](formatSize(1 << 20) + ' region'), 'median', 'p99', 'n', 'compared with'));
      for (const r of rows) {
        const mineC = comparisons.filter((c) => c.record === r && c.base);
        const targetOnly = comparisons.filter((c) => c.record === r && !c.base && c.target && c.met !== null);
        const notes = [...mineC.map((c) => `${describeRatio(c)}${c.target ? `  [${verdict(c)}]` : ''}`), ...targetOnly.map((c) => `[${verdict(c)}]`)];
        lines.push(row(r.name, formatValue(r, 'median'), formatValue(r, 'p99'), r.n, notes[0] ?? ''));
        for (const note of notes.slice(1)) lines.push(row('', '', '', '', note));
      }
      lines.push('');
    }
    if (platform === PLATFORMS.wine && mine.some((r) => r.section === 2)) {
      lines.push('  (child_process send(Buffer) of 1 GiB is not run under Wine: one transfer took about 13 s in trials,');
      lines.push('   too slow for a meaningful sample in the time budget; it runs at 64 MiB.)', '');
    }
  }
  lines.push(...renderSweep(records));
  lines.push(...renderTargets(comparisons));
  return lines.join('\n');
}

function renderSweep(records) {
  const byId = new Map(records.map((r) => [r.id, r]));
  const lines = [];
  for (const [prefix, label, streamName] of [['', 'Linux', 'Unix socket'], ['wine.', 'Wine', 'named pipe']]) {
    const sizes = SWEEP_SIZES.filter((b) => byId.has(`${prefix}handoff.memport.${sizeId(b)}`) || byId.has(`${prefix}handoff.stream.${sizeId(b)}`));
    if (!sizes.length) continue;
    lines.push(`Handoff vs streaming across sizes (${label}; medians; the chart bench/handoff-vs-streaming.svg is drawn from this)`);
    lines.push(`  ${pad('size', 9)} ${pad('memport handoff', 16, true)} ${pad(`${streamName} stream`, 18, true)} ${pad('speed-up', 9, true)}   ${pad('memport read-all', 17, true)} ${pad('stream read-all', 16, true)} ${pad('ratio', 7, true)}`);
    for (const bytes of sizes) {
      const id = sizeId(bytes);
      const m = byId.get(`${prefix}handoff.memport.${id}`);
      const s = byId.get(`${prefix}handoff.stream.${id}`);
      const mr = byId.get(`${prefix}read.memport.${id}`);
      const sr = byId.get(`${prefix}read.stream.${id}`);
      lines.push(
        `  ${pad(formatSize(bytes), 9)} ${pad(m ? formatNs(m.medianNs) : '—', 16, true)} ${pad(s ? formatNs(s.medianNs) : '—', 18, true)} ${pad(m && s ? `${sig(s.medianNs / m.medianNs)}×` : '—', 9, true)}   ${pad(mr ? `${sig(mr.median)} GB/s` : '—', 17, true)} ${pad(sr ? `${sig(sr.median)} GB/s` : '—', 16, true)} ${pad(mr && sr ? `${sig(mr.median / sr.median)}×` : '—', 7, true)}`,
      );
    }
    lines.push('');
  }
  return lines;
}

function renderTargets(comparisons) {
  // A target whose metric did not run (another section, or --only) is left out.
  const targeted = comparisons.filter((c) => c.target && c.record);
  if (!targeted.length) return [];
  const lines = ['Targets (issue 5; section 6: issue 11)'];
  for (const c of targeted) {
    const mark = c.met === true ? '✔ MET    ' : c.met === false ? '✘ NOT MET' : '· n/a    ';
    let detail;
    if (c.met === null) detail = `not measured in this run (${c.missing} missing)`;
    else if ('maxMs' in c.target) detail = `median ${formatNs(c.record.medianNs)}`;
    else {
      const fmt = (r) => (r.kind === 'throughput' ? `${sig(r.median)} GB/s` : r.kind === 'rate' ? formatRate(r.median) : formatNs(r.medianNs));
      detail = `${describeRatio(c)} (${fmt(c.record)} vs ${fmt(c.base)})`;
    }
    lines.push(`  ${mark}  ${c.target.text}: ${detail}`);
  }
  return lines;
}
