/**
 * Daemon configuration: defaults, then /etc/sliced/sliced.yaml (or --config FILE), then
 * command-line flags. Validated with zod; a bad value stops the daemon with one sentence.
 */
import { parseListen } from '../core/net-address.js';
import { readFileSync, existsSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { parseCpu, parseMemory } from '../core/units.js';
import { parseYamlText } from '../core/yaml-text.js';
import { SlicedError } from '../core/errors.js';
import type { NodeCapacity } from '../core/admission.js';
import type { VsysLimits } from '../vsys/call.js';
import { NET_TAG_PATTERN, parseCidr, parseRate } from '../core/net.js';
import { USER_PREFIX_ALLOWED, USER_PREFIX_PATTERN } from '../core/layout.js';
import { DEFAULT_PIDS_SETTING, nodePids, parsePidsDefault, pidSpace } from '../core/task-limits.js';
import { readPidLimits } from '../kernel/node-stats.js';
import { checkLabel } from '../core/membership.js';

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
  if (!parsed.ok)
    ctx.addIssue({ code: 'custom', message: `must be a percentage of the node like "5%" or a CPU amount like "100m": ${parsed.reason}` });
});

const sizeSchema = z.union([z.string(), z.number()]).superRefine((value, ctx) => {
  const parsed = parseMemory(value);
  if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  else if (parsed.value < 1 || parsed.value > 1024 ** 3) ctx.addIssue({ code: 'custom', message: 'must be from 1 byte to 1G' });
});

const cpuCapacitySchema = z.union([z.string(), z.number()]).superRefine((value, ctx) => {
  const parsed = parseCpu(value);
  if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  else if (parsed.value <= 0) ctx.addIssue({ code: 'custom', message: 'is not positive' });
});

const rateSchema = z.union([z.string(), z.number()]).superRefine((value, ctx) => {
  const parsed = parseRate(value);
  if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
});

const poolSchema = (family: 4 | 6) =>
  z.string().superRefine((value, ctx) => {
    try {
      parseCidr(value, family, 'pool');
    } catch (err) {
      // parseCidr's sentence starts with the label and the value, which the config message gives itself.
      ctx.addIssue({ code: 'custom', message: (err as Error).message.slice(`pool ${JSON.stringify(value)} `.length) });
    }
  });

