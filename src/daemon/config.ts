/**
 * Daemon configuration: defaults, then /etc/sliced/sliced.yaml (or --config FILE), then
 * command-line flags. Validated with zod; a bad value stops the daemon with one sentence.
 */
import { readFileSync, existsSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseCpu, parseMemory } from '../core/units.js';
import { parseInput } from '../core/model.js';
import { SlicedError } from '../core/errors.js';
import type { NodeCapacity } from '../core/admission.js';
import type { VsysLimits } from '../vsys/call.js';
import { NET_TAG_PATTERN, parseCidr, parseRate } from '../core/net.js';
import { DEFAULT_PIDS_SETTING, nodePids, parsePidsDefault, pidSpace } from '../core/task-limits.js';
import { readPidLimits } from '../kernel/node-stats.js';

export const DEFAULT_CONFIG_FILE = '/etc/sliced/sliced.yaml';
/** Per namespaced slice: 1/32 of a 262,144-entry table (this machine kind's nf_conntrack_max). */
export const DEFAULT_CONNTRACK_MAX = 8192;

const reserveSchema = z.union([z.string(), z.number()]).superRefine((value, ctx) => {
  if (typeof value === 'string' && /^\d+(\.\d+)?%$/.test(value.trim())) {
    const pct = Number(value.trim().slice(0, -1));
    if (pct >= 100) ctx.addIssue({ code: 'custom', message: 'must be below 100%' });
    return;
  }
  const parsed = parseCpu(value);
  if (!parsed.ok) ctx.addIssue({ code: 'custom', message: `must be a percentage of the node like "5%" or a CPU amount like "100m": ${parsed.reason}` });
});

const sizeSchema = z.union([z.string(), z.number()]).superRefine((value, ctx) => {
  const parsed = parseMemory(value);
  if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  else if (parsed.value < 1 || parsed.value > 1024 ** 3) ctx.addIssue({ code: 'custom', message: 'must be from 1 byte to 1G' });
});

export const configSchema = z
  .object({
    stateDir: z.string().min(1).default('/var/lib/sliced'),
    runDir: z.string().min(1).default('/run/sliced'),
    /** Unix socket of the API; defaults to <runDir>/sliced.sock. */
    socket: z.string().min(1).optional(),
    /** Group whose members may use the API besides root (socket mode 0660). */
    adminGroup: z.string().min(1).nullable().default(null),
    /** Name of sliced's root group under the daemon's own group in each hierarchy. */
    cgroupRoot: z
      .string()
      .regex(/^sliced[A-Za-z0-9_.-]*$/, 'must start with "sliced" and use only letters, digits, "_", "." and "-"')
      .default('sliced'),
    cgroupVersion: z.enum(['auto', 'v1', 'v2']).default('auto'),
    controlPeriodMs: z.number().int().min(100).max(60_000).default(1000),
    cpuControl: z.enum(['entitlement', 'static']).default('entitlement'),
    feedbackGain: z.number().min(0).max(1).default(0.5),
    /** CPU kept back from reservations for the system: "5%" of the node or an amount like "100m". */
    systemReserve: reserveSchema.default('5%'),
    /** CPU capacity of the node; defaults to the CPUs this process may run on. */
    cpuCapacity: z.union([z.string(), z.number()]).optional(),
    stopGraceMs: z.number().int().min(0).max(600_000).default(5000),
    /** pids.max of a slice left at "default": a share of the node's PIDs ("15%"), a count, or "none". */
    defaultPidsMax: z
      .union([z.string(), z.number()])
      .superRefine((value, ctx) => {
        const parsed = parsePidsDefault(value);
        if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
      })
      .default(DEFAULT_PIDS_SETTING),
    metricsPort: z.number().int().min(1).max(65535).nullable().default(null),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    logFile: z.string().min(1).nullable().default(null),
    /** Nice value of the daemon itself, so the control plane stays responsive when slices saturate the CPUs. */
    daemonNice: z.number().int().min(-20).max(19).default(-10),
    /** Allow attach/exec to move a process out of a memory cgroup that does not contain sliced's groups. */
    attachAnyMemoryCgroup: z.boolean().default(false),
    /** Name of this node in the config tree and the cluster; defaults to the host name. */
    nodeName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 letters, digits, "_", "." or "-"').nullable().default(null),
    /** Folders searched for component types not built in (<folder>/<type>.js), root-owned. */
    pluginDirs: z.array(z.string().min(1)).default([]),
    /** The tree document applied on the first start (default: defaults/tree.yaml of the package). */
    defaultTree: z.string().min(1).nullable().default(null),
    /** Mount the config tree here with FUSE (needs the optional @cocalc/fuse-native). */
    mount: z.string().min(1).nullable().default(null),
    /** vsys services directory (root-only); defaults to <stateDir>/vsys. */
    vsysDir: z.string().min(1).optional(),
    /** Where each slice's vsys directory is made (<vsysSliceRoot>/<slice>/); defaults to <runDir>/vsys. */
    vsysSliceRoot: z.string().min(1).optional(),
    /** A one-shot vsys call's script is stopped (SIGTERM, then SIGKILL) after this long. */
    vsysTimeoutMs: z.number().int().min(100).max(3_600_000).default(10_000),
    vsysMaxInput: sizeSchema.default('1M'),
    vsysMaxOutput: sizeSchema.default('1M'),
    /** vsys calls of one slice running at once; more wait (their writers block). */
    vsysMaxCallsPerSlice: z.number().int().min(1).max(1000).default(4),
    /** Connections one slice may hold open to its read-only socket; more are answered 503 and closed. */
    sliceSocketMaxConnections: z.number().int().min(1).max(10_000).default(16),
    /** Connections all slice sockets together may hold open, so the daemon keeps file descriptors for itself. */
    sliceSocketMaxTotal: z.number().int().min(1).max(100_000).default(1024),
    /** A slice socket's connection is closed after this long idle, or when a request takes longer to arrive. */
    sliceSocketTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /** Slice networking (bridge, namespaces, accounting); off: no slice may have a network and nothing is accounted. */
    net: z.boolean().default(true),
    /** Names this daemon's network objects: bridge slbr<tag>, veths slv<tag>-<n>, namespaces sliced<tag>-<slice>, nft tables sliced<tag>, IFB slifb<tag>. */
    netTag: z.string().regex(NET_TAG_PATTERN, 'must be 1 to 5 lower-case letters or digits').default('0'),
    /** Private IPv4 subnet of the slices (the bridge takes the first address), /17 to /29. */
    netPool4: z.string().default('10.213.0.0/17'),
    /** Private IPv6 subnet of the slices, /64 to /124. */
    netPool6: z.string().default('fd5c:ed00::/64'),
    /** The node's network capacity: the ceiling of all slices' outgoing traffic together and the budget for guaranteed rates. */
    netCapacity: z.union([z.string(), z.number()]).default('10gbit'),
    /** Conntrack entries the new connections of one namespaced slice may hold in the node's shared table, or "none". */
    netConntrackMax: z.union([z.number().int().min(1).max(16_777_216), z.literal('none')]).default(DEFAULT_CONNTRACK_MAX),
  })
  .strict();

