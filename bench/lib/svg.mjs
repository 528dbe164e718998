// The handoff-vs-streaming chart, written by hand as SVG (no dependencies):
// time to make N bytes available to another process, log-log, one line per
// way of doing it, annotated with the machine and the date.
import { formatSize } from './bytes.mjs';
import { formatNs } from './report.mjs';

const WIDTH = 960;
const HEIGHT = 600;
const PLOT = { left: 90, right: 300, top: 78, bottom: 96 };

const escapeXml = (text) => String(text).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);

/**
 * @param {{ series: Array<{ label: string, color: string, dash?: string, points: Array<[number, number]> }>,
 *           title: string, notes: string[], annotations?: Array<{ bytes: number, ns: number, text: string[] }> }} chart
 *   points and annotations are placed at [bytes, nanoseconds]
 */
export function renderChart({ series, title, notes, annotations = [] }) {
  const all = series.flatMap((s) => s.points);
  const xs = all.map(([b]) => Math.log2(b));
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const ys = all.map(([, ns]) => Math.log10(ns));
  const yMin = Math.floor(Math.min(...ys));
  const yMax = Math.ceil(Math.max(...ys));
  const plotW = WIDTH - PLOT.left - PLOT.right;
  const plotH = HEIGHT - PLOT.top - PLOT.bottom;
  const px = (bytes) => PLOT.left + ((Math.log2(bytes) - xMin) / (xMax - xMin || 1)) * plotW;
  const py = (ns) => PLOT.top + plotH - ((Math.log10(ns) - yMin) / (yMax - yMin || 1)) * plotH;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="13">`);
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  out.push(`<text x="${PLOT.left}" y="30" font-size="18" font-weight="600">${escapeXml(title)}</text>`);
  out.push(`<text x="${PLOT.left}" y="52" fill="#555">Time until the consumer process has the bytes (median per transfer; log–log; lower is better)</text>`);

  // Grid and axes: one line per decade of time, one tick per payload size.
  for (let d = yMin; d <= yMax; d++) {
    const y = py(10 ** d);
    out.push(`<line x1="${PLOT.left}" y1="${y.toFixed(1)}" x2="${PLOT.left + plotW}" y2="${y.toFixed(1)}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${PLOT.left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#333">${escapeXml(formatNs(10 ** d))}</text>`);
  }
  const sizes = [...new Set(all.map(([b]) => b))].sort((a, b) => a - b);
  for (const bytes of sizes) {
    const x = px(bytes);
    out.push(`<line x1="${x.toFixed(1)}" y1="${PLOT.top}" x2="${x.toFixed(1)}" y2="${PLOT.top + plotH}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${PLOT.top + plotH + 20}" text-anchor="middle" fill="#333">${escapeXml(formatSize(bytes))}</text>`);
  }
  out.push(`<rect x="${PLOT.left}" y="${PLOT.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${PLOT.left + plotW / 2}" y="${PLOT.top + plotH + 44}" text-anchor="middle" fill="#333">payload size</text>`);

  // Lines, markers and a legend entry per series.
  series.forEach((s, i) => {
    const points = [...s.points].sort((a, b) => a[0] - b[0]);
    if (!points.length) return;
    const path = points.map(([b, ns], j) => `${j ? 'L' : 'M'}${px(b).toFixed(1)},${py(ns).toFixed(1)}`).join(' ');
    out.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    if (!s.dash) {
      for (const [b, ns] of points) {
        out.push(`<circle cx="${px(b).toFixed(1)}" cy="${py(ns).toFixed(1)}" r="3.5" fill="${s.color}"><title>${escapeXml(`${s.label}: ${formatSize(b)} in ${formatNs(ns)}`)}</title></circle>`);
      }
    }
    const ly = PLOT.top + 10 + i * 44;
    const lx = PLOT.left + plotW + 20;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 28}" y2="${ly}" stroke="${s.color}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    const [first, ...rest] = s.label.split('\n');
    out.push(`<text x="${lx + 36}" y="${ly + 4}" fill="#222">${escapeXml(first)}</text>`);
    rest.forEach((line, k) => out.push(`<text x="${lx + 36}" y="${ly + 20 + k * 15}" fill="#666" font-size="12">${escapeXml(line)}</text>`));
  });

  for (const a of annotations) {
    const x = px(a.bytes);
    const y = py(a.ns);
    // Text well below the point, under the other lines, with a leader line up to it.
    const textY = Math.min(y + 120, PLOT.top + plotH - 14 * a.text.length);
    out.push(`<line x1="${x.toFixed(1)}" y1="${(y + 6).toFixed(1)}" x2="${x.toFixed(1)}" y2="${(textY - 14).toFixed(1)}" stroke="#1b7f3b" stroke-width="1"/>`);
    a.text.forEach((line, k) => {
      out.push(`<text x="${x.toFixed(1)}" y="${(textY + k * 14).toFixed(1)}" text-anchor="middle" fill="#1b7f3b" font-size="12">${escapeXml(line)}</text>`);
    });
  }

  notes.forEach((note, i) => {
    out.push(`<text x="${PLOT.left}" y="${HEIGHT - 28 + i * 16}" fill="#555" font-size="12">${escapeXml(note)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
