/**
 * One step of the CPU controller, as pure arithmetic: from the desired state, measured usage
 * and estimated demand, compute entitlements and the cgroup weights that make the kernel's
 * proportional-share scheduler deliver them.
 *
 * Weights are the entitlement weights of computeEntitlements (reservation + shares * level),
 * so that under contention the scheduler's split equals the entitlement. Real schedulers
 * split per CPU and place tasks imperfectly, so a slow multiplicative correction (an
 * integral term) nudges the weight of a contended member whose measured usage is off its
 * entitlement. In "static" mode the weights are just the shares, as systemd's CPUWeight does;
 * reservations are then not enforced, which is what the isolation benchmark compares against.
 */
import type { DesiredState } from './model.js';
import { computeEntitlements, type EntitlementNode, type EntitlementResult } from './entitlement.js';
import { domainKey, sliceKey } from './layout.js';

export type CpuControlMode = 'entitlement' | 'static';

export interface ControlInput {
  state: DesiredState;
  /** Millicores the slices may share now. */
  capacity: number;
  /** Estimated demand per slice name, in millicores. */
  demand: ReadonlyMap<string, number>;
  /** Measured usage per node id (slices and domains), in millicores; empty on the first step. */
  usage: ReadonlyMap<string, number>;
  mode: CpuControlMode;
  /** Strength of the feedback correction, 0 (off) to 1. */
  gain: number;
  /** Corrections from the previous step, per node id (absent = 1). */
  corrections: ReadonlyMap<string, number>;
  /** Which nodes were contended in the previous step (absent = not known). */
  contended?: ReadonlyMap<string, boolean>;
}

export interface ControlOutput {
  /** Millicores divided: the input's, or less when the slices got less while saturated (sharedCapacity). */
  capacity: number;
  result: EntitlementResult;
  /** Weight per node id in cgroup v2 units (1..10000), normalised within each sibling group. */
  weights: Map<string, number>;
  corrections: Map<string, number>;
  contended: Map<string, boolean>;
}

const CORRECTION_MIN = 0.25;
const CORRECTION_MAX = 4;
/** A member counts as contended when it wants at least this much more than its entitlement. */
const CONTENDED_MARGIN = 1.05;
/** The slices count as saturated when together they wanted at least this much more than they got. */
const SATURATED_MARGIN = 1.05;

/** One period's measurements of a slice, for its demand estimate. */
export interface DemandSample {
  /** Seen for the first time: no earlier reading to take a difference from. */
  fresh: boolean;
  /** Threads in the slice's group now. */
  tasks: number;
  /** CPU used over the period, in millicores (ignored when fresh). */
  usedMc: number;
  /** Time its threads spent runnable but waiting, in millicores (ignored when fresh). */
  waitedMc: number;
}

/**
 * Estimated demand of a slice: what it used plus what it waited for. A fresh slice has no
 * interval yet: with threads it counts as hungry (Infinity), so that its weight starts at its
 * full potential rather than at nothing; with no thread at all it can use nothing (0), so an
 * empty slice, and a domain of empty slices, is entitled to nothing from the first period.
 */
export function sliceDemand(sample: DemandSample): number {
  if (sample.fresh) return sample.tasks > 0 ? Infinity : 0;
  return sample.usedMc + sample.waitedMc;
}

export interface SliceTree {
  roots: EntitlementNode[];
  /** Parent id per node id ("" for the node level). */
  parents: Map<string, string>;
}

export function buildTree(state: DesiredState, demand: ReadonlyMap<string, number>): SliceTree {
  const parents = new Map<string, string>();
  const domainNodes = new Map<string, EntitlementNode>();
  for (const domain of [...state.domains.values()]) {
    domainNodes.set(domain.name, { id: domainKey(domain.name), cpu: domain.cpu, children: [] });
  }
  const roots: EntitlementNode[] = [];
  const attach = (node: EntitlementNode, parent: string | null): void => {
    const parentNode = parent === null ? undefined : domainNodes.get(parent);
    if (parentNode) {
      parentNode.children!.push(node);
      parents.set(node.id, parentNode.id);
    } else {
      roots.push(node);
      parents.set(node.id, '');
    }
  };
  for (const domain of [...state.domains.values()]) attach(domainNodes.get(domain.name)!, domain.parent);
  for (const slice of [...state.slices.values()]) {
    attach({ id: sliceKey(slice.name), cpu: slice.cpu, demand: demand.get(slice.name) ?? 0 }, slice.domain);
  }
  return { roots, parents };
}

