/**
 * Where sliced's cgroup v2 groups go in the group it was given, and what it may move there.
 * Pure; no I/O.
 *
 * cgroup v2 lets a group hold processes or enable controllers for its children, not both
 * (the "no internal processes" rule; only the root group is exempt). Under systemd with
 * Delegate=yes the daemon starts in the service's group; it therefore moves itself into a
 * leaf `supervisor/` of that group (the name systemd's delegation document suggests), enables
 * the controllers in the group, and makes its root group (`sliced/`) beside the leaf:
 *
 *     <managed>/                 the delegated group: controllers on, no processes
 *     <managed>/supervisor/      the daemon and the helpers it spawns
 *     <managed>/sliced/...       domains and slices
 *
 * A daemon that starts inside that leaf (systemd >= 254 with DelegateSubgroup=supervisor, or
 * a restart from a shell in the leaf) manages the leaf's parent. Paths here are cgroup paths
 * as /proc/<pid>/cgroup gives them ("/" is the root of the hierarchy).
 */
import { z } from 'zod';

/** The delegation record's file name in the run directory. */
export const DELEGATION_RECORD = 'cgroup.json';

/** The leaf the daemon's own processes live in, beside its root group. */
export const SUPERVISOR_GROUP = 'supervisor';

export interface DelegatedGroups {
  /** The group sliced manages: its root group and the supervisor leaf are made in it. */
  managed: string;
  /** The leaf the daemon runs in, or null where no move is needed (the root group is exempt). */
  supervisor: string | null;
  /** The daemon already runs in the supervisor leaf. */
  inSupervisor: boolean;
}

/**
 * The groups for a daemon whose own group is `own`. `exempt` says `own` is the real root of
 * the hierarchy (not the root of a cgroup namespace, which looks like "/" inside a container
 * but obeys the rule like any other group).
 */
export function delegatedGroups(own: string, exempt: boolean): DelegatedGroups {
  const path = normalise(own);
  if (path === '/' && exempt) return { managed: '/', supervisor: null, inSupervisor: false };
  const slash = path.lastIndexOf('/');
  if (path !== '/' && path.slice(slash + 1) === SUPERVISOR_GROUP) {
    return { managed: slash === 0 ? '/' : path.slice(0, slash), supervisor: path, inSupervisor: true };
  }
  return { managed: path, supervisor: path === '/' ? `/${SUPERVISOR_GROUP}` : `${path}/${SUPERVISOR_GROUP}`, inSupervisor: false };
}

function normalise(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (!path.startsWith('/') || parts.includes('..')) {
    throw new Error(`cgroup path ${JSON.stringify(path)} must be absolute and must not contain ".."`);
  }
  return `/${parts.join('/')}`;
}

export interface GroupMembers {
  /** The daemon itself and processes it started (its descendants): moved into the leaf. */
  ours: number[];
  /** Everything else: never moved by sliced. */
  strangers: number[];
}

/** Longest parent chain followed; deeper trees are not something a daemon spawns. */
const MAX_DEPTH = 64;

/**
 * Sort the processes of the managed group. `parentOf` gives a process's parent pid, 0 for a
 * process without one, or null when it is gone; gone processes are left out. A process is
 * ours when `self` is on its chain of parents (the helpers the daemon spawned, and children a
 * shell forked before it exec'd the daemon); its parent shell or any other process is a
 * stranger, which sliced must not take out of the group it was put in.
 */
export function sortMembers(members: readonly number[], self: number, parentOf: (pid: number) => number | null): GroupMembers {
  const result: GroupMembers = { ours: [], strangers: [] };
  for (const pid of new Set(members)) {
    if (pid === self) {
      result.ours.push(pid);
      continue;
    }
    let at: number | null = parentOf(pid);
    if (at === null) continue; // exited meanwhile
    let ours = false;
    for (let depth = 0; at !== null && at > 0 && depth < MAX_DEPTH; depth++) {
      if (at === self) {
        ours = true;
        break;
      }
      at = parentOf(at);
    }
    (ours ? result.ours : result.strangers).push(pid);
  }
  return result;
}

/** The refusal when the managed group holds processes sliced did not start. */
export function strangersMessage(managedDir: string, strangers: ReadonlyArray<{ pid: number; command: string | null }>): string {
  const list = strangers.map((s) => `${s.pid} (${s.command ?? '?'})`).join(', ');
  return (
    `cgroup ${managedDir} holds processes sliced did not start: ${list}. sliced moves only itself and its own ` +
    `children into ${SUPERVISOR_GROUP}/ before it enables controllers there (cgroup v2 allows no processes in a group ` +
    'that has children with controllers); start sliced as the only process of a group of its own ' +
    '(systemd: the sliced.service unit, Delegate=yes), or move those processes out first'
  );
}

/**
 * What sliced made in the managed group, kept in the run directory so that `sliced
 * --cleanup`, run from any group, finds the tree and undoes only that.
 */
export const delegationRecordSchema = z
  .object({
    /** Absolute directory of the managed group (below the cgroup2 mount). */
    managed: z.string().startsWith('/'),
    /** sliced made the supervisor leaf (systemd did when DelegateSubgroup= placed it there). */
    supervisorMade: z.boolean(),
    /** Controllers sliced added to the managed group's cgroup.subtree_control. */
    controllersAdded: z.array(z.string().regex(/^[a-z_]+$/)),
  })
  .strict();

export type DelegationRecord = z.infer<typeof delegationRecordSchema>;

/** The record after a start: what earlier starts made in the same group stays listed. */
export function mergeRecord(previous: DelegationRecord | null, now: DelegationRecord): DelegationRecord {
  if (previous === null || previous.managed !== now.managed) return now;
  return {
    managed: now.managed,
    supervisorMade: previous.supervisorMade || now.supervisorMade,
    controllersAdded: [...new Set([...previous.controllersAdded, ...now.controllersAdded])],
  };
}
