/**
 * Block I/O allocations as pure functions: the BFQ weight mapping, the `--io-max` syntax,
 * merging updates into per-device caps, and the effective caps of every group.
 *
 * Domain caps: cgroup v2's io.max is hierarchical, so a domain's cap is written on the
 * domain's group and bounds its members there. cgroup v1's blkio.throttle.* is not (without
 * sane_behavior a parent's cap does not slow its children at all), so on v1 sliced splits a
 * domain's cap among the domain's direct members in proportion to their io.weight and each
 * member gets min(own cap, its part); nested domains split their part again. The parts add
 * up to at most the domain's cap. The split is static: a member's unused part is not lent
 * to its siblings (the v1 emulation trades work conservation for a hard bound).
 */
import type { DesiredState, IoAllocation, IoCaps, IoDeviceLimit, IoInput, ResolvedIoInput } from './model.js';
import { minLimit } from './limits.js';
import { domainKey, sliceKey } from './layout.js';
import { SlicedError } from './errors.js';
import { MAX_DOMAIN_DEPTH } from './domains.js';

/** The caps of a device, in the order the kernel's io.max writes them. */
export const IO_CAP_FIELDS = ['rbps', 'wbps', 'riops', 'wiops'] as const satisfies ReadonlyArray<keyof IoCaps>;

export const BFQ_WEIGHT_MIN = 1;
export const BFQ_WEIGHT_MAX = 1000;

/**
 * io.weight (1..10000) to a BFQ weight (1..1000): weight/10, so the ratio between siblings
 * is kept (900:100 stays 9:1; systemd's piecewise mapping would make it 172:100). Weights
 * below 15 all become 1 or 2: the low end loses resolution, not the ratios that matter.
 */
export function bfqWeight(weight: number): number {
  return Math.max(BFQ_WEIGHT_MIN, Math.min(BFQ_WEIGHT_MAX, Math.round(weight / 10)));
}

const MAJ_MIN = /^(\d+):(\d+)$/;

/** "8:16" in canonical form, or null when `text` is not MAJ:MIN. */
export function parseMajMin(text: string): string | null {
  const match = MAJ_MIN.exec(text.trim());
  return match ? `${Number(match[1])}:${Number(match[2])}` : null;
}

/**
 * One `--io-max` argument: `DEV:rbps=10M,wbps=5M,riops=100,wiops=50` or `DEV:none`, where
 * DEV is a path or MAJ:MIN. Values are checked later by the schema (one place for units).
 */
export function parseIoMaxArgument(text: string): { device: string; caps: Record<string, string> | 'none' } {
  const colon = text.lastIndexOf(':');
  const device = colon > 0 ? text.slice(0, colon) : '';
  const settings = colon > 0 ? text.slice(colon + 1) : '';
  const usage = 'must look like DEV:rbps=10M,wbps=5M,riops=N,wiops=N or DEV:none (DEV a path like /dev/vdb or MAJ:MIN)';
  if (!device || !settings) throw new SlicedError('EINVAL', `--io-max ${JSON.stringify(text)} ${usage}`);
  if (settings === 'none') return { device, caps: 'none' };
  const caps: Record<string, string> = {};
  for (const pair of settings.split(',')) {
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq) : '';
    if (!(IO_CAP_FIELDS as readonly string[]).includes(key) || eq === pair.length - 1) {
      throw new SlicedError(
        'EINVAL',
        `--io-max ${JSON.stringify(text)}: ${JSON.stringify(pair)} ${usage}; keys are ${IO_CAP_FIELDS.join(', ')}`,
      );
    }
    if (key in caps) throw new SlicedError('EINVAL', `--io-max ${JSON.stringify(text)} sets ${key} twice`);
    caps[key] = pair.slice(eq + 1);
  }
  return { device, caps };
}

