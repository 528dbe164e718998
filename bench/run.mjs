// npm run bench — memport's benchmark suite (issue 5).
//
//   npm run bench [-- --quick] [--no-wine] [--only <substring>] [--section <n>] [--json]
//
//   --quick        a smoke run: a few iterations / about a second per metric
//   --no-wine      skip the Windows part (Windows Node under Wine)
//   --only <text>  run only the jobs whose id or title contains <text> (case-insensitive)
//   --section <n>  run only section <n>'s jobs (1-6; 6 is streams), with --only too if given
//   --json         also write bench/results/latest.json
//
// Each metric runs in a fresh process (bench/measure.mjs, or a C baseline from
// bench/c/ built into build-bench/); this script prints progress, then the
// table, and draws bench/handoff-vs-streaming.svg (only a full run overwrites
// the committed chart; other runs draw into bench/results/). Needs `npm run
// build` first; the Wine part also needs `npm run build:win` (run here if the
// Windows addon is missing).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { root } from '../scripts/lib/env.mjs';
import { ensurePrefix, ensureWindowsNode, runWindowsNode, wineCommand } from '../scripts/lib/wine.mjs';
import { formatSize } from './lib/bytes.mjs';
import { describeMachine, machineLine, watchBackgroundLoad } from './lib/machine.mjs';
import { PLATFORMS, SWEEP_SIZES, buildPlan, sizeId } from './lib/plan.mjs';
import { compare, formatNs, formatRate, renderTable, toRecord } from './lib/report.mjs';
import { renderChart } from './lib/svg.mjs';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  console.log('usage: npm run bench [-- --quick] [--no-wine] [--only <substring>] [--section <n>] [--json]');
  process.exit(0);
}
const quick = argv.includes('--quick');
const json = argv.includes('--json');
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1]?.toLowerCase() : undefined;
if (argv.includes('--only') && !only) {
  console.error('--only needs a substring, e.g. --only "round trip" or --only wine');
  process.exit(2);
}
const section = argv.includes('--section') ? Number(argv[argv.indexOf('--section') + 1]) : undefined;
if (argv.includes('--section') && !(section >= 1 && section <= 6)) {
  console.error('--section needs a section number from 1 to 6 (6: streams)');
  process.exit(2);
}
const wanted = !argv.includes('--no-wine') && process.platform === 'linux';

const resultsDir = join(root, 'bench', 'results');
const startedAt = new Date();
const started = performance.now();

if (!existsSync(join(root, 'dist', 'index.js')) || !existsSync(join(root, 'build', 'Release', 'memport.node'))) {
  console.error('memport is not built: run `npm run build` first (the benchmark imports dist/ and the addon in build/Release/).');
  process.exit(2);
}

