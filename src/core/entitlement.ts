/**
 * Entitlement: what each slice should get right now. Pure; no I/O.
 *
 * Top-down over the tree of domains and slices. In every sibling group with capacity C:
 *   1. each member first gets its reservation, bounded by its demand;
 *   2. what is left is divided by shares among members whose demand is not yet met,
 *      clamped to their limits and demands, and whatever a member cannot use is
 *      redistributed to the others (work-conserving water-filling);
 *   3. a domain's entitlement becomes the capacity of its own members.
 * So e_i = min(demand_i, limit_i, reservation_i + shares_i * level) for one water level per
 * group. Alongside, the function returns a weight per member, reservation_i + shares_i *
 * level, which is what a proportional-share scheduler needs so that its allocation equals
 * the entitlement under contention and a member that wakes up gets its entitlement at once.
 */
import type { CpuAllocation } from './model.js';

export interface EntitlementNode {
  /** Unique key of the node, e.g. "slice/a" or "domain/d". */
  id: string;
  cpu: CpuAllocation;
  /** Demand in millicores, for slices (leaves). Ignored for nodes with children. */
  demand?: number;
  /** Members, for domains. A domain with no members has no demand. */
  children?: EntitlementNode[];
}

export interface NodeEntitlement {
  /** Millicores this node should get now. */
  entitlement: number;
  /** Relative weight among its siblings (millicores-equivalent, > 0). */
  weight: number;
  /** Demand after its own limit and its members' limits, in millicores. */
  effectiveDemand: number;
}

export interface EntitlementResult {
  nodes: Map<string, NodeEntitlement>;
  /** Water level (millicores per share) of each sibling group, keyed by parent id ("" for the top). */
  levels: Map<string, number>;
}

/** Smallest weight handed out, so no member is ever starved to zero by the scheduler. */
export const MIN_WEIGHT = 1;

export function computeEntitlements(capacity: number, roots: readonly EntitlementNode[]): EntitlementResult {
  const result: EntitlementResult = { nodes: new Map(), levels: new Map() };
  const demands = new Map<string, number>();
  for (const root of roots) effectiveDemand(root, demands);
  divide(Math.max(0, capacity), roots, '', demands, result);
  return result;
}

function effectiveDemand(node: EntitlementNode, memo: Map<string, number>): number {
  let demand: number;
  if (node.children) {
    demand = 0;
    for (const child of node.children) demand += effectiveDemand(child, memo);
  } else {
    demand = Math.max(0, node.demand ?? 0);
  }
  if (node.cpu.limit !== null) demand = Math.min(demand, node.cpu.limit);
  memo.set(node.id, demand);
  return demand;
}

function divide(
  capacity: number,
  members: readonly EntitlementNode[],
  parentId: string,
  demands: Map<string, number>,
  result: EntitlementResult,
): void {
  const n = members.length;
  if (n === 0) return;
  const cap = new Float64Array(n);
  const base = new Float64Array(n);
  let baseTotal = 0;
  for (let i = 0; i < n; i++) {
    const member = members[i]!;
    cap[i] = demands.get(member.id) ?? 0;
    base[i] = Math.min(member.cpu.reservation, cap[i]!);
    baseTotal += base[i]!;
  }
  // Admission control keeps reservations within capacity; if the capacity shrank below
  // them anyway, scale reservations down in proportion rather than exceed it.
  if (baseTotal > capacity && baseTotal > 0) {
    const scale = capacity / baseTotal;
    for (let i = 0; i < n; i++) base[i] = base[i]! * scale;
    baseTotal = capacity;
  }

  const level = waterLevel(capacity - baseTotal, members, cap, base);
  const potentialLevel = Number.isFinite(level) ? level : levelIfAllHungry(capacity, members);
  result.levels.set(parentId, potentialLevel);

  for (let i = 0; i < n; i++) {
    const member = members[i]!;
    const shares = member.cpu.shares;
    const entitlement = Number.isFinite(level) ? Math.min(cap[i]!, base[i]! + shares * level) : cap[i]!;
    // Not clamped to the limit: the quota enforces the cap, and a weight share above the cap
    // lets a capped member reach it despite throttling and per-CPU imbalance.
    const weight = Math.max(MIN_WEIGHT, member.cpu.reservation + shares * potentialLevel);
    result.nodes.set(member.id, { entitlement, weight, effectiveDemand: cap[i]! });
    if (member.children) divide(entitlement, member.children, member.id, demands, result);
  }
}

/**
 * The level L at which sum_i min(cap_i - base_i, shares_i * L) equals `spare`, or Infinity
 * when every member's demand is met with capacity to spare.
 */
function waterLevel(spare: number, members: readonly EntitlementNode[], cap: Float64Array, base: Float64Array): number {
  const hungry: { fullAt: number; shares: number; room: number }[] = [];
  let unmetTotal = 0;
  let activeShares = 0;
  for (let i = 0; i < members.length; i++) {
    const room = cap[i]! - base[i]!;
    if (room <= 0) continue;
    const shares = members[i]!.cpu.shares;
    hungry.push({ fullAt: room / shares, shares, room });
    unmetTotal += room;
    activeShares += shares;
  }
  if (unmetTotal <= spare) return Infinity;
  // Raise the level past each member's fill point in turn; members that are full keep
  // their room, the others share the rest in proportion to shares.
  hungry.sort((a, b) => a.fullAt - b.fullAt);
  let filled = 0;
  for (const member of hungry) {
    if (filled + activeShares * member.fullAt >= spare) break;
    filled += member.room;
    activeShares -= member.shares;
  }
  return activeShares > 0 ? (spare - filled) / activeShares : Infinity;
}

function levelIfAllHungry(capacity: number, members: readonly EntitlementNode[]): number {
  let reservations = 0;
  let shares = 0;
  for (const m of members) {
    reservations += m.cpu.reservation;
    shares += m.cpu.shares;
  }
  return shares > 0 ? Math.max(0, capacity - reservations) / shares : 0;
}
