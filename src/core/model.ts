/**
 * The desired-state model: slices, scheduling domains and their allocations, plus the zod
 * schemas that turn outside input (API bodies, CLI flags, config files) into it. Quantities
 * are canonical numbers inside: CPU in millicores of this node, memory in bytes.
 */
import { z } from 'zod';
import { nameProblem } from './names.js';
import { isPid, parsePidText, pidProblem, PID_RANGE } from './pids.js';
import { parseCpu, parseIops, parseMemory, parseRate, type ParseResult } from './units.js';
import { SlicedError } from './errors.js';
import { parseRate as parseNetRate, type NetSpec, type Reservation } from './net.js';
import { DEFAULT_DOMAIN_PIDS, DEFAULT_SLICE_PIDS, parsePidsCount, pidsMaxReason, type PidsAllocation } from './task-limits.js';

export type { PidsAllocation } from './task-limits.js';
export { DEFAULT_DOMAIN_PIDS, DEFAULT_SLICE_PIDS } from './task-limits.js';

export const SHARES_MIN = 1;
export const SHARES_MAX = 10000;
export const SHARES_DEFAULT = 100;

export interface CpuAllocation {
  /** Guaranteed millicores (lent out while unused). */
  reservation: number;
  /** Cap in millicores, or null for none. */
  limit: number | null;
  /** Proportional weight among siblings for what is left, 1..10000. */
  shares: number;
}

export interface MemoryAllocation {
  /** Hard limit in bytes, or null for none. */
  limit: number | null;
  /** Soft limit in bytes (v2 memory.high: throttle and reclaim above it; v1 memory.soft_limit_in_bytes), or null. */
  high: number | null;
  /** Swap the group may use in bytes (v2 memory.swap.max; v1 memsw = limit + swap), or null for no cap. */
  swap: number | null;
}

export const IO_WEIGHT_MIN = 1;
export const IO_WEIGHT_MAX = 10000;
export const IO_WEIGHT_DEFAULT = 100;

/** Per-device caps: bytes per second and operations per second; null means no cap. */
export interface IoCaps {
  rbps: number | null;
  wbps: number | null;
  riops: number | null;
  wiops: number | null;
}

export interface IoDeviceLimit extends IoCaps {
  /** Block device as MAJ:MIN (what the kernel files take). */
  device: string;
  /** The path the operator named, for display, or null when given as MAJ:MIN. */
  path: string | null;
}

export interface IoAllocation {
  /** Proportional I/O weight among siblings, 1..10000 (BFQ on v1 gets weight/10). */
  weight: number;
  /** Caps per device, sorted by device; devices without any cap are not listed. */
  max: IoDeviceLimit[];
}

export interface SliceSpec {
  name: string;
  /** Unix user the slice's processes run as. */
  user: string;
  /** True when sliced created the user (and removes it with the slice). */
  userCreated: boolean;
  cpu: CpuAllocation;
  memory: MemoryAllocation;
  io: IoAllocation;
  /** Task limit (pids controller); "default" unless set. */
  pids: PidsAllocation;
  /** Scheduling domain the slice lives in, or null for the node level. */
  domain: string | null;
  /** The slice's own network (namespace, addresses, rates), or null: it uses the host's network. */
  net: NetSpec | null;
}

export interface DomainSpec {
  name: string;
  cpu: CpuAllocation;
  memory: MemoryAllocation;
  io: IoAllocation;
  /** Task limit of all members together (pids controller); none unless set. */
  pids: PidsAllocation;
  /** Enclosing domain, or null for the node level. Domains nest like Xen's scheduling domains. */
  parent: string | null;
}

/**
 * Maps rather than records: every change copies the maps it touches, and copying a Map of
 * a thousand entries is an order of magnitude cheaper than spreading an object that large.
 */
