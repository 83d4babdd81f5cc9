/**
 * The simulator's charts as SVG files (slicectl simulate --out): the utilisation of the nodes
 * over time and the slowdown's distribution function, one line per policy, so that policies
 * compare at a glance in any browser. Pure: text in, text out.
 */
import type { SimResult } from './metrics.js';

const WIDTH = 720;
const HEIGHT = 360;
const MARGIN = { left: 60, right: 150, top: 30, bottom: 45 };
const LABEL_MAX = 40;
const COLOURS = ['#3b6ea5', '#d9822b', '#3c9d5d', '#c23b3b', '#7a5ea8', '#8c6d46', '#c2549d', '#5a6b7d'];

interface Series {
  label: string;
  points: ReadonlyArray<readonly [number, number]>;
}

function escape(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

function tick(v: number): string {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(3)));
}

/** A line chart of several series; `logX` draws the x axis in powers of ten. */
export function lineChart(options: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  logX?: boolean;
  yMax?: number;
}): string {
  const fx = options.logX ? (x: number): number => Math.log10(Math.max(x, 1e-12)) : (x: number): number => x;
  const all = options.series.flatMap((s) => s.points);
  const xs = all.map(([x]) => fx(x));
  const [x0, x1] = xs.length > 0 ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  const y1 = options.yMax ?? Math.max(1e-9, ...all.map(([, y]) => y));
  // The legend is as wide as its longest label (about 7 px a character at 12 px), cut at LABEL_MAX characters.
  const labels = options.series.map((s) => (s.label.length > LABEL_MAX ? `${s.label.slice(0, LABEL_MAX - 1)}…` : s.label));
  const right = Math.max(MARGIN.right, 48 + 7 * Math.max(0, ...labels.map((l) => l.length)));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const width = MARGIN.left + plotW + right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (x: number): number => MARGIN.left + ((fx(x) - x0) / (x1 - x0 || 1)) * plotW;
  const sy = (y: number): number => MARGIN.top + plotH - (y / y1) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEIGHT}" viewBox="0 0 ${width} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="18" font-size="14" font-weight="bold">${escape(options.title)}</text>`,
  ];
  for (let k = 0; k <= 4; k++) {
    const y = (y1 * k) / 4;
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${sy(y)}" y2="${sy(y)}" stroke="#e3e6ea"/>`,
      `<text x="${MARGIN.left - 6}" y="${sy(y) + 4}" text-anchor="end">${tick(y)}</text>`,
    );
    const xv = x0 + ((x1 - x0) * k) / 4;
    const label = options.logX ? tick(10 ** xv) : tick(xv);
    const px = MARGIN.left + (plotW * k) / 4;
    parts.push(`<text x="${px}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${label}</text>`);
  }
  parts.push(
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 8}" text-anchor="middle">${escape(options.xLabel)}</text>`,
    `<text x="14" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 14 ${MARGIN.top + plotH / 2})">${escape(options.yLabel)}</text>`,
  );
  options.series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const d = s.points.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    if (d !== '') parts.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="1.5"/>`);
    const ly = MARGIN.top + 14 + i * 18;
    parts.push(
      `<line x1="${width - right + 12}" x2="${width - right + 32}" y1="${ly - 4}" y2="${ly - 4}" stroke="${colour}" stroke-width="3"/>`,
      `<text x="${width - right + 38}" y="${ly}">${escape(labels[i]!)}</text>`,
    );
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}

/** What the charts draw of a result (a saved one too). */
export type ChartedResult = Pick<SimResult, 'label' | 'utilisation' | 'slowdownCdf'>;

/** The charts' file names: utilisation, and the slowdown's CDF when jobs had run times (not curves). */
export function chartNames(results: readonly ChartedResult[]): string[] {
  return results.every((r) => r.slowdownCdf.length === 0) ? ['utilisation.svg'] : ['utilisation.svg', 'slowdown-cdf.svg'];
}

/** One chart of a comparison by its file name, or undefined when it has no such chart (chartNames). */
export function resultChart(results: readonly ChartedResult[], name: string): string | undefined {
  if (!chartNames(results).includes(name)) return undefined;
  return name === 'utilisation.svg'
    ? lineChart({
        title: 'Utilisation of the nodes over time',
        xLabel: 'simulated seconds',
        yLabel: 'share of all CPU used',
        series: results.map((r) => ({ label: r.label, points: r.utilisation })),
        yMax: 1,
      })
    : lineChart({
        title: 'Slowdown: share of jobs at most x',
        xLabel: 'slowdown (sojourn / run time alone), log scale',
        yLabel: 'share of jobs',
        series: results.map((r) => ({ label: r.label, points: r.slowdownCdf })),
        logX: true,
        yMax: 1,
      });
}

/** The charts of a comparison, by file name (chartNames). */
export function resultCharts(results: readonly ChartedResult[]): Record<string, string> {
  return Object.fromEntries(chartNames(results).map((name) => [name, resultChart(results, name)!]));
}