/** etcd client URLs: http(s)://host:port, the host a name, an IPv4 address or a bracketed IPv6 address. */
const ENDPOINT = /^https?:\/\/([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/;

const peerSchema = z
  .object({
    /** Where the channel listens. */
    listen: z
      .string()
      .refine((v) => parseListen(v) !== null, 'must be HOST:PORT, [IPv6]:PORT or :PORT (every address) with a port from 1 to 65535'),
    /** The address other agents reach it at (default: the listen host, or the node's first address when that is every address). */
    advertise: z.string().min(1).optional(),
    /** A shared secret every agent of the cluster holds (a root-only file): for test set-ups. */
    tokenFile: z.string().min(1).optional(),
    /** Mutual TLS: the cluster CA, and this agent's certificate and key signed by it (slicectl cluster init-ca / issue-cert). */
    tls: z
      .object({ ca: z.string().min(1), cert: z.string().min(1), key: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict()
  .refine((p) => (p.tokenFile === undefined) !== (p.tls === undefined), 'needs exactly one of tokenFile and tls: who may call it');

/** The dashboard (src/daemon/web): off unless `listen` is given. */
const webSchema = z
  .object({
    /** Where it listens: HOST:PORT (127.0.0.1:PORT keeps it to this machine). */
    listen: z
      .string()
      .refine((v) => parseListen(v) !== null, 'must be HOST:PORT, [IPv6]:PORT or :PORT (every address) with a port from 1 to 65535'),
    /** The sign-in token's file, root's and mode 0600 (default: <stateDir>/web-token, made on the first start). */
    tokenFile: z.string().min(1).optional(),
    /**
     * HTTPS: a certificate and its key (PEM files; the key root's and private), and the CA
     * whose client certificates sign in without the token (default: the cluster's, peer.tls.ca).
     */
    tls: z
      .object({ cert: z.string().min(1), key: z.string().min(1), ca: z.string().min(1).optional() })
      .strict()
      .optional(),
  })
  .strict();

const clusterSchema = z
  .object({
    /** The etcd members' client URLs (a list, or one string with commas). */
    endpoints: z
      .union([z.string(), z.array(z.string())])
      .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((e) => e.trim()).filter((e) => e !== ''))
      .superRefine((endpoints, ctx) => {
        if (endpoints.length === 0) ctx.addIssue({ code: 'custom', message: 'must name at least one etcd endpoint' });
        for (const e of endpoints)
          if (!ENDPOINT.test(e)) ctx.addIssue({ code: 'custom', message: `has ${JSON.stringify(e)}, not http(s)://HOST:PORT` });
        if (new Set(endpoints.map((e) => e.startsWith('https:'))).size > 1)
          ctx.addIssue({ code: 'custom', message: 'mixes http and https' });
      }),
    /** Labels this node gets when it first joins (operators change them later with slicectl node label). */
    labels: z
      .record(z.string(), z.string())
      .superRefine((labels, ctx) => {
        for (const [key, value] of Object.entries(labels)) {
          try {
            checkLabel(key, value);
          } catch (err) {
            ctx.addIssue({ code: 'custom', message: `has a bad label: ${(err as Error).message}` });
          }
        }
      })
      .default({}),
    /** Time to live of the node's lease: a node that stops renewing it is shown down after this long. */
    leaseTtlMs: z.number().int().min(2000).max(60_000).default(5000),
    /** Every key of this cluster lives under this prefix, so that several clusters can share one etcd. */
    prefix: z
      .string()
      .regex(/^\/([A-Za-z0-9_.-]+\/)*$/, 'must be a path like "/sliced/" (starts and ends with "/")')
      .default('/sliced/'),
    /** When this node's own config tree differs from the cluster's at start: replace it (true) or refuse to start. */
    takeTree: z.boolean().default(false),
    /** TLS to etcd: the CA that signed the members' certificates, and this node's client certificate and key. */
    tls: z
      .object({ ca: z.string().min(1), cert: z.string().min(1).optional(), key: z.string().min(1).optional() })
      .strict()
      .refine((t) => (t.cert === undefined) === (t.key === undefined), 'must give cert and key together')
      .optional(),
    /** The node-to-node channel (task logs and signals between agents); none without it. */
    peer: peerSchema.optional(),
  })
  .strict()
  .refine((c) => c.tls === undefined || c.endpoints.every((e) => e.startsWith('https:')), 'has tls files but http endpoints; use https://');

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
    cpuCapacity: cpuCapacitySchema.optional(),
    stopGraceMs: z.number().int().min(0).max(600_000).default(5000),
    /** How long a finished task (and its output) is kept before it is forgotten; 0 keeps them all. */
    taskRetentionMs: z
      .number()
      .int()
      .min(0)
      .max(365 * 86_400_000)
      .default(86_400_000),
    /** pids.max of a slice left at "default": a share of the node's PIDs ("15%"), a count, or "none". */
    defaultPidsMax: z
      .union([z.string(), z.number()])
      .superRefine((value, ctx) => {
        const parsed = parsePidsDefault(value);
        if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
      })
      .default(DEFAULT_PIDS_SETTING),
    metricsPort: z.number().int().min(1).max(65535).nullable().default(null),
    web: webSchema.nullable().default(null),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    logFile: z.string().min(1).nullable().default(null),
    /** Nice value of the daemon itself, so the control plane stays responsive when slices saturate the CPUs. */
    daemonNice: z.number().int().min(-20).max(19).default(-10),
    /** Allow attach/exec to move a process out of a memory cgroup that does not contain sliced's groups. */
    attachAnyMemoryCgroup: z.boolean().default(false),
    /** Name of this node in the config tree and the cluster; defaults to the host name. */
    nodeName: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 letters, digits, "_", "." or "-"')
      .nullable()
      .default(null),
    /** Join a cluster: desired state shared through etcd (see README, Clusters); null: this node alone, on the embedded store. */
    cluster: clusterSchema.nullable().default(null),
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
    /**
     * How the Unix users sliced makes for slices begin: sl-<slice>. Agents that share one
     * machine's users (a test cluster) give each its own, e.g. "sl-a-".
     */
    userPrefix: z.string().regex(USER_PREFIX_PATTERN, USER_PREFIX_ALLOWED).default('sl-'),
    /** Private IPv4 subnet of the slices (the bridge takes the first address), /17 to /29. */
    netPool4: poolSchema(4).default('10.213.0.0/17'),
    /** Private IPv6 subnet of the slices, /64 to /124. */
    netPool6: poolSchema(6).default('fd5c:ed00::/64'),
    /** The node's network capacity: the ceiling of all slices' outgoing traffic together and the budget for guaranteed rates. */
    netCapacity: rateSchema.default('10gbit'),
    /** Conntrack entries the new connections of one namespaced slice may hold in the node's shared table, or "none". */
    netConntrackMax: z.union([z.number().int().min(1).max(16_777_216), z.literal('none')]).default(DEFAULT_CONNTRACK_MAX),
  })
  .strict();

export type SlicedConfig = z.output<typeof configSchema> & { socket: string; vsysDir: string; vsysSliceRoot: string };

type ConfigKey = keyof z.input<typeof configSchema>;

/** Each setting's flag (none: YAML only) and what it allows, for messages that name both. */
const SETTINGS: Record<ConfigKey, { flag: string | null; allowed: string }> = {
  stateDir: { flag: '--state-dir', allowed: 'a directory path' },
  runDir: { flag: '--run-dir', allowed: 'a directory path' },
  socket: { flag: '--socket', allowed: 'a socket path' },
  adminGroup: { flag: '--admin-group', allowed: 'a group name, or null for none' },
  cgroupRoot: { flag: '--cgroup-root', allowed: 'a name starting with "sliced", of letters, digits, "_", "." and "-"' },
  cgroupVersion: { flag: '--cgroup-version', allowed: '"auto", "v1" or "v2"' },
  controlPeriodMs: { flag: '--period', allowed: 'a whole number of milliseconds from 100 to 60000' },
  cpuControl: { flag: '--cpu-control', allowed: '"entitlement" or "static"' },
  feedbackGain: { flag: '--feedback-gain', allowed: 'a number from 0 to 1' },
  systemReserve: { flag: '--system-reserve', allowed: 'a percentage of the node below 100% like "5%", or a CPU amount like "100m"' },
  cpuCapacity: { flag: '--cpu-capacity', allowed: 'a positive CPU amount like "4" or "3500m"' },
  stopGraceMs: { flag: '--stop-grace', allowed: 'a whole number of milliseconds from 0 to 600000' },
  taskRetentionMs: { flag: '--task-retention', allowed: 'a whole number of milliseconds from 0 (keep them all) to a year' },
  defaultPidsMax: {
    flag: '--default-pids-max',
    allowed: 'a share of the node\'s PIDs like "15%" (above 0, at most 100%), a whole number of tasks, or "none"',
  },
  metricsPort: { flag: '--metrics-port', allowed: 'a TCP port from 1 to 65535, or null for none' },
  web: {
    flag: '--web',
    allowed: 'listen (HOST:PORT), and optionally tokenFile (a root-only file) and tls (cert and key files); or null for no dashboard',
  },
  logLevel: { flag: '--log-level', allowed: '"trace", "debug", "info", "warn", "error" or "fatal"' },
  logFile: { flag: '--log-file', allowed: 'a file path, or null for stderr' },
  daemonNice: { flag: null, allowed: 'a whole number from -20 to 19' },
  attachAnyMemoryCgroup: { flag: null, allowed: 'true or false' },
  nodeName: { flag: '--node-name', allowed: '1 to 64 letters, digits, "_", "." or "-", starting with a letter or digit' },
  cluster: {
    flag: '--cluster',
    allowed:
      'endpoints (etcd client URLs, http(s)://HOST:PORT, comma-separated), and optionally labels, leaseTtlMs (2000 to 60000), ' +
      'prefix ("/sliced/"), takeTree (true or false), tls (ca, cert, key files) and peer (listen HOST:PORT, advertise, tokenFile or tls)',
  },
  pluginDirs: { flag: '--plugin-dir', allowed: 'a list of folder paths' },
  defaultTree: { flag: '--default-tree', allowed: 'a file path' },
  mount: { flag: '--mount', allowed: 'a directory path, or null for none' },
  vsysDir: { flag: '--vsys-dir', allowed: 'a directory path' },
  vsysSliceRoot: { flag: '--vsys-slice-root', allowed: 'a directory path' },
  vsysTimeoutMs: { flag: '--vsys-timeout', allowed: 'a whole number of milliseconds from 100 to 3600000' },
  vsysMaxInput: { flag: '--vsys-max-input', allowed: 'a size from 1 byte to 1G like "64K" or "1M"' },
  vsysMaxOutput: { flag: '--vsys-max-output', allowed: 'a size from 1 byte to 1G like "64K" or "1M"' },
  vsysMaxCallsPerSlice: { flag: '--vsys-max-calls', allowed: 'a whole number from 1 to 1000' },
  sliceSocketMaxConnections: { flag: '--slice-socket-max-connections', allowed: 'a whole number from 1 to 10000' },
  sliceSocketMaxTotal: { flag: '--slice-socket-max-total', allowed: 'a whole number from 1 to 100000' },
  sliceSocketTimeoutMs: { flag: '--slice-socket-timeout', allowed: 'a whole number of milliseconds from 100 to 600000' },
  net: { flag: '--no-net', allowed: 'true or false' },
  netTag: { flag: '--net-tag', allowed: '1 to 5 lower-case letters or digits' },
  userPrefix: { flag: '--user-prefix', allowed: USER_PREFIX_ALLOWED },
  netPool4: { flag: '--net-pool4', allowed: 'a private (RFC 1918) IPv4 subnet from /17 to /29 like "10.213.0.0/17"' },
  netPool6: { flag: '--net-pool6', allowed: 'an IPv6 subnet inside fc00::/7 from /64 to /124 like "fd5c:ed00::/64"' },
  netCapacity: { flag: '--net-capacity', allowed: 'a rate like "1gbit", "500mbit" or a number of bit/s' },
  netConntrackMax: { flag: '--net-conntrack-max', allowed: 'a whole number of entries from 1 to 16777216, or "none"' },
};

/**
 * One sentence per refused setting: its YAML key and flag, the value given and where
 * (command line or file), what is wrong and what is allowed, e.g. "controlPeriodMs (--period)
 * 50 on the command line is too small; allowed: a whole number of milliseconds from 100 to 60000".
 */
export function describeConfigIssues(
  issues: readonly z.core.$ZodIssue[],
  input: Record<string, unknown>,
  fromFlags: ReadonlySet<string>,
  file: string | null,
): string {
  return issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys' && issue.path.length > 0) {
        const section = issue.path.join('.');
        const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
        const allowed = SETTINGS[issue.path[0] as ConfigKey]?.allowed ?? 'see README';
        return `unknown key${issue.keys.length > 1 ? 's' : ''} ${keys} in ${section}; allowed: ${allowed}`;
      }
      if (issue.code === 'unrecognized_keys') {
        const names = issue.keys.map((k) => JSON.stringify(k)).join(', ');
        return (
          `unknown setting${issue.keys.length > 1 ? 's' : ''} ${names}${file ? ` in ${file}` : ''}; the settings are ` +
          `${Object.keys(SETTINGS).join(', ')}`
        );
      }
      const key = String(issue.path[0] ?? '');
      const setting = SETTINGS[key as ConfigKey];
      // A section's setting is named by its path (cluster.endpoints) and shown with its own value.
      const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
      const name = `${path.join('.') || key}${setting ? ` (${setting.flag ?? 'YAML only'})` : ''}`;
      const origin = fromFlags.has(key) ? ' on the command line' : file ? ` in ${file}` : '';
      const value = path.reduce<unknown>(
        (v, p) => (isPlainObject(v) || Array.isArray(v) ? (v as Record<string, unknown>)[p] : undefined),
        input,
      );
      const shown = value === undefined ? '' : ` ${JSON.stringify(value)}`;
      const problem = problemOf(issue);
      // A reason that already says what is allowed ("must be below 100%") is not repeated.
      const allowed = setting && !/^must |allowed/.test(problem) ? `; allowed: ${setting.allowed}` : '';
      return `${name}${shown}${origin} ${problem}${allowed}`;
    })
    .join('; ');
}

