/**
 * A saved simulation's document as the admin API accepts it (PUT /v1/simulations/NAME): the
 * shape `slicectl simulate --json` prints (the CLI builds it from the simulator's results
 * typed as this, so the two cannot drift apart), with bounds, so that what the daemon keeps and
 * draws is what the simulator makes and no more. Pure.
 */
import { z } from 'zod';

/** Policies compared in one saved run. */
export const MAX_SAVED_POLICIES = 16;
/** Points of one series (the simulator samples 200, and about 100 for the slowdown's CDF). */
export const MAX_SERIES_POINTS = 10_000;

// JSON has no NaN: a figure without a value (no jobs measured) comes as null.
const figure = z.number().nullable();
const count = z.number().int().nonnegative().nullable();
const series = z.array(z.tuple([z.number(), z.number()])).max(MAX_SERIES_POINTS);
const distribution = z.strictObject({ mean: figure, p50: figure, p99: figure });

const resultSchema = z.strictObject({
  label: z.string().min(1).max(256),
  nodes: count,
  jobs: count,
  measured: count,
  sojourn: distribution,
  slowdown: distribution,
  wait: distribution,
  slowdownCdf: series,
  utilisation: series,
  utilisationMean: figure,
  imbalance: series,
  imbalanceMean: figure,
  migrations: count,
  curves: z.strictObject({ tasks: count, askedCpuSeconds: figure, servedFraction: figure }).nullable(),
  overloadedFraction: figure,
  refused: count,
  refusals: z.record(z.string().max(256), count).refine((r) => Object.keys(r).length <= 64, 'at most 64 refusal reasons'),
  unplaced: count,
  reservationViolations: count,
  decisions: count,
  decisionsPerSecond: figure,
  simulatedSeconds: figure,
  wallSeconds: figure,
  speedup: figure,
});

export const simulationDocumentSchema = z.strictObject({
  workload: z.string().min(1).max(4096),
  skipped: z.number().int().nonnegative(),
  seed: z.number().int().nonnegative(),
  loadPeriod: z.string().min(1).max(32),
  results: z.array(resultSchema).min(1).max(MAX_SAVED_POLICIES),
});

/** One policy's figures as saved (what the simulator's SimResult is in JSON: a figure without a value is null). */
export type SavedResult = z.infer<typeof resultSchema>;
/** What `slicectl simulate --json` prints and `--save` stores. */
export type SimulationDocument = z.infer<typeof simulationDocumentSchema>;
