/**
 * Cluster tasks as pure data: a task is a command run in a slice on one of the slice's nodes,
 * placed there by the schedulers of the config tree. Its record (spec, desired state, node and
 * placement generation) is written by whoever places it; its status by the node that runs it.
 * A task placed again (restart elsewhere, migration, failover) gets the next generation, so a
 * status is only ever read against the placement it reports on. No I/O here.
 */
import { z } from 'zod';
import { SlicedError } from './errors.js';
import { nameSchema, parseInput } from './model.js';
import { RESTART_POLICIES, type RestartPolicy } from './restart-policies.js';

export { RESTART_POLICIES, type RestartPolicy } from './restart-policies.js';

/** What a client asks for (`slicectl run`). */
export interface TaskRequest {
  slice: string;
  name: string | null;
  command: string[];
  restart: RestartPolicy;
  migratable: boolean;
  /** Ask this scheduler of the tree alone (else every scheduler that governs the task, in precedence order). */
  scheduler: string | null;
  env: Record<string, string>;
  cwd: string | null;
  /** Run on this node only (Nomad's and Kubernetes' node pinning): no other node takes it, ever. */
  node: string | null;
}

export interface TaskSpec extends TaskRequest {
  id: string;
  createdAt: number;
  /** The node the task was submitted on. */
  createdOn: string;
}

/** The key `tasks/<id>/record`: what should run where. */
export interface TaskRecord {
  spec: TaskSpec;
  desired: 'run' | 'stop';
  node: string;
  /** Increases every time the task is placed anew. */
  generation: number;
  placedAt: number;
  /** The scheduler that chose the node, or how it was chosen. */
  placedBy: string;
  /**
   * Being moved: the node it runs on stops it, then hands the record over to `to` (next
   * generation, placed by `by`), so it never runs on both. Absent when it stays.
   */
  moving?: { to: string; by: string } | null;
}

/** Whether another node may be given this task when its node is taken for dead (so its node must fence it). */
export function failsOver(record: TaskRecord): boolean {
  // A pinned task waits for its node, whatever its restart policy.
  if (record.spec.node) return false;
  return record.desired === 'run' && (record.spec.restart !== 'never' || Boolean(record.moving));
}

export type TaskRunState = 'running' | 'exited' | 'failed' | 'stopped';

/** The key `tasks/<id>/status`: what the node running the task saw. */
export interface TaskStatus {
  node: string;
  generation: number;
  state: TaskRunState;
  pid: number | null;
  /** The process's start time in clock ticks since boot (/proc/PID/stat), so a pid reused by another process is never taken for it. */
  pidStartTicks: number | null;
  startedAt: number | null;
  endedAt: number | null;
  /** Exit status as a shell reports it (128+N after signal N); null while running or when it never started. */
  exitStatus: number | null;
  /** Restarts on this node under the task's restart policy. */
  restarts: number;
  /** Why it could not start or was lost, in one sentence. */
  error: string | null;
}

/** What `slicectl task show` prints: the record and the status that belongs to its placement. */
export type TaskState = 'pending' | TaskRunState | 'unknown';
export interface TaskView {
  id: string;
  name: string | null;
  slice: string;
  command: string[];
  restart: RestartPolicy;
  migratable: boolean;
  /** The node it is pinned to (slicectl run --node), or null. */
  pinned: string | null;
  node: string;
  generation: number;
  placedBy: string;
  state: TaskState;
  /** Why the state is what it is, when that is not obvious (a down node, a start refused). */
  reason: string | null;
  desired: 'run' | 'stop';
  pid: number | null;
  restarts: number;
  exitStatus: number | null;
  createdAt: string;
  createdOn: string;
  placedAt: string;
  startedAt: string | null;
  endedAt: string | null;
}

export type StreamName = 'stdout' | 'stderr';

/** One line of a task's output as the API streams it (NDJSON): a chunk of one stream, base64 so any bytes pass. */
export interface LogLine {
  stream: StreamName;
  data: string;
}