export type SlicedConfig = z.output<typeof configSchema> & { socket: string; vsysDir: string; vsysSliceRoot: string };

export function loadConfig(file: string | null, overrides: Record<string, unknown>): SlicedConfig {
  let fromFile: Record<string, unknown> = {};
  const path = file ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : null);
  if (path !== null) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new SlicedError('EINVAL', `cannot read config file ${path}: ${(err as Error).message}`);
    }
    const parsed: unknown = parseYaml(text);
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new SlicedError('EINVAL', `config file ${path} must hold a YAML mapping of settings`);
    }
    fromFile = (parsed as Record<string, unknown>) ?? {};
  }
  const merged = { ...fromFile };
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) merged[key] = value;
  const config = parseInput(configSchema, merged, path ? `config (${path} and flags)` : 'config');
  return {
    ...config,
    socket: config.socket ?? join(config.runDir, 'sliced.sock'),
    vsysDir: config.vsysDir ?? join(config.stateDir, 'vsys'),
    vsysSliceRoot: config.vsysSliceRoot ?? join(config.runDir, 'vsys'),
  };
}

export function nodeCapacity(config: SlicedConfig): NodeCapacity {
  let cpu = availableParallelism() * 1000;
  if (config.cpuCapacity !== undefined) {
    const parsed = parseCpu(config.cpuCapacity);
    if (!parsed.ok || parsed.value <= 0) throw new SlicedError('EINVAL', `config: cpuCapacity ${JSON.stringify(config.cpuCapacity)} must be a positive CPU amount`);
    cpu = parsed.value;
  }
  const node: NodeCapacity = { cpuMillicores: cpu, systemReserveMillicores: reserveMillicores(config.systemReserve, cpu), memoryBytes: totalmem() };
  const setting = parsePidsDefault(config.defaultPidsMax);
  const limits = readPidLimits();
  // Computed at each start from this node's pid_max: slices left at "default" follow it.
  if (setting.ok) node.pids = nodePids(setting.value, pidSpace(limits.pidMax, limits.threadsMax), String(config.defaultPidsMax));
  if (config.net) {
    const capacity = parseRate(config.netCapacity);
    if (!capacity.ok) throw new SlicedError('EINVAL', `config: netCapacity ${JSON.stringify(config.netCapacity)} ${capacity.reason}`);
    node.net = {
      pool: { v4: parseCidr(config.netPool4, 4, 'config: netPool4'), v6: parseCidr(config.netPool6, 6, 'config: netPool6') },
      capacity: capacity.value,
    };
  }
  return node;
}

function reserveMillicores(reserve: string | number, capacity: number): number {
  if (typeof reserve === 'string' && reserve.trim().endsWith('%')) {
    return Math.round((capacity * Number(reserve.trim().slice(0, -1))) / 100);
  }
  const parsed = parseCpu(reserve);
  return parsed.ok ? parsed.value : 0;
}

/** The vsys limits in bytes and milliseconds. */
export function vsysLimits(config: SlicedConfig): VsysLimits {
  const bytes = (value: string | number): number => {
    const parsed = parseMemory(value);
    return parsed.ok ? parsed.value : 0;
  };
  return {
    timeoutMs: config.vsysTimeoutMs,
    killGraceMs: Math.min(2000, config.vsysTimeoutMs),
    maxInputBytes: bytes(config.vsysMaxInput),
    maxOutputBytes: bytes(config.vsysMaxOutput),
    maxCallsPerSlice: config.vsysMaxCallsPerSlice,
  };
}
