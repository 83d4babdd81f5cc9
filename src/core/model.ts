/**
 * The desired-state model: slices, scheduling domains and their allocations, plus the zod
 * schemas that turn outside input (API bodies, CLI flags, config files) into it. Quantities
 * are canonical numbers inside: CPU in millicores of this node, memory in bytes.
 */
import { z } from 'zod';
import { nameProblem } from './names.js';
import { parseCpu, parseMemory } from './units.js';
import { SlicedError } from './errors.js';
import { parseRate, type NetSpec, type Reservation } from './net.js';

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
}

export interface SliceSpec {
  name: string;
  /** Unix user the slice's processes run as. */
  user: string;
  /** True when sliced created the user (and removes it with the slice). */
  userCreated: boolean;
  cpu: CpuAllocation;
  memory: MemoryAllocation;
  /** Scheduling domain the slice lives in, or null for the node level. */
  domain: string | null;
  /** The slice's own network (namespace, addresses, rates), or null: it uses the host's network. */
  net: NetSpec | null;
}

export interface DomainSpec {
  name: string;
  cpu: CpuAllocation;
  memory: MemoryAllocation;
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
export const DEFAULT_MEMORY: MemoryAllocation = { limit: null };

// ---- input schemas -------------------------------------------------------------------

const nameSchema = z.string().superRefine((value, ctx) => {
  const problem = nameProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

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

/** A quantity given as a string or a number, turned into a number by one of the units parsers. */
const quantity = (parse: (value: unknown) => { ok: true; value: number } | { ok: false; reason: string }) =>
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

export const netOptionsSchema = z
  .object({
    egress: z.boolean().optional(),
    minRate: optionalCap(rateQuantity).optional(),
    maxRate: optionalCap(rateQuantity).optional(),
    tun: z.boolean().optional(),
  })
  .strict();

/**
 * true or an object: the slice gets (or keeps) its own network; false or null: host network.
 * Normalised before validation (true → {}, false → null) rather than a union, so that an
 * error inside the object keeps its own path and message.
 */
export const netInputSchema = z.preprocess((value) => (value === true ? {} : value === false ? null : value), netOptionsSchema.nullable());

export const memoryInputSchema = z.object({ limit: optionalCap(memoryQuantity).optional() }).strict();

export const sliceCreateSchema = z
  .object({
    name: nameSchema,
    user: userSchema.optional(),
    cpu: cpuInputSchema.optional(),
    memory: memoryInputSchema.optional(),
    domain: nameSchema.optional(),
    net: netInputSchema.optional(),
  })
  .strict();

export const sliceUpdateSchema = z
  .object({
    cpu: cpuInputSchema.optional(),
    memory: memoryInputSchema.optional(),
    net: netInputSchema.optional(),
  })
  .strict();

export const domainCreateSchema = z
  .object({
    name: nameSchema,
    cpu: cpuInputSchema.optional(),
    memory: memoryInputSchema.optional(),
    parent: nameSchema.optional(),
  })
  .strict();

export const domainUpdateSchema = z
  .object({
    cpu: cpuInputSchema.optional(),
    memory: memoryInputSchema.optional(),
  })
  .strict();

export type SliceCreateInput = z.output<typeof sliceCreateSchema>;
export type SliceUpdateInput = z.output<typeof sliceUpdateSchema>;
export type DomainCreateInput = z.output<typeof domainCreateSchema>;
export type DomainUpdateInput = z.output<typeof domainUpdateSchema>;
export type CpuInput = z.output<typeof cpuInputSchema>;
export type MemoryInput = z.output<typeof memoryInputSchema>;
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
      const shown = value === undefined ? '' : ` ${JSON.stringify(value)}`;
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
      .find((inner) => inner.code === 'custom' || inner.code === 'too_small' || inner.code === 'too_big' || inner.code === 'invalid_format');
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