export const TASK_ID_PATTERN = /^[0-9a-f]{12}$/;

const MAX_ARGS = 1024;
const MAX_ARG_BYTES = 64 * 1024;

const commandSchema = z
  .array(
    z.string().superRefine((arg, ctx) => {
      if (arg.includes('\0')) ctx.addIssue({ code: 'custom', message: 'an argument must not contain NUL' });
    }),
  )
  .min(1, 'give the command to run, e.g. ["sleep", "10"]')
  .max(MAX_ARGS, `at most ${MAX_ARGS} arguments`)
  .superRefine((args, ctx) => {
    const bytes = args.reduce((sum, a) => sum + Buffer.byteLength(a) + 1, 0);
    if (bytes > MAX_ARG_BYTES) ctx.addIssue({ code: 'custom', message: `the command is ${bytes} bytes long; at most ${MAX_ARG_BYTES}` });
  });

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Set by the daemon for every process in a slice; a task may not change them. */
const RESERVED_ENV = new Set(['SLICE', 'SLICED_PROCS', 'SLICED_UID', 'SLICED_GID', 'SLICED_NETNS', 'SLICED_TASK_ID', 'SLICED_NODE']);

const requestSchema = z
  .object({
    slice: nameSchema,
    name: nameSchema.optional(),
    command: commandSchema,
    restart: z.enum(RESTART_POLICIES).default('never'),
    migratable: z.boolean().default(false),
    scheduler: nameSchema.optional(),
    env: z
      .record(z.string(), z.string())
      .default({})
      .superRefine((env, ctx) => {
        for (const [key, value] of Object.entries(env)) {
          if (!ENV_NAME.test(key))
            ctx.addIssue({ code: 'custom', message: `environment name ${JSON.stringify(key)} must match ${ENV_NAME}` });
          else if (RESERVED_ENV.has(key)) ctx.addIssue({ code: 'custom', message: `environment name ${key} is set by sliced` });
          if (value.includes('\0')) ctx.addIssue({ code: 'custom', message: `environment value of ${key} must not contain NUL` });
        }
      }),
    cwd: z
      .string()
      .refine((p) => p.startsWith('/') && !p.includes('\0') && p.length <= 4096, 'must be an absolute path')
      .optional(),
    node: nameSchema.optional(),
  })
  .strict()
  .refine((r) => !(r.node !== undefined && r.migratable), {
    message: 'a task pinned to a node cannot be migratable: give node or migratable, not both',
  });

export function parseTaskRequest(body: unknown): TaskRequest {
  const r = parseInput(requestSchema, body, 'task');
  return { ...r, name: r.name ?? null, scheduler: r.scheduler ?? null, cwd: r.cwd ?? null, node: r.node ?? null };
}

export function assertTaskId(id: unknown): string {
  if (typeof id !== 'string' || !TASK_ID_PATTERN.test(id)) {
    throw new SlicedError('EINVAL', `task id ${JSON.stringify(id)} is not one: 12 hexadecimal digits, as slicectl run -d prints`);
  }
  return id;
}

/** A task id from 6 random bytes. */
export function taskId(random: Uint8Array): string {
  if (random.length < 6) throw new Error('taskId needs 6 random bytes');
  return Buffer.from(random.subarray(0, 6)).toString('hex');
}

/** Whether a task that ended by itself runs again under its policy (a stop asked for never restarts). */
export function restartsAfter(policy: RestartPolicy, exitStatus: number): boolean {
  if (policy === 'always') return true;
  if (policy === 'on-failure') return exitStatus !== 0;
  return false;
}

/** Delay before the n-th restart (0-based): 100 ms doubling to at most 10 s, so a crashing task cannot spin. */
export function restartDelayMs(restarts: number): number {
  return Math.min(10_000, 100 * 2 ** Math.min(restarts, 7));
}