export interface DesiredState {
  slices: Map<string, SliceSpec>;
  domains: Map<string, DomainSpec>;
  /** Port reservations by reservationKey() ("udp/10.213.255.1/53"). */
  reservations: Map<string, Reservation>;
}

export function emptyState(): DesiredState {
  return { slices: new Map(), domains: new Map(), reservations: new Map() };
}

export const DEFAULT_CPU: CpuAllocation = { reservation: 0, limit: null, shares: SHARES_DEFAULT };
export const DEFAULT_MEMORY: MemoryAllocation = { limit: null, high: null, swap: null };
export const DEFAULT_IO: IoAllocation = { weight: IO_WEIGHT_DEFAULT, max: [] };

/** Specs stored by versions before I/O, memory.high/swap and pids existed get the defaults. */
export function withAllocationDefaults<T extends SliceSpec | DomainSpec>(spec: T): T {
  const pids = spec.pids ?? ('user' in spec ? DEFAULT_SLICE_PIDS : DEFAULT_DOMAIN_PIDS);
  return { ...spec, memory: { ...DEFAULT_MEMORY, ...spec.memory }, io: spec.io ?? DEFAULT_IO, pids };
}

// ---- input schemas -------------------------------------------------------------------

export const nameSchema = z.string().superRefine((value, ctx) => {
  const problem = nameProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/**
 * A pid in a JSON body. One message for every wrong value (a string, 1.5, 0, 1e400, which JSON
 * parsing turns into Infinity) rather than zod's type-by-type wording.
 */
export const pidSchema = z
  .unknown()
  .superRefine((value, ctx) => {
    if (value === undefined) ctx.addIssue({ code: 'custom', message: 'is required' });
    else if (!isPid(value)) ctx.addIssue({ code: 'custom', message: pidProblem(value)! });
  })
  .transform((value) => value as number);

/** A pid in a query string. */
export const pidTextSchema = z
  .string()
  .refine((text) => parsePidText(text) !== null, { message: `is not a valid pid: it must be ${PID_RANGE}` })
  .transform((text) => Number(text));

/** Unix login names as useradd accepts them (portable subset, at most 32 characters). */
const USER_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;
const userSchema = z.string().superRefine((value, ctx) => {
  if (!USER_PATTERN.test(value)) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a Unix user name: lower-case letters, digits, "_" or "-", starting with a letter or "_", at most 32 characters',
    });
  }
});

/** A quantity parsed by one of the units.ts parsers, whose reason becomes the error message. */
const quantity = (parse: (input: unknown) => ParseResult) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const parsed = parse(value);
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', message: parsed.reason });
      return z.NEVER;
    }
    return parsed.value;
  });

const cpuQuantity = quantity(parseCpu);
const memoryQuantity = quantity(parseMemory);
const rateQuantity = quantity(parseRate);
const iopsQuantity = quantity(parseIops);
/** Network rates are bits per second (net.ts), unlike disk rates in bytes per second. */
const netRateQuantity = quantity(parseNetRate);

/** "none" (or null) clears an optional cap. */
const optionalCap = <T extends z.ZodType>(quantity: T) =>
  z.union([z.literal('none'), z.null(), quantity]).transform((value) => (value === 'none' || value === null ? null : value));

const SHARES_ALLOWED = `must be a whole number from ${SHARES_MIN} to ${SHARES_MAX}`;
const sharesSchema = z
  .union([z.number(), z.string().regex(/^\d+$/, SHARES_ALLOWED).transform(Number)])
  .pipe(z.number().int(SHARES_ALLOWED).min(SHARES_MIN, SHARES_ALLOWED).max(SHARES_MAX, SHARES_ALLOWED));

export const cpuInputSchema = z
  .object({
    reservation: cpuQuantity.optional(),
    limit: optionalCap(cpuQuantity).optional(),
    shares: sharesSchema.optional(),
  })
  .strict();

