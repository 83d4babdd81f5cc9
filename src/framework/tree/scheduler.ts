/** A scheduler under /schedulers: a process set and at most one policy; where new tasks of its processes run. */
import { nameProblem } from '../../core/names.js';
import { SchedulerInstance } from '../instances.js';
import type { NewTask, PlacementAnswer } from '../types.js';
import type { RoleSpec } from './host.js';
import { addFile, attach, dirFields, fail, pathOf, type Dir } from './nodes.js';
import { addProcessSet } from './process-set.js';
import type { SchedulersNode } from './root.js';

export type SchedulerNode = Dir<'scheduler', { scheduler: SchedulerInstance }>;

declare module './nodes.js' {
  interface DirNodes {
    scheduler: SchedulerNode;
  }
}

export const schedulerRole: RoleSpec<SchedulerNode, SchedulersNode> = {
  role: 'scheduler',
  under: ['schedulers'],

  create(host, parent, name, { seq }) {
    const problem = nameProblem(name);
    if (problem) throw fail('EINVAL', `scheduler name ${JSON.stringify(name)} ${problem}`);
    const scheduler = new SchedulerInstance(name, seq);
    const dir = attach<SchedulerNode>({ ...dirFields(name, parent, { userMade: true, seq }), role: 'scheduler', scheduler });
    addProcessSet(host, dir, scheduler.processSet);
  },

  remove(node, path) {
    const s = node.scheduler;
    if (s.policy) throw fail('ENOTEMPTY', `${path} still holds policy ${s.policy.type.name}; remove it first`);
    if (!s.processSet.isEmpty())
      throw fail('ENOTEMPTY', `${path}/process_set is not empty; remove its members (and set handle_all to 0) first`);
  },

  check(node) {
    const problems: string[] = [];
    const policies = [...node.children.values()].filter((c) => c.kind === 'dir' && c.role === 'policy');
    if (policies.length > 1) problems.push(`${pathOf(node)} has ${policies.length} policies`);
    if ((policies.length === 1) !== (node.scheduler.policy !== null)) problems.push(`${pathOf(node)}: policy entry and instance disagree`);
    return problems;
  },
};

export interface Placement {
  node: string | null;
  refused: string | null;
  scheduler: string | null;
}

/**
 * Ask schedulers where a new task should run: those with handle_all first, then those
 * holding the parent (by pid, session or slice), each group in reverse attach order; the
 * first scheduler whose policy gives an answer wins.
 */
export function placeNewTask(schedulers: SchedulersNode, task: NewTask): Placement {
  const all: Array<{ s: SchedulerInstance; seq: number; handleAll: boolean }> = [];
  for (const child of schedulers.children.values()) {
    if (child.kind !== 'dir' || child.role !== 'scheduler') continue;
    const s = child.scheduler;
    const ps = s.processSet;
    if (ps.handleAll) all.push({ s, seq: ps.handleAllSeq, handleAll: true });
    let seq = -1;
    const single = ps.singles.get(task.parentPid);
    if (single) seq = Math.max(seq, single.seq);
    if (task.sessionId !== null) {
      const session = ps.sessions.get(task.sessionId);
      if (session) seq = Math.max(seq, session.seq);
    }
    if (task.slice !== null) {
      const slice = ps.slices.get(task.slice);
      if (slice) seq = Math.max(seq, slice.seq);
    }
    if (seq >= 0 && !ps.handleAll) all.push({ s, seq, handleAll: false });
  }
  all.sort(byPrecedence);
  for (const { s } of all) {
    const placement = ask(s, task);
    if (placement) return placement;
  }
  return { node: null, refused: null, scheduler: null };
}

/** Stacking precedence: handle_all first, then the rest; the later attach first in each. */
function byPrecedence(a: { seq: number; handleAll: boolean }, b: { seq: number; handleAll: boolean }): number {
  return a.handleAll !== b.handleAll ? (a.handleAll ? -1 : 1) : b.seq - a.seq;
}

/**
 * /schedulers/precedence, read-only: every way a scheduler holds tasks (handle_all, or a
 * member of its process set) in the order placement asks, one per line: rank, scheduler,
 * what it holds, and the attach number that ranks it. For a new task, the schedulers are
 * asked in the order of the first line that holds its parent.
 */
export function addPrecedenceFile(schedulers: SchedulersNode): void {
  addFile(schedulers, 'precedence', () => {
    const holds: Array<{ name: string; what: string; seq: number; handleAll: boolean }> = [];
    for (const child of schedulers.children.values()) {
      if (child.kind !== 'dir' || child.role !== 'scheduler') continue;
      const { name, processSet: ps } = child.scheduler;
      if (ps.handleAll) {
        holds.push({ name, what: 'handle_all', seq: ps.handleAllSeq, handleAll: true });
        continue; // it holds every task: its members rank nothing
      }
      const lists = { single_processes: ps.singles, process_sessions: ps.sessions, slices: ps.slices };
      for (const [list, members] of Object.entries(lists))
        for (const [member, { seq }] of members) holds.push({ name, what: `${list}/${member}`, seq, handleAll: false });
    }
    holds.sort(byPrecedence);
    return holds.map((h, i) => `${i + 1} ${h.name} ${h.what} #${h.seq}\n`).join('');
  });
}

/** Ask one scheduler, by name, whether or not it governs the task (slicectl run --scheduler). */
export function placeNewTaskWith(schedulers: SchedulersNode, name: string, task: NewTask): Placement {
  const child = schedulers.children.get(name);
  if (!child || child.kind !== 'dir' || child.role !== 'scheduler') {
    throw fail('ENOENT', `no scheduler ${JSON.stringify(name)} under /schedulers (slicectl ls /schedulers lists them)`);
  }
  return ask(child.scheduler, task) ?? { node: null, refused: null, scheduler: name };
}

/** A scheduler's answer, or null for no opinion: no policy, none given, or a node the task may not go to. */
function ask(s: SchedulerInstance, task: NewTask): Placement | null {
  const answer: PlacementAnswer = s.policy?.behaviour.newTaskNode?.(task) ?? null;
  if (answer === null) return null;
  if (typeof answer === 'object') return { node: null, refused: answer.refuse, scheduler: s.name };
  if (task.nodes && !task.nodes.includes(answer)) return null;
  return { node: answer, refused: null, scheduler: s.name };
}