/** Repeated `--io-max` arguments as the API's `io.max` object (a later one for the same device wins). */
export function ioMaxArguments(args: readonly string[]): Record<string, Record<string, string> | 'none'> {
  const out: Record<string, Record<string, string> | 'none'> = {};
  for (const arg of args) {
    const { device, caps } = parseIoMaxArgument(arg);
    out[device] = caps;
  }
  return out;
}

/** Turn device names into MAJ:MIN with `resolve` (the kernel layer's lookup, which refuses non-devices). */
export function resolveIoInput(
  input: IoInput | undefined,
  resolve: (name: string) => { device: string; path: string | null },
): ResolvedIoInput | undefined {
  if (!input) return undefined;
  const resolved: ResolvedIoInput = {};
  if (input.weight !== undefined) resolved.weight = input.weight;
  if (input.max !== undefined) {
    resolved.max = Object.entries(input.max).map(([name, caps]) => ({ ...resolve(name), caps }));
  }
  return resolved;
}

const NO_CAPS: IoCaps = { rbps: null, wbps: null, riops: null, wiops: null };

function hasCap(caps: IoCaps): boolean {
  return IO_CAP_FIELDS.some((field) => caps[field] !== null);
}

/** Apply an update: weight replaced when given; per device, given fields replace, "none" clears. */
export function mergeIo(current: IoAllocation, input: ResolvedIoInput | undefined): IoAllocation {
  if (!input) return current;
  const byDevice = new Map(current.max.map((limit) => [limit.device, limit]));
  for (const { device, path, caps } of input.max ?? []) {
    const before = byDevice.get(device) ?? { device, path, ...NO_CAPS };
    const next: IoDeviceLimit = { ...before, path: path ?? before.path };
    for (const field of IO_CAP_FIELDS) {
      const given = caps === null ? null : caps[field];
      if (given !== undefined) next[field] = given;
    }
    if (hasCap(next)) byDevice.set(device, next);
    else byDevice.delete(device);
  }
  return {
    weight: input.weight ?? current.weight,
    max: [...byDevice.values()].sort((a, b) => compareDevices(a.device, b.device)),
  };
}

function compareDevices(a: string, b: string): number {
  const [amaj, amin] = a.split(':').map(Number) as [number, number];
  const [bmaj, bmin] = b.split(':').map(Number) as [number, number];
  return amaj - bmaj || amin - bmin;
}

type CapMap = Map<string, IoDeviceLimit>;

function toMap(limits: readonly IoDeviceLimit[]): CapMap {
  return new Map(limits.map((l) => [l.device, l]));
}

/** Field-wise minimum of two cap sets, over the union of their devices. */
function combine(own: CapMap, inherited: CapMap): CapMap {
  const out: CapMap = new Map(own);
  for (const [device, cap] of inherited) {
    const mine = out.get(device);
    if (!mine) {
      out.set(device, cap);
      continue;
    }
    const merged: IoDeviceLimit = { ...mine, path: mine.path ?? cap.path };
    for (const field of IO_CAP_FIELDS) merged[field] = minLimit(mine[field], cap[field]);
    out.set(device, merged);
  }
  return out;
}

/**
 * Split `value` in proportion to `weights`: rounded down, at least 1 each (0 would mean "no
 * cap" to the kernel), and what the minimum of 1 added is taken back from the largest parts,
 * so the parts never add up to more than `value` while it is at least the number of parts.
 */
export function splitCap(value: number, weights: readonly number[]): number[] {
  const total = weights.reduce((sum, w) => sum + w, 0);
  const parts = weights.map((w) => Math.max(1, Math.floor((value * w) / total)));
  let excess = parts.reduce((sum, p) => sum + p, 0) - value;
  const largestFirst = parts.map((_p, i) => i).sort((a, b) => parts[b]! - parts[a]!);
  for (let k = 0; excess > 0 && k < largestFirst.length; k++) {
    const i = largestFirst[k]!;
    const take = Math.min(excess, parts[i]! - 1);
    parts[i]! -= take;
    excess -= take;
  }
  return parts;
}

