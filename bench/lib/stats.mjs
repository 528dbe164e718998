// Order statistics over per-iteration samples. Percentiles use the
// nearest-rank definition, so a p99 over fewer than 100 samples is simply the
// slowest sample (bench/README.md says so next to the table).

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function median(sorted) {
  const n = sorted.length;
  if (n === 0) return NaN;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/** { n, median, p99, min, max } of nanosecond samples. */
export function summarize(samplesNs) {
  const sorted = [...samplesNs].sort((a, b) => a - b);
  return { n: sorted.length, median: median(sorted), p99: percentile(sorted, 99), min: sorted[0], max: sorted.at(-1) };
}