/** Gets the Windows side ready; returns { node, wine } or { skipped: reason }. */
function prepareWine() {
  const wine = wineCommand();
  if (!wine) return { skipped: 'Wine is not installed (npm run setup, or apt-get install -y wine64); rerun with --no-wine to silence this' };
  if (!existsSync(join(root, 'prebuilds', 'win32-x64', 'memport.node'))) {
    console.log('Building the Windows addon (npm run build:win)...');
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = spawnSync(npm, ['run', 'build:win', '--silent'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) return { skipped: '`npm run build:win` failed, so there is no Windows addon to load' };
  }
  try {
    ensureWindowsNode();
    ensurePrefix();
  } catch (e) {
    return { skipped: e.message };
  }
  const node = runWindowsNode(['--version']).output.trim();
  const version = spawnSync(wine, ['--version'], { encoding: 'utf8' }).stdout?.trim();
  return { node, wine: version || wine };
}

const machine = describeMachine();
let plan = buildPlan({ quick, wine: wanted });
if (only) plan = plan.filter((job) => `${job.id} ${job.title} ${PLATFORMS[job.platform]}`.toLowerCase().includes(only));
if (section) plan = plan.filter((job) => job.section === section);
let windows;
if (wanted && plan.some((job) => job.platform === 'wine')) {
  windows = prepareWine();
  if (windows.skipped) {
    console.warn(`⚠ Skipping the Windows part: ${windows.skipped}`);
    plan = plan.filter((job) => job.platform !== 'wine');
  }
}
if (!plan.length) {
  console.error(`No benchmark matches${only ? ` --only ${JSON.stringify(only)}` : ''}${section ? ` --section ${section}` : ''}.`);
  process.exit(2);
}

console.log(`memport benchmarks${quick ? ' (quick smoke run: numbers are NOT representative)' : ''}`);
console.log(`Machine: ${machineLine(machine)}`);
if (windows?.node) console.log(`Windows: Windows Node ${windows.node} under ${windows.wine}`);
console.log(`${plan.length} jobs; every metric runs in fresh processes, producer and consumer are two processes on this machine.\n`);

const load = watchBackgroundLoad();
const metrics = [];
const failures = [];
const width = String(plan.length).length;
for (const [i, job] of plan.entries()) {
  const tag = `[${String(i + 1).padStart(width)}/${plan.length}] ${job.platform === 'wine' ? 'wine ' : 'linux'}`;
  process.stdout.write(`${tag} ${job.title} … `);
  const t0 = performance.now();
  try {
    const produced = await job.run();
    metrics.push(...produced);
    const first = toRecord(produced[0]);
    const value = first.kind === 'throughput' ? `${first.median.toPrecision(3)} GB/s` : first.kind === 'rate' ? formatRate(first.median) : formatNs(first.medianNs);
    console.log(`${value} median, n=${first.n} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    console.log('FAILED');
    failures.push({ id: job.id, title: job.title, error: e.message });
    console.log(`    ${e.message.split('\n').slice(0, 6).join('\n    ')}`);
  }
}
const background = load.stop();
const durationSeconds = (performance.now() - started) / 1000;

const records = metrics.map(toRecord);
const comparisons = compare(records);
const header = [
  `memport benchmark results — ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC${quick ? ' — QUICK RUN, not representative' : ''}`,
  `Machine: ${machineLine(machine)}${machine.hypervisor && machine.hypervisor !== 'none' ? ` (virtual machine: ${machine.hypervisor})` : ''}`,
  ...(windows?.node ? [`Windows side: Windows Node ${windows.node} under ${windows.wine} — Wine figures only, not Windows figures`] : []),
  ...(windows?.skipped ? [`Windows side: skipped (${windows.skipped})`] : []),
  `Run: ${durationSeconds.toFixed(0)} s; CPU used by other processes meanwhile: ${background === undefined ? 'unknown' : `${(background * 100).toFixed(0)} % of the machine`}${background > 0.1 ? ' — expect slower, noisier figures' : ''}`,
  'p99 is nearest-rank: with fewer than 100 samples it is the slowest one. For GB/s and /s rows it is the rate of the slow-end (99th-percentile) iteration.',
];
console.log(`\n${renderTable({ records, comparisons, header })}`);

if (failures.length) {
  console.log(`\n${failures.length} job(s) failed:`);
  for (const f of failures) console.log(`  ${f.id} (${f.title}):\n    ${f.error.split('\n').join('\n    ')}`);
}

// ---- the chart --------------------------------------------------------------
const chartPath = writeChart();
if (chartPath) console.log(`\nChart: ${relative(root, chartPath)}`);

if (json) {
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, 'latest.json');
  const strip = ({ medianNs, p99Ns, section, kind, ...rest }) => ({ ...rest, kind, medianNs, p99Ns });
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        date: startedAt.toISOString(),
        quick,
        only: only ?? null,
        section: section ?? null,
        machine,
        windows: windows ?? null,
        durationSeconds,
        otherProcessesCpuShare: background ?? null,
        records: records.map(strip),
        targets: comparisons
          .filter((c) => c.target)
          .map((c) => ({ target: c.target.text, metric: c.metric, baseline: c.baseline ?? null, ratio: c.ratio ?? null, median: c.record?.median ?? null, unit: c.record?.unit ?? null, met: c.met })),
        failures,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`JSON: ${relative(root, file)}`);
}
process.exit(failures.length ? 1 : 0);

function writeChart() {
  const byId = new Map(records.map((r) => [r.id, r]));
  const points = (prefix) => SWEEP_SIZES.flatMap((b) => (byId.has(`${prefix}.${sizeId(b)}`) ? [[b, byId.get(`${prefix}.${sizeId(b)}`).medianNs]] : []));
  const series = [
    { label: 'memport handoff\nconsumer maps it, views it, replies', color: '#1b7f3b', points: points('handoff.memport') },
    { label: 'memport handoff\n+ consumer reads every byte', color: '#6cc07c', points: points('read.memport') },
    { label: 'Node Unix-socket stream\nall bytes arrive, consumer replies', color: '#c0392b', points: points('handoff.stream') },
    { label: 'Node Unix-socket stream\n+ consumer reads every byte', color: '#f08a5d', points: points('read.stream') },
  ].filter((s) => s.points.length);
  if (!series.length) return undefined;
  const ceiling = byId.get('ceiling.read');
  if (ceiling) {
    series.push({
      label: `reading at C memory bandwidth\n(${ceiling.median.toPrecision(3)} GB/s, no transfer at all)`,
      color: '#777',
      dash: '6 5',
      points: SWEEP_SIZES.map((b) => [b, b / ceiling.median]),
    });
  }
  const big = SWEEP_SIZES.at(-1);
  const m = byId.get(`handoff.memport.${sizeId(big)}`);
  const s = byId.get(`handoff.stream.${sizeId(big)}`);
  const notes = [
    `${machineLine(machine)} — ${startedAt.toISOString().slice(0, 10)}${quick ? ' — QUICK RUN' : ''}`,
    m && s
      ? `${formatSize(big)}: memport ${formatNs(m.medianNs)} vs stream ${formatNs(s.medianNs)} (${(s.medianNs / m.medianNs).toPrecision(3)}× faster). Producer and consumer: two Node processes; npm run bench.`
      : 'Producer and consumer: two Node processes on the same machine; npm run bench.',
  ];
  // The step in memport's line, when there is one: from 64 MiB on, every
  // received region's new external ArrayBuffer can push V8 past its
  // external-memory limit (64 MB), so the consumer runs major GCs. Annotated
  // only when the run shows it (64 MiB at least 5× slower than 16 MiB).
  const annotations = [];
  const step = byId.get('handoff.memport.64m');
  const before = byId.get('handoff.memport.16m');
  if (step && (!before || step.medianNs > 5 * before.medianNs)) annotations.push({ bytes: step.bytes ?? 64 * 2 ** 20, ns: step.medianNs, text: ['≥ 64 MiB: V8 major GCs in the consumer', '(each message brings a new external ArrayBuffer)'] });
  const svg = renderChart({ series, annotations, title: 'memport: handing over a region vs streaming the bytes (Linux)', notes });
  const official = !quick && !only && !section && failures.length === 0;
  const path = official ? join(root, 'bench', 'handoff-vs-streaming.svg') : join(resultsDir, 'handoff-vs-streaming.svg');
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, svg);
  return path;
}