/** Exit status of a process that ended with `code` or was killed by signal number `signal`, as a shell reports it. */
export function exitStatusOf(code: number | null, signal: number | null): number {
  return signal !== null && signal > 0 ? 128 + signal : (code ?? 1);
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * The task as `task show` prints it. A status of an earlier placement is not this one's:
 * the task is then pending on its node. A node that is down cannot say: `unknown`.
 */
export function taskView(record: TaskRecord, status: TaskStatus | null, nodeUp: boolean): TaskView {
  const current = status !== null && status.generation === record.generation && status.node === record.node ? status : null;
  let state: TaskState = current?.state ?? 'pending';
  let reason = current?.error ?? null;
  if (!nodeUp && (state === 'running' || state === 'pending')) {
    state = 'unknown';
    reason = `node ${record.node} is down`;
  }
  const { spec } = record;
  return {
    id: spec.id,
    name: spec.name,
    slice: spec.slice,
    command: spec.command,
    restart: spec.restart,
    migratable: spec.migratable,
    // Records written before pinning existed have no node in their spec.
    pinned: spec.node ?? null,
    node: record.node,
    generation: record.generation,
    placedBy: record.placedBy,
    state,
    reason,
    desired: record.desired,
    pid: current?.state === 'running' ? current.pid : null,
    restarts: current?.restarts ?? 0,
    exitStatus: current?.exitStatus ?? null,
    createdAt: iso(spec.createdAt)!,
    createdOn: spec.createdOn,
    placedAt: iso(record.placedAt)!,
    startedAt: iso(current?.startedAt ?? null),
    endedAt: iso(current?.endedAt ?? null),
  };
}

/** A task whose process will not run again (until it is placed anew). */
export function isFinished(view: Pick<TaskView, 'state'>): boolean {
  return view.state === 'exited' || view.state === 'failed' || view.state === 'stopped';
}

/**
 * Whether a task may be forgotten (its record, statuses and output): finished at least
 * `retentionMs` ago, and not wanted running again (a restart pending waits). 0 keeps all.
 */
export function expired(
  view: Pick<TaskView, 'state' | 'endedAt' | 'desired' | 'restart' | 'exitStatus'>,
  now: number,
  retentionMs: number,
): boolean {
  if (retentionMs === 0 || !isFinished(view) || view.endedAt === null) return false;
  if (view.state === 'exited' && view.desired === 'run' && restartsAfter(view.restart, view.exitStatus ?? 1)) return false;
  return now - Date.parse(view.endedAt) >= retentionMs;
}

export interface NodeAvailability {
  name: string;
  status: 'up' | 'down';
  cordoned: boolean;
}

/**
 * The nodes a task of a slice may be placed on: those holding the slice that are up and not
 * cordoned. Refuses naming why each of the slice's nodes is out.
 */
export function candidateNodes(slice: string, sliceNodes: readonly string[], members: readonly NodeAvailability[]): string[] {
  const byName = new Map(members.map((m) => [m.name, m]));
  const ok: string[] = [];
  const out: string[] = [];
  for (const node of [...sliceNodes].sort()) {
    const m = byName.get(node);
    if (!m) out.push(`${node} is not a member`);
    else if (m.status !== 'up') out.push(`${node} is down`);
    else if (m.cordoned) out.push(`${node} is cordoned`);
    else ok.push(node);
  }
  if (ok.length === 0) {
    const why = sliceNodes.length === 0 ? 'it is on no node' : out.join('; ');
    throw new SlicedError('EBUSY', `slice ${slice} has no node a task can be placed on: ${why}`);
  }
  return ok;
}

/** Where no scheduler answered: the candidate running the fewest tasks, this node first on a tie, then by name. */
export function defaultTaskNode(candidates: readonly string[], running: ReadonlyMap<string, number>, self: string): string {
  let best = candidates[0]!;
  const rank = (n: string): [number, number, string] => [running.get(n) ?? 0, n === self ? 0 : 1, n];
  for (const n of candidates) {
    const [a, b] = [rank(n), rank(best)];
    if (a[0] < b[0] || (a[0] === b[0] && (a[1] < b[1] || (a[1] === b[1] && a[2] < b[2])))) best = n;
  }
  return best;
}
