/**
 * A scheduler's process set: handle_all, the member lists (single_processes, process_sessions,
 * slices) and their members, and the pids they name now.
 */
import { nameProblem } from '../../core/names.js';
import type { ProcessSet } from '../instances.js';
import type { ProcessSetView } from '../types.js';
import { parseNumber } from './component.js';
import type { ProcessDirectory, RoleSpec, TreeHost } from './host.js';
import { addFile, attach, dirFields, fail, type Dir, type DirNode, type PsetList } from './nodes.js';

export type ProcessSetNode = Dir<'process_set', { set: ProcessSet }>;
export type PsetListNode = Dir<'pset_list', { list: PsetList; set: ProcessSet }>;
export type PsetMemberNode = Dir<'pset_member', { parent: PsetListNode }>;

declare module './nodes.js' {
  interface DirNodes {
    process_set: ProcessSetNode;
    pset_list: PsetListNode;
    pset_member: PsetMemberNode;
  }
}

const LISTS = ['single_processes', 'process_sessions', 'slices'] as const;

/** A scheduler's process_set/handle_all, as its write checks it. */
export function parseHandleAll(text: string): boolean {
  return parseNumber(text, 'handle_all', 0, 1, '0 or 1') === 1;
}

/** The process_set directory of a new scheduler. */
export function addProcessSet(host: TreeHost, schedulerDir: DirNode, set: ProcessSet): void {
  const ps = attach<ProcessSetNode>({ ...dirFields('process_set', schedulerDir), role: 'process_set', set });
  addFile(ps, 'handle_all', () => `${set.handleAll ? 1 : 0}\n`, {
    config: true,
    check: parseHandleAll,
    write: (text) => {
      const on = parseHandleAll(text);
      if (on && !set.handleAll) set.handleAllSeq = host.nextSeq();
      set.handleAll = on;
    },
  });
  addFile(ps, 'pids', () => processSetView(host, set).pids().join('\n') + (set.isEmpty() ? '' : '\n'));
  for (const list of LISTS) attach<PsetListNode>({ ...dirFields(list, ps), role: 'pset_list', list, set });
}

/** What a policy sees of its scheduler's process set, resolved on each call. */
export function processSetView(host: TreeHost, set: ProcessSet): ProcessSetView {
  return {
    get handleAll() {
      return set.handleAll;
    },
    pids: () => {
      const processes = host.processes();
      const out = new Set<number>();
      for (const pid of set.singles.keys()) if (!processes || processes.exists(pid)) out.add(pid);
      if (processes) {
        for (const sid of set.sessions.keys()) for (const pid of processes.sessionMembers(sid)) out.add(pid);
        for (const slice of set.slices.keys()) for (const pid of processes.slicePids(slice)) out.add(pid);
      }
      return [...out].sort((a, b) => a - b);
    },
  };
}

/** Whether a process-set member names something that exists now: a process, a session with processes, a slice. */
export function memberAlive(processes: ProcessDirectory | null, list: PsetList, name: string): boolean {
  if (!processes) return true;
  if (list === 'slices') return processes.sliceExists(name);
  const id = Number(name);
  return list === 'single_processes' ? processes.exists(id) : processes.sessionMembers(id).length > 0;
}

/** The checks mkdir of a process-set member makes: a valid name and, unless `allowVanished`, something that exists. */
export function checkMember(processes: ProcessDirectory | null, list: PsetList, name: string, allowVanished = false): void {
  if (list === 'slices') {
    const problem = nameProblem(name);
    if (problem) throw fail('EINVAL', `slice name ${JSON.stringify(name)} ${problem}`);
    if (!allowVanished && !memberAlive(processes, list, name)) throw fail('ENOENT', `no slice ${name}`);
    return;
  }
  if (list === 'process_sessions' && name === '0') {
    // The kernel reports session 0 when the session's leader lives outside this PID
    // namespace (a shell started by a container runtime): it names no session we can follow.
    throw fail(
      'EINVAL',
      'session id 0 means the session began outside this PID namespace; start a new session (setsid -w bash) and use its id',
    );
  }
  if (!/^[1-9][0-9]{0,9}$/.test(name) || Number(name) > 4_194_304) {
    throw fail(
      'EINVAL',
      `${JSON.stringify(name)} is not a ${list === 'single_processes' ? 'pid' : 'session id'}: must be a whole number from 1 to 4194304`,
    );
  }
  if (allowVanished || memberAlive(processes, list, name)) return;
  throw list === 'single_processes' ? fail('ESRCH', `process ${name} does not exist`) : fail('ESRCH', `session ${name} has no processes`);
}

export const processSetRole: RoleSpec<ProcessSetNode> = { role: 'process_set' };
export const psetListRole: RoleSpec<PsetListNode> = { role: 'pset_list' };

export const psetMemberRole: RoleSpec<PsetMemberNode, PsetListNode> = {
  role: 'pset_member',
  under: ['pset_list'],

  create(host, parent, name, { seq, allowVanished }) {
    const { set, list } = parent;
    checkMember(host.processes(), list, name, allowVanished);
    if (list === 'slices') set.slices.set(name, { seq });
    else if (list === 'single_processes') set.singles.set(Number(name), { seq });
    else set.sessions.set(Number(name), { seq });
    attach<PsetMemberNode>({ ...dirFields(name, parent, { userMade: true, seq }), role: 'pset_member' });
  },

  remove(node) {
    const { set, list } = node.parent;
    if (list === 'slices') set.slices.delete(node.name);
    else if (list === 'single_processes') set.singles.delete(Number(node.name));
    else set.sessions.delete(Number(node.name));
  },
};