function problemOf(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'too_small':
      return issue.origin === 'string' && Number(issue.minimum) === 1 ? 'is empty' : 'is too small';
    case 'too_big':
      return 'is too large';
    case 'invalid_type':
      return issue.expected === 'int' ? 'is not a whole number' : 'has the wrong type';
    case 'invalid_value':
      return 'is not one of the choices';
    case 'invalid_format':
      return 'has the wrong form';
    case 'invalid_union': {
      // The most specific branch's reason, else a type mismatch.
      const inner = issue.errors.flat().find((i) => i.code !== 'invalid_type');
      return inner ? problemOf(inner) : 'has the wrong type';
    }
    default:
      // Our own refinements' sentences ("must be below 100%", "has host bits set; ...").
      return /^(is|has|must) /.test(issue.message) ? issue.message : `is refused (${issue.message})`;
  }
}

export function loadConfig(file: string | null, overrides: Record<string, unknown>): SlicedConfig {
  const path = file ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : null);
  if (path === null) return configFromText(null, null, overrides);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SlicedError('EINVAL', `cannot read config file ${path}: ${(err as Error).message}`);
  }
  return configFromText(text, path, overrides);
}

/** The settings from a config file's text (null: no file) and the flags; pure, refusals are EINVAL. */
export function configFromText(text: string | null, path: string | null, overrides: Record<string, unknown>): SlicedConfig {
  let fromFile: Record<string, unknown> = {};
  if (text !== null) {
    const parsed = parseYamlText(text, `config file ${path}`);
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new SlicedError('EINVAL', `config file ${path} must hold a YAML mapping of settings`);
    }
    fromFile = (parsed as Record<string, unknown>) ?? {};
  }
  const merged = { ...fromFile };
  const fromFlags = new Set<string>();
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    // A section (cluster) takes the flags' fields over the file's.
    const section = merged[key];
    merged[key] = isPlainObject(value) && isPlainObject(section) ? { ...section, ...value } : value;
    fromFlags.add(key);
  }
  const result = configSchema.safeParse(merged);
  if (!result.success) throw new SlicedError('EINVAL', describeConfigIssues(result.error.issues, merged, fromFlags, path));
  const config = result.data;
  return {
    ...config,
    socket: config.socket ?? join(config.runDir, 'sliced.sock'),
    vsysDir: config.vsysDir ?? join(config.stateDir, 'vsys'),
    vsysSliceRoot: config.vsysSliceRoot ?? join(config.runDir, 'vsys'),
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function nodeCapacity(config: SlicedConfig): NodeCapacity {
  let cpu = availableParallelism() * 1000;
  if (config.cpuCapacity !== undefined) {
    const parsed = parseCpu(config.cpuCapacity);
    if (!parsed.ok || parsed.value <= 0)
      throw new SlicedError('EINVAL', `config: cpuCapacity ${JSON.stringify(config.cpuCapacity)} must be a positive CPU amount`);
    cpu = parsed.value;
  }
  const node: NodeCapacity = {
    cpuMillicores: cpu,
    systemReserveMillicores: reserveMillicores(config.systemReserve, cpu),
    memoryBytes: totalmem(),
  };
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
