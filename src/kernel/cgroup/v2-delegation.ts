/**
 * cgroup v2 delegation: the group sliced manages holds no processes (the "no internal
 * processes" rule), so the daemon first moves itself and its helpers into the supervisor leaf
 * beside its root group; what it made there is kept in the delegation record, so that
 * `sliced --cleanup` undoes exactly that (src/core/delegation.ts has the pure rules).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { childDirs, makeDir, readIds, readText } from './files.js';
import { SlicedError } from '../../core/errors.js';
import {
  SUPERVISOR_GROUP,
  delegationRecordSchema,
  mergeRecord,
  sortMembers,
  strangersMessage,
  type DelegationRecord,
} from '../../core/delegation.js';
import { readProcStat } from '../procfs.js';

/** What init() needs to know of processes, behind an interface so fixture tests can simulate them. */
export interface ProcessProbe {
  /** The daemon's pid. */
  readonly self: number;
  /** Parent pid, 0 for none, null when the process is gone. */
  parentOf(pid: number): number | null;
  /** The command name (comm), or null when the process is gone. */
  commandOf(pid: number): string | null;
}

export const PROC_PROBE: ProcessProbe = {
  self: process.pid,
  parentOf: (pid) => readProcStat(pid)?.parentPid ?? null,
  commandOf: (pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return null;
    }
  },
};

/** What the delegation steps need of the backend: the managed group, and the writes where the kernel's rules apply. */
export interface DelegatedGroup {
  /** The group sliced manages (V2Layout.own). */
  readonly own: string;
  /** The supervisor leaf, or null where the daemon needs none (V2Layout.supervisor). */
  readonly supervisor: string | null;
  /** Where the delegation record is kept, if anywhere (V2Layout.recordFile). */
  readonly recordFile: string | undefined;
  readonly processes: ProcessProbe;
  /** Writes to cgroup.subtree_control and cgroup.procs. */
  writeControl(path: string, value: string): void;
  /** rmdir of a group outside the root group; fails while it holds processes. */
  removeGroupDir(dir: string): void;
}

/** Controllers listed in a group's cgroup.subtree_control. */
export function subtreeControl(dir: string): string[] {
  return readText(join(dir, 'cgroup.subtree_control')).trim().split(/\s+/).filter(Boolean);
}

function groupMembers(group: DelegatedGroup): { ours: number[]; strangers: number[] } {
  if (!group.supervisor) return { ours: [], strangers: [] };
  return sortMembers(readIds(join(group.own, 'cgroup.procs')), group.processes.self, (pid) => group.processes.parentOf(pid));
}

/**
 * Refuse a managed group that holds processes sliced did not start; read-only, so the start
 * can check it before it touches anything (and init() checks again).
 */
export function checkDelegation(group: DelegatedGroup): void {
  const strangers = groupMembers(group).strangers;
  if (strangers.length > 0) {
    const named = strangers.map((pid) => ({ pid, command: group.processes.commandOf(pid) }));
    throw new SlicedError('EBUSY', strangersMessage(group.own, named), { pids: strangers });
  }
}

/**
 * Move the daemon and the processes it started from the managed group into the supervisor
 * leaf, so that the group may enable controllers for its children. Processes are never
 * moved out of the memory cgroup they started in except into a descendant of it: the leaf
 * is a child of the group, so the daemon stays inside the accounting it was started in
 * (a systemd service's MemoryMax= still covers it). Returns whether the leaf was made now.
 */
export function enterSupervisor(group: DelegatedGroup): boolean {
  const leaf = group.supervisor;
  if (!leaf) return false;
  checkDelegation(group);
  const made = !existsSync(leaf);
  makeDir(leaf);
  for (const pid of groupMembers(group).ours) {
    try {
      // One write moves the whole process, every thread of it (cgroup.procs, not cgroup.threads).
      group.writeControl(join(leaf, 'cgroup.procs'), String(pid));
    } catch (err) {
      if (pid !== group.processes.self && group.processes.parentOf(pid) === null) continue; // a helper that exited meanwhile
      throw err;
    }
  }
  return made;
}

/**
 * Add to the delegation record what init() made in the managed group: the supervisor leaf
 * (when made now) and the controllers it turned on there (`before`: those on before).
 */
export function recordDelegation(
  group: DelegatedGroup,
  supervisorMade: boolean,
  before: readonly string[],
  controllers: readonly string[],
): void {
  if (!group.recordFile) return;
  // The root group's controllers are the system's: what sliced turns on there stays on.
  const added = group.supervisor ? controllers.filter((c) => !before.includes(c)) : [];
  const now = { managed: group.own, supervisorMade, controllersAdded: added };
  writeRecord(group.recordFile, mergeRecord(readRecord(group.recordFile), now));
}

/**
 * For `sliced --cleanup`, after the root group is gone: undo what the record says sliced
 * made in the managed group. The supervisor leaf goes only when sliced made it and it is
 * empty; the controllers sliced added are switched off only when no child group is left, so
 * nothing another program put there loses its limits. Returns what had to stay, and why.
 */
export function releaseDelegation(group: DelegatedGroup): string[] {
  const file = group.recordFile;
  const record = file ? readRecord(file) : null;
  if (!file || !record || record.managed !== group.own) return [];
  const left: string[] = [];
  const leaf = join(group.own, SUPERVISOR_GROUP);
  let supervisorMade = record.supervisorMade;
  if (supervisorMade && existsSync(leaf)) {
    try {
      group.removeGroupDir(leaf);
      supervisorMade = false;
    } catch (err) {
      left.push(`${leaf} (${(err as Error).message})`);
    }
  } else {
    supervisorMade = false;
  }
  let controllersAdded = record.controllersAdded;
  const children = childDirs(group.own);
  const enabled = subtreeControl(group.own);
  const off = controllersAdded.filter((c) => enabled.includes(c));
  if (off.length > 0 && children.length === 0) {
    group.writeControl(join(group.own, 'cgroup.subtree_control'), off.map((c) => `-${c}`).join(' '));
    controllersAdded = [];
  } else if (off.length === 0) {
    controllersAdded = [];
  } else {
    left.push(`controllers ${off.join(' ')} in ${join(group.own, 'cgroup.subtree_control')} (child groups remain: ${children.join(' ')})`);
  }
  if (!supervisorMade && controllersAdded.length === 0) rmSync(file, { force: true });
  else writeRecord(file, { managed: record.managed, supervisorMade, controllersAdded });
  return left;
}

/** The delegation record in `file`, or null when there is none or it is not one. */
export function readRecord(file: string): DelegationRecord | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = delegationRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

function writeRecord(file: string, record: DelegationRecord): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  const temporary = `${file}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(record)}\n`, { mode: 0o644 });
  renameSync(temporary, file);
}