export const memoryInputSchema = z
  .object({
    limit: optionalCap(memoryQuantity).optional(),
    high: optionalCap(memoryQuantity).optional(),
    swap: optionalCap(memoryQuantity).optional(),
  })
  .strict();

const IO_WEIGHT_ALLOWED = `must be a whole number from ${IO_WEIGHT_MIN} to ${IO_WEIGHT_MAX}`;
const ioWeightSchema = z
  .union([z.number(), z.string().regex(/^\d+$/, IO_WEIGHT_ALLOWED).transform(Number)])
  .pipe(z.number().int(IO_WEIGHT_ALLOWED).min(IO_WEIGHT_MIN, IO_WEIGHT_ALLOWED).max(IO_WEIGHT_MAX, IO_WEIGHT_ALLOWED));

export const ioCapsInputSchema = z
  .object({
    rbps: optionalCap(rateQuantity).optional(),
    wbps: optionalCap(rateQuantity).optional(),
    riops: optionalCap(iopsQuantity).optional(),
    wiops: optionalCap(iopsQuantity).optional(),
  })
  .strict();

export const netOptionsSchema = z
  .object({
    egress: z.boolean().optional(),
    minRate: optionalCap(netRateQuantity).optional(),
    maxRate: optionalCap(netRateQuantity).optional(),
    tun: z.boolean().optional(),
  })
  .strict();

/** pids.max: a task count, "none" (or null), and for slices "default". */
const pidsMaxInput = z.union([z.string(), z.number(), z.null()]);
function pidsMaxValue(value: string | number | null, ctx: z.RefinementCtx, allowDefault: boolean): number | 'default' | null {
  if (value === null || value === 'none') return null;
  if (allowDefault && value === 'default') return 'default';
  const parsed = parsePidsCount(value);
  if (parsed.ok) return parsed.value;
  ctx.addIssue({ code: 'custom', message: pidsMaxReason(allowDefault) });
  return z.NEVER;
}

export const slicePidsInputSchema = z.object({ max: pidsMaxInput.transform((v, ctx) => pidsMaxValue(v, ctx, true)).optional() }).strict();
export const domainPidsInputSchema = z
  .object({ max: pidsMaxInput.transform((v, ctx) => pidsMaxValue(v, ctx, false) as number | null).optional() })
  .strict();

/**
 * `max` is keyed by device (a path like "/dev/vdb" or "MAJ:MIN"); "none" (or null) removes every cap
 * of that device, a field set to "none" removes that one cap, fields not given stay.
 */
export const ioInputSchema = z
  .object({
    weight: ioWeightSchema.optional(),
    // Not a union: errors inside a device's caps then keep their full path (io.max.DEV.rbps).
    max: z
      .record(
        z.string().min(1, 'must name a device'),
        z.preprocess((v) => (v === 'none' ? null : v), ioCapsInputSchema.nullable()),
      )
      .optional(),
  })
  .strict();

/**
 * true or an object: the slice gets (or keeps) its own network; false or null: host network.
 * Normalised before validation (true → {}, false → null) rather than a union, so that an
 * error inside the object keeps its own path and message.
 */
export const netInputSchema = z.preprocess((value) => (value === true ? {} : value === false ? null : value), netOptionsSchema.nullable());

export const sliceCreateSchema = z
  .object({
    name: nameSchema,
    user: userSchema.optional(),
    cpu: cpuInputSchema.optional(),
    memory: memoryInputSchema.optional(),
    io: ioInputSchema.optional(),
    pids: slicePidsInputSchema.optional(),
    domain: nameSchema.optional(),
    net: netInputSchema.optional(),
  })
  .strict();

export const sliceUpdateSchema = z
  .object({
    cpu: cpuInputSchema.optional(),
    memory: memoryInputSchema.optional(),
    io: ioInputSchema.optional(),
    pids: slicePidsInputSchema.optional(),
    net: netInputSchema.optional(),
  })
  .strict();

