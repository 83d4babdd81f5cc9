/**
 * How a simulated node divides its CPU among its tasks: the node agent's entitlement maths
 * (core/entitlement.ts). Tasks of one slice form one member; tasks without a slice are a
 * member each; members have equal shares, no reservation and no limit, and a slice's part is
 * divided again among its tasks. With equal shares and nothing reserved or capped the maths is
 * water-filling (each gets min(demand, level), one level filling the capacity), computed here
 * directly for the common case of a node without slices; test/unit/sim.test.ts checks that
 * it gives what computeEntitlements gives.
 */
import { computeEntitlements, type EntitlementNode } from '../core/entitlement.js';

const EQUAL = { reservation: 0, limit: null, shares: 100 } as const;

/**
 * Water-filling of `capacity` among `demands` with equal shares: rates[k] = min(demands[k],
 * level). `order` is scratch space of at least demands.length.
 */
export function waterFill(capacity: number, demands: ArrayLike<number>, count: number, rates: Float64Array, order: Int32Array): void {
  let total = 0;
  for (let k = 0; k < count; k++) total += demands[k]!;
  if (total <= capacity) {
    for (let k = 0; k < count; k++) rates[k] = demands[k]!;
    return;
  }
  // Tasks asking the same (the common case): one level for all.
  let same = true;
  for (let k = 1; k < count && same; k++) same = demands[k] === demands[0];
  if (same) {
    const level = Math.min(demands[0]!, capacity / count);
    for (let k = 0; k < count; k++) rates[k] = level;
    return;
  }
  // Smallest demands first (insertion sort: a node holds few tasks).
  for (let r = 0; r < count; r++) {
    let q = r;
    while (q > 0 && demands[order[q - 1]!]! > demands[r]!) {
      order[q] = order[q - 1]!;
      q--;
    }
    order[q] = r;
  }
  let left = capacity;
  for (let r = 0; r < count; r++) {
    const k = order[r]!;
    const level = left / (count - r);
    const d = demands[k]!;
    if (d <= level) {
      rates[k] = d;
      left -= d;
    } else {
      for (let q = r; q < count; q++) rates[order[q]!] = level;
      return;
    }
  }
}

/** Rates of tasks with slices (slice index per task, -1 for none): members as described above. */
export function shareWithSlices(capacity: number, demands: readonly number[], slices: readonly number[]): number[] {
  const bySlice = new Map<number, number[]>();
  const members: EntitlementNode[] = [];
  demands.forEach((d, k) => {
    const s = slices[k]!;
    if (s < 0) members.push({ id: `t${k}`, cpu: EQUAL, demand: d });
    else bySlice.set(s, [...(bySlice.get(s) ?? []), k]);
  });
  for (const [s, list] of bySlice) members.push({ id: `s${s}`, cpu: EQUAL, demand: list.reduce((sum, k) => sum + demands[k]!, 0) });
  const top = computeEntitlements(capacity, members).nodes;
  const rates = demands.map((_, k) => (slices[k]! < 0 ? top.get(`t${k}`)!.entitlement : 0));
  for (const [s, list] of bySlice) {
    const inner = computeEntitlements(
      top.get(`s${s}`)!.entitlement,
      list.map((k) => ({ id: `t${k}`, cpu: EQUAL, demand: demands[k]! })),
    ).nodes;
    for (const k of list) rates[k] = inner.get(`t${k}`)!.entitlement;
  }
  return rates;
}