/** Split every cap of `caps` among members with `weights`; one cap map per member. */
function splitCaps(caps: CapMap, weights: readonly number[]): CapMap[] {
  const out = weights.map((): CapMap => new Map());
  for (const [device, cap] of caps) {
    const perMember = weights.map((): IoDeviceLimit => ({ ...cap }));
    for (const field of IO_CAP_FIELDS) {
      const value = cap[field];
      if (value === null) continue;
      splitCap(value, weights).forEach((part, i) => (perMember[i]![field] = part));
    }
    perMember.forEach((limit, i) => out[i]!.set(device, limit));
  }
  return out;
}

/**
 * The caps to write on every group (keys "slice/<name>", "domain/<name>"). With
 * `hierarchical` (cgroup v2) each group gets its own caps and the kernel applies domain
 * caps to members; without it (cgroup v1) domain caps are split among members as described
 * at the top of this file.
 */
export function effectiveIoCaps(state: DesiredState, hierarchical: boolean): Map<string, IoDeviceLimit[]> {
  const out = new Map<string, IoDeviceLimit[]>();
  const sorted = (caps: CapMap): IoDeviceLimit[] => [...caps.values()].sort((a, b) => compareDevices(a.device, b.device));
  if (hierarchical) {
    for (const d of state.domains.values()) out.set(domainKey(d.name), d.io.max);
    for (const s of state.slices.values()) out.set(sliceKey(s.name), s.io.max);
    return out;
  }
  // Direct members of every domain, in a fixed order, with their weights.
  const members = new Map<string, Array<{ id: string; weight: number }>>();
  const addMember = (domain: string | null, id: string, weight: number): void => {
    if (domain !== null) members.set(domain, [...(members.get(domain) ?? []), { id, weight }]);
  };
  for (const d of state.domains.values()) addMember(d.parent, domainKey(d.name), d.io.weight);
  for (const s of state.slices.values()) addMember(s.domain, sliceKey(s.name), s.io.weight);

  // The part of a domain's allowance each direct member gets, per domain.
  const parts = new Map<string, Map<string, CapMap>>();
  const inheritedBy = (domain: string | null, id: string, depth: number): CapMap => {
    if (domain === null) return new Map();
    let split = parts.get(domain);
    if (!split) {
      const list = members.get(domain) ?? [];
      const shares = splitCaps(
        allowance(domain, depth + 1),
        list.map((m) => m.weight),
      );
      split = new Map(list.map((m, i) => [m.id, shares[i]!]));
      parts.set(domain, split);
    }
    return split.get(id) ?? new Map();
  };
  const allowances = new Map<string, CapMap>();
  const allowance = (domain: string, depth: number): CapMap => {
    const cached = allowances.get(domain);
    if (cached) return cached;
    const spec = state.domains.get(domain);
    if (!spec || depth > MAX_DOMAIN_DEPTH) return new Map();
    const result = combine(toMap(spec.io.max), inheritedBy(spec.parent, domainKey(domain), depth));
    allowances.set(domain, result);
    return result;
  };
  for (const d of state.domains.values()) out.set(domainKey(d.name), sorted(allowance(d.name, 0)));
  for (const s of state.slices.values())
    out.set(sliceKey(s.name), sorted(combine(toMap(s.io.max), inheritedBy(s.domain, sliceKey(s.name), 0))));
  return out;
}

/** "7:0 rbps=10M/s wbps=5M/s" style text of a device's caps, for status output. */
export function describeCaps(limit: IoDeviceLimit, formatRate: (n: number | null) => string): string {
  const parts = IO_CAP_FIELDS.filter((f) => limit[f] !== null).map(
    (f) => `${f}=${f.endsWith('bps') ? formatRate(limit[f]) : String(limit[f])}`,
  );
  return `${limit.path ?? limit.device} ${parts.join(',')}`;
}