export const domainCreateSchema = z
  .object({
    name: nameSchema,
    cpu: cpuInputSchema.optional(),
    memory: memoryInputSchema.optional(),
    io: ioInputSchema.optional(),
    pids: domainPidsInputSchema.optional(),
    parent: nameSchema.optional(),
  })
  .strict();

export const domainUpdateSchema = z
  .object({
    cpu: cpuInputSchema.optional(),
    memory: memoryInputSchema.optional(),
    io: ioInputSchema.optional(),
    pids: domainPidsInputSchema.optional(),
  })
  .strict();

export type SliceCreateInput = z.output<typeof sliceCreateSchema>;
export type SliceUpdateInput = z.output<typeof sliceUpdateSchema>;
export type DomainCreateInput = z.output<typeof domainCreateSchema>;
export type DomainUpdateInput = z.output<typeof domainUpdateSchema>;
export type CpuInput = z.output<typeof cpuInputSchema>;
export type MemoryInput = z.output<typeof memoryInputSchema>;
export type IoInput = z.output<typeof ioInputSchema>;
export type IoCapsInput = z.output<typeof ioCapsInputSchema>;
export type PidsInput = z.output<typeof slicePidsInputSchema>;

/** I/O input after the kernel layer turned device names into MAJ:MIN (see resolveIoInput). */
export interface ResolvedIoInput {
  weight?: number;
  max?: Array<{ device: string; path: string | null; caps: IoCapsInput | null }>;
}
export type NetInput = z.output<typeof netInputSchema>;

/**
 * Parse outside input; on failure throw one EINVAL sentence that names the field, the value
 * given and what is allowed, e.g. `cpu.limit "abc" must be millicores like "1500m" ...`.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new SlicedError('EINVAL', describeIssues(result.error.issues, input, what));
}

function describeIssues(issues: readonly z.core.$ZodIssue[], input: unknown, what: string): string {
  return issues
    .map((issue) => {
      const path = issue.path.map(String).join('.');
      if (issue.code === 'unrecognized_keys') {
        const where = path ? ` in ${path}` : '';
        return `${what}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}${where}`;
      }
      const value = valueAt(input, issue.path);
      if (value === undefined && issue.code === 'invalid_type') {
        return `${what}: ${path || 'body'} is required`;
      }
      // JSON.stringify prints Infinity (e.g. 1e400 in a body) and NaN as null.
      const shown =
        value === undefined ? '' : ` ${typeof value === 'number' && !Number.isFinite(value) ? String(value) : JSON.stringify(value)}`;
      return `${what}: ${path || 'body'}${shown} ${friendly(issue)}`;
    })
    .join('; ');
}

function friendly(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') {
    // .int() reports expected "int" with our own wording ("must be a whole number").
    if (issue.expected === 'int') return issue.message;
    return `must be ${withArticle(issue.expected)}`;
  }
  if (issue.code === 'invalid_union') {
    // Report the most specific branch message rather than "invalid input".
    const nested = issue.errors
      .flat()
      .find(
        (inner) => inner.code === 'custom' || inner.code === 'too_small' || inner.code === 'too_big' || inner.code === 'invalid_format',
      );
    if (nested) return friendly(nested);
    // Only type mismatches: say which kinds of value are allowed.
    const allowed = [...new Set(alternatives(issue))];
    return allowed.length > 0 ? `has the wrong type; allowed is ${allowed.join(' or ')}` : 'has the wrong type';
  }
  return issue.message;
}

function withArticle(noun: string): string {
  return /^[aeiou]/.test(noun) ? `an ${noun}` : `a ${noun}`;
}

function alternatives(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'invalid_type') return [issue.expected === 'null' ? 'null' : withArticle(issue.expected)];
  if (issue.code === 'invalid_value') return issue.values.map((v) => JSON.stringify(v));
  if (issue.code === 'invalid_union') return issue.errors.flat().flatMap(alternatives);
  return [];
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = input;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}