/**
 * The millicores the slices can really share: the capacity given, unless in the last period
 * the node was saturated (the slices together wanted more than they got) and they got less
 * than it. Then something outside them took the rest (the system past its reserve, another
 * guest on the host, an emulator), and a reservation is a guarantee within what is there:
 * entitlements, and so weights, are computed over what the slices got. Dividing the nominal
 * capacity instead shrinks every member alike, the reserved one below its reservation, and
 * the feedback correction cannot see it (every member is short by the same ratio).
 * What the slices get together does not depend on their weights when all wait for CPU, so
 * this does not feed back on itself. Unknown while any top-level member has no reading yet.
 */
export function sharedCapacity(
  capacity: number,
  roots: readonly EntitlementNode[],
  demand: EntitlementResult,
  usage: ReadonlyMap<string, number>,
): number {
  let used = 0;
  let wanted = 0;
  for (const root of roots) {
    const got = usage.get(root.id);
    const want = demand.nodes.get(root.id)?.effectiveDemand;
    if (got === undefined || want === undefined || !Number.isFinite(want)) return capacity;
    used += got;
    wanted += want;
  }
  const saturated = wanted > used * SATURATED_MARGIN;
  return saturated && used > 0 && used < capacity ? used : capacity;
}

export function controlStep(input: ControlInput): ControlOutput {
  const tree = buildTree(input.state, input.demand);
  const nominal = computeEntitlements(input.capacity, tree.roots);
  const capacity = input.mode === 'static' ? input.capacity : sharedCapacity(input.capacity, tree.roots, nominal, input.usage);
  const result = capacity === input.capacity ? nominal : computeEntitlements(capacity, tree.roots);
  const corrections = new Map<string, number>();
  const contended = new Map<string, boolean>();
  const raw = new Map<string, number>();

  for (const [id, node] of result.nodes) contended.set(id, node.effectiveDemand > node.entitlement * CONTENDED_MARGIN);
  // When a member starts or stops competing, its siblings' corrections describe a situation
  // that is gone: start that group again from the plain entitlement weights.
  const stale = new Set<string>();
  for (const [id, now] of contended) {
    const before = input.contended?.get(id);
    if (before !== undefined && before !== now) stale.add(tree.parents.get(id) ?? '');
  }

  for (const [id, node] of result.nodes) {
    if (input.mode === 'static') {
      raw.set(id, sharesOf(input.state, id));
      continue;
    }
    let correction = stale.has(tree.parents.get(id) ?? '') ? 1 : (input.corrections.get(id) ?? 1);
    const used = input.usage.get(id);
    if (input.gain > 0 && used !== undefined && contended.get(id) && node.entitlement > 0 && !stale.has(tree.parents.get(id) ?? '')) {
      const ratio = node.entitlement / Math.max(used, 1);
      correction *= Math.pow(ratio, input.gain);
    } else {
      // Drift back towards the plain weight when there is nothing to correct.
      correction = Math.pow(correction, 0.7);
    }
    correction = Math.min(CORRECTION_MAX, Math.max(CORRECTION_MIN, correction));
    corrections.set(id, correction);
    raw.set(id, node.weight * correction);
  }

  return { capacity, result, weights: input.mode === 'static' ? roundWeights(raw) : normalise(raw, tree.parents), corrections, contended };
}

function sharesOf(state: DesiredState, id: string): number {
  const [kind, name] = [id.slice(0, id.indexOf('/')), id.slice(id.indexOf('/') + 1)];
  const spec = kind === 'slice' ? state.slices.get(name) : state.domains.get(name);
  return spec?.cpu.shares ?? 100;
}

function roundWeights(raw: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [id, w] of raw) out.set(id, Math.max(1, Math.min(10000, Math.round(w))));
  return out;
}

/** Scale each sibling group so its largest weight is 10000: only ratios between siblings matter, and this keeps the most resolution. */
function normalise(raw: Map<string, number>, parents: Map<string, string>): Map<string, number> {
  const maxByGroup = new Map<string, number>();
  for (const [id, w] of raw) {
    const group = parents.get(id) ?? '';
    maxByGroup.set(group, Math.max(maxByGroup.get(group) ?? 0, w));
  }
  const out = new Map<string, number>();
  for (const [id, w] of raw) {
    const max = maxByGroup.get(parents.get(id) ?? '') ?? w;
    out.set(id, Math.max(1, Math.min(10000, Math.round((w / max) * 10000))));
  }
  return out;
}
