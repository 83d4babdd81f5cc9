/**
 * Saved simulations (slicectl simulate --save NAME; /v1/simulations on the admin socket, the
 * dashboard's Simulations page): what `slicectl simulate --json` prints, kept by the daemon.
 */
import type { SavedResult, SimulationDocument } from '../core/simulations.js';

export type { SavedResult, SimulationDocument } from '../core/simulations.js';

export interface SimulationEntry {
  name: string;
  savedAt: string;
  workload: string;
  seed: number;
  nodes: number | null;
  policies: string[];
  /** The charts served at /v1/simulations/NAME/FILE. */
  charts: string[];
}

export interface SavedSimulation extends SimulationEntry {
  document: SimulationDocument;
}

const round = (v: number | null, digits = 3): string =>
  v === null ? '-' : Number.isFinite(v) ? String(Number(v.toFixed(digits))) : String(v);

/** The side-by-side comparison's columns and cells, one row per policy (the CLI's table and the dashboard's). */
export function resultColumns(results: readonly SavedResult[]): { headers: string[]; rows: string[][] } {
  const curves = results.some((r) => r.curves !== null);
  // Jobs with demand curves end by time: what counts is the share of their demand they got, and the nodes' time over capacity.
  const [headers, cells] = curves
    ? [
        ['VMS', 'CPU ASKED (CPU-S)', 'SERVED', 'OVERLOADED'],
        (r: SavedResult) => [
          String(r.curves?.tasks ?? 0),
          round(r.curves?.askedCpuSeconds ?? null, 0),
          round(r.curves?.servedFraction ?? null, 4),
          round(r.overloadedFraction, 4),
        ],
      ]
    : [
        ['JOBS', 'SOJOURN MEAN', 'P50', 'P99', 'SLOWDOWN MEAN', 'P99', 'WAIT MEAN'],
        (r: SavedResult) => [
          String(r.measured),
          round(r.sojourn.mean),
          round(r.sojourn.p50),
          round(r.sojourn.p99),
          round(r.slowdown.mean),
          round(r.slowdown.p99),
          round(r.wait.mean),
        ],
      ];
  return {
    headers: ['POLICY', ...headers, 'UTIL', 'IMBALANCE', 'MIGRATIONS', 'REFUSED', 'UNPLACED', 'VIOLATIONS', 'DECISIONS/S'],
    rows: results.map((r) => [
      r.label,
      ...cells(r),
      round(r.utilisationMean),
      round(r.imbalanceMean),
      String(r.migrations),
      String(r.refused),
      String(r.unplaced),
      String(r.reservationViolations),
      round(r.decisionsPerSecond, 0),
    ]),
  };
}