/** A block device's I/O schedulers as the kernel lists them (queue/scheduler). */
export interface DeviceSchedulers {
  /** MAJ:MIN */
  device: string;
  /** The active one ("none" for no scheduler), or null when unreadable. */
  scheduler: string | null;
  schedulers: string[];
}

/** A block device as the kernel lists it (sys/block), with its I/O schedulers. */
export interface BlockDevice extends DeviceSchedulers {
  /** Kernel name, e.g. "loop0". */
  name: string;
}

/** What decides whether io.weight can act, besides each device's scheduler. */
export interface WeightConditions {
  /** Why sliced's groups have no BFQ weight files (no I/O controller, BFQ not loaded), or null. */
  groups: string | null;
  /** What the last attempt to load the bfq module said when it failed, or null (not tried, or loaded). */
  bfqLoadFailure: string | null;
}

/**
 * Why io.weight has no effect on a device, or null when it acts. Weights act only through
 * BFQ: it must be the device's active scheduler and sliced's groups must have BFQ's weight
 * files. `name` is how the remedy names the device (a path, MAJ:MIN, or "DEV").
 */
export function weightNoEffect(dev: DeviceSchedulers, conditions: WeightConditions, name: string): string | null {
  if (dev.scheduler === 'bfq') return conditions.groups;
  if (dev.schedulers.length === 0) return 'it has no I/O scheduler of its own (a stacked device: weights act on the disks below it)';
  const uses = `it uses the ${dev.scheduler ?? 'unknown'} I/O scheduler, not bfq`;
  if (dev.schedulers.includes('bfq')) return `${uses}; slicectl io enable-bfq ${name} switches it`;
  const offers = `the kernel offers only ${dev.schedulers.join(', ')} there: bfq is not built in`;
  return conditions.bfqLoadFailure !== null
    ? `${uses}, and ${offers} and loading its module failed (${conditions.bfqLoadFailure})`
    : `${uses}, and ${offers} and its module is not loaded; slicectl io enable-bfq ${name} tries to load it`;
}

/**
 * Why a group's io.weight has no effect, one sentence per case (empty when it acts): on each
 * device the group is capped on whose scheduler is not BFQ, or, when it is capped on none,
 * on every device of the node when none can carry weights. Weights act on any device where
 * BFQ runs, so with no caps one such device is enough to say nothing.
 */
export function ioWeightNotes(capped: readonly string[], devices: readonly DeviceSchedulers[], conditions: WeightConditions): string[] {
  const notes: string[] = [];
  for (const device of capped) {
    const dev = devices.find((d) => d.device === device);
    const why = dev ? weightNoEffect(dev, conditions, device) : null;
    if (why !== null) notes.push(`io.weight has no effect on device ${device}, only caps apply: ${why}`);
  }
  if (capped.length > 0 || devices.some((d) => weightNoEffect(d, conditions, 'DEV') === null)) return notes;
  const scheduled = devices.filter((d) => d.schedulers.length > 0);
  let why: string;
  if (conditions.groups !== null && scheduled.some((d) => d.scheduler === 'bfq')) why = conditions.groups;
  else if (scheduled.some((d) => d.schedulers.includes('bfq')))
    why = 'no device uses the bfq I/O scheduler; slicectl io enable-bfq DEV switches one';
  else {
    const offered = [...new Set(scheduled.flatMap((d) => d.schedulers))].join(', ') || 'none';
    why =
      conditions.bfqLoadFailure !== null
        ? `the kernel offers only the I/O schedulers ${offered}: bfq is not built in and loading its module failed (${conditions.bfqLoadFailure})`
        : `the kernel offers only the I/O schedulers ${offered}: bfq is not built in and its module is not loaded; slicectl io enable-bfq DEV tries to load it`;
  }
  return [`io.weight has no effect on any block device of this node, only caps apply: ${why}`];
}
