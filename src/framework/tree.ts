/**
 * The configuration tree, with configfs semantics (docs/ARCHITECTURE.md, "Config tree"):
 *
 *   /probes/<probe type>/{probe_period, <attr>..., <source>/value}
 *   /schedulers/<name>/process_set/{handle_all, single_processes/<pid>, process_sessions/<sid>, slices/<slice>}
 *   /schedulers/<name>/<policy type>/{<attr>..., status, <port>/{collected_value, <link> | <filter type>/...}}
 *   filter: {value, collected_value, <attr>..., <link> | <filter type>/...}
 *   /slices/<slice>/..., /domains/<domain>/..., /nodes/<node>/...  (read-only views)
 *
 * `mkdir` of a type name creates a component (its module loaded on first use); `ln -s` of a
 * probe source into a port or filter links it (value types must be equal: EINVAL; a slot
 * that already has a source: EPERM); a scheduler's second policy is EBUSY; `rmdir` of a
 * component that still has sources or subscribers is ENOTEMPTY/EBUSY. Every refusal is a
 * SlicedError with its code and one sentence, and leaves the tree as it was.
 *
 * The tree is pure with respect to the outside world: components get their I/O through the
 * services the daemon lends them, and every accepted change is reported to `onMutation`
 * listeners (the service persists them through the store).
 */
import { SlicedError, type ErrorCode } from '../core/errors.js';
import { nameProblem } from '../core/names.js';
import type { Entry } from '../wire/tree.js';
import type { Output } from './dataflow.js';
import {
  FilterInstance,
  PolicyInstance,
  PortInstance,
  ProbeInstance,
  SchedulerInstance,
  SlotOwner,
  realTimers,
  type ProcessSet,
  type Timers,
} from './instances.js';
import { RESERVED_ENTRIES, TYPE_NAME, type TypeRegistry } from './registry.js';
import type {
  AttributeSpec,
  AttributeValue,
  ComponentContext,
  ComponentType,
  FrameworkServices,
  NewTask,
  PlacementAnswer,
  ProcessSetView,
} from './types.js';

export type Role =
  | 'root'
  | 'probes'
  | 'schedulers'
  | 'info'
  | 'probe'
  | 'source'
  | 'scheduler'
  | 'policy'
  | 'port'
  | 'filter'
  | 'process_set'
  | 'pset_list'
  | 'pset_member'
  | 'info_item';

export type PsetList = 'single_processes' | 'process_sessions' | 'slices';

export interface DirNode {
  kind: 'dir';
  name: string;
  parent: DirNode | null;
  role: Role;
  children: Map<string, TreeNode>;
  /** Created by mkdir (as opposed to a default group made with its component). */
  userMade: boolean;
  seq: number;
  probe?: ProbeInstance;
  sourceIndex?: number;
  slot?: SlotOwner;
  policy?: PolicyInstance;
  scheduler?: SchedulerInstance;
  list?: PsetList;
}

export interface FileNode {
  kind: 'file';
  name: string;
  parent: DirNode;
  read(): string;
  write?(text: string): void;
  /** The validation `write` runs, without changing anything (for apply's checks before it starts). */
  check?(text: string): void;
  /** A configuration attribute: dumped, persisted and applied (probe_period, threshold...). */
  config: boolean;
}

export interface LinkNode {
  kind: 'link';
  name: string;
  parent: DirNode;
  /** Absolute tree path of the probe source. */
  target: string;
  seq: number;
}

export type TreeNode = DirNode | FileNode | LinkNode;

export type Mutation =
  | { op: 'mkdir'; path: string; seq: number }
  | { op: 'rmdir'; path: string }
  | { op: 'write'; path: string; value: string; seq: number }
  | { op: 'ln'; path: string; target: string; seq: number }
  | { op: 'rm'; path: string };

/** Read-only views under /slices, /domains and /nodes, provided by the daemon. */
export interface InfoProvider {
  names(): string[];
  /** Files of one item, each a function producing its text; null when the item does not exist. */
  files(name: string): Record<string, () => string> | null;
}

/** What process sets need to know about processes (the daemon supplies /proc and cgroups). */
export interface ProcessDirectory {
  exists(pid: number): boolean;
  sessionMembers(sid: number): number[];
  slicePids(slice: string): number[];
  sliceExists(slice: string): boolean;
  sessionOf(pid: number): number | null;
  sliceOf(pid: number): string | null;
}

export interface TreeOptions {
  registry: TypeRegistry;
  services: FrameworkServices;
  timers?: Timers;
  processes?: ProcessDirectory;
}

export const MAX_DEPTH = 32;

export class ConfigTree {
  readonly root: DirNode;
  private readonly registry: TypeRegistry;
  private readonly services: FrameworkServices;
  private readonly timers: Timers;
  private processes: ProcessDirectory | null;
  private readonly providers = new Map<string, InfoProvider>();
  private readonly listeners: Array<(m: Mutation) => void> = [];
  private seq = 0;

  constructor(options: TreeOptions) {
    this.registry = options.registry;
    this.services = options.services;
    this.timers = options.timers ?? realTimers;
    this.processes = options.processes ?? null;
    this.root = this.dir('', null, 'root');
    this.dir('probes', this.root, 'probes');
    this.dir('schedulers', this.root, 'schedulers');
    for (const name of ['slices', 'domains', 'nodes']) this.dir(name, this.root, 'info');
  }

  setProvider(name: 'slices' | 'domains' | 'nodes', provider: InfoProvider): void {
    this.providers.set(name, provider);
  }

  setProcessDirectory(processes: ProcessDirectory): void {
    this.processes = processes;
  }

  onMutation(listener: (m: Mutation) => void): void {
    this.listeners.push(listener);
  }

  get sequence(): number {
    return this.seq;
  }

  // ---- operations ---------------------------------------------------------------------------

  /** `allowVanished`: a process-set member whose processes have ended is accepted (to undo its removal exactly). */
  async mkdir(path: string, options: { seq?: number; allowVanished?: boolean } = {}): Promise<void> {
    const { parent, name } = this.parentOf(path);
    if (parent.children.has(name)) throw fail('EEXIST', `${path} already exists`);
    const seq = options.seq ?? this.seq + 1;
    switch (parent.role) {
      case 'probes':
        await this.createProbe(parent, name, seq);
        break;
      case 'schedulers':
        this.createScheduler(parent, name, seq);
        break;
      case 'scheduler':
        await this.createPolicy(parent, name, seq);
        break;
      case 'port':
      case 'filter':
        await this.createFilter(parent, name, seq);
        break;
      case 'pset_list':
        this.createMember(parent, name, seq, options.allowVanished ?? false);
        break;
      default:
        throw fail('EPERM', `cannot create ${path}: ${this.describePlace(parent)} does not hold directories made with mkdir`);
    }
    this.seq = Math.max(this.seq, seq);
    this.emit({ op: 'mkdir', path: pathOf(parent.children.get(name)!), seq });
  }

  rmdir(path: string): void {
    const node = this.lookup(path, false);
    if (node.kind !== 'dir') throw fail('ENOTDIR', `${path} is not a directory`);
    if (!node.userMade) {
      throw fail('EPERM', `${path} is ${node.parent ? `part of ${pathOf(node.parent) || '/'}` : 'the root'} and goes away only with it`);
    }
    switch (node.role) {
      case 'probe': {
        const users = node.probe!.outputs.reduce((n, o) => n + o.subscribers.length, 0);
        if (users > 0) throw fail('EBUSY', `${path} is in use: ${users} link(s) point to its sources; remove them first`);
        node.probe!.destroy();
        break;
      }
      case 'scheduler': {
        const s = node.scheduler!;
        if (s.policy) throw fail('ENOTEMPTY', `${path} still holds policy ${s.policy.type.name}; remove it first`);
        if (!s.processSet.isEmpty())
          throw fail('ENOTEMPTY', `${path}/process_set is not empty; remove its members (and set handle_all to 0) first`);
        break;
      }
      case 'policy': {
        const linked = node.policy!.ports.filter((p) => p.source !== null).map((p) => p.name);
        if (linked.length > 0)
          throw fail('ENOTEMPTY', `${path} still has sources on port(s) ${linked.join(', ')}; remove the links and filters first`);
        node.policy!.destroy();
        node.policy!.scheduler.policy = null;
        break;
      }
      case 'filter': {
        const filter = node.slot as FilterInstance;
        if (filter.source) throw fail('ENOTEMPTY', `${path} still has a source (${describeSource(filter)}); remove it first`);
        const owner = node.parent!.slot!;
        filter.output.unsubscribe(owner);
        owner.source = null;
        filter.destroy();
        break;
      }
      case 'pset_member':
        this.removeMember(node);
        break;
      default:
        throw fail('EPERM', `${path} cannot be removed`);
    }
    node.parent!.children.delete(node.name);
    this.emit({ op: 'rmdir', path: pathOf(node) });
  }

  read(path: string): string {
    const node = this.lookup(path, true);
    if (node.kind === 'dir') throw fail('EISDIR', `${path} is a directory`);
    if (node.kind === 'link') throw fail('EINVAL', `${path} is a link to ${node.target}`);
    return node.read();
  }

  write(path: string, text: string): void {
    const node = this.lookup(path, true);
    if (node.kind === 'dir') throw fail('EISDIR', `${path} is a directory`);
    if (node.kind !== 'file' || !node.write) throw fail('EPERM', `${path} is read-only`);
    const value = text.replace(/\n$/, '');
    node.write(value);
    if (node.config) {
      // The sequence orders writes at restore: turning handle_all on is an attach, and attach order is precedence.
      this.seq++;
      this.emit({ op: 'write', path: pathOf(node), value: node.read().replace(/\n$/, ''), seq: this.seq });
    }
  }

  symlink(target: string, path: string, options: { seq?: number } = {}): void {
    const { parent, name } = this.parentOf(path);
    if (parent.children.has(name)) throw fail('EEXIST', `${path} already exists`);
    if (parent.role !== 'port' && parent.role !== 'filter') {
      throw fail('EPERM', `cannot link into ${pathOf(parent) || '/'}: only ports and filters take a link to a probe source`);
    }
    const badName = nameProblem(name);
    if (badName) throw fail('EINVAL', `link name ${JSON.stringify(name)} ${badName}`);
    const source = this.lookup(target, true);
    if (source.kind !== 'dir' || source.role !== 'source') {
      throw fail('EINVAL', `${target} is not a probe source: links must point to /probes/<probe>/<source>`);
    }
    const slot = parent.slot!;
    if (slot.source) throw fail('EPERM', `${pathOf(parent)} already has a source (${describeSource(slot)}); remove it first`);
    const output = source.probe!.outputs[source.sourceIndex!]!;
    if (output.value.type !== slot.valueType) {
      throw fail(
        'EINVAL',
        `cannot link ${pathOf(source)} (values of type ${output.value.type.name}) to ${pathOf(parent)} (expects ${slot.valueType.name}): value types must be equal`,
      );
    }
    const seq = options.seq ?? this.seq + 1;
    const canonical = pathOf(source);
    slot.source = { kind: 'link', linkName: name, target: canonical, output };
    output.subscribe(slot, this.timers.now());
    parent.children.set(name, { kind: 'link', name, parent, target: canonical, seq });
    this.seq = Math.max(this.seq, seq);
    this.emit({ op: 'ln', path: `${pathOf(parent)}/${name}`, target: canonical, seq });
  }

  unlink(path: string): void {
    const node = this.lookup(path, false);
    if (node.kind === 'dir') throw fail('EISDIR', `${path} is a directory; use rmdir`);
    if (node.kind === 'file') throw fail('EPERM', `${path} is an attribute and cannot be removed`);
    const slot = node.parent.slot!;
    if (slot.source?.kind === 'link') slot.source.output.unsubscribe(slot);
    slot.source = null;
    node.parent.children.delete(node.name);
    this.emit({ op: 'rm', path: pathOf(node) });
  }

  readlink(path: string): string {
    const node = this.lookup(path, false);
    if (node.kind !== 'link') throw fail('EINVAL', `${path} is not a link`);
    return node.target;
  }

  readdir(path: string): Entry[] {
    const node = this.lookup(path, true);
    if (node.kind !== 'dir') throw fail('ENOTDIR', `${path} is not a directory`);
    if (node.role === 'info') {
      return (this.providers.get(node.name)?.names() ?? []).map((name) => ({ name, kind: 'dir' as const, writable: false }));
    }
    return [...node.children.values()].map((child) => ({
      name: child.name,
      kind: child.kind,
      writable: child.kind === 'file' ? child.write !== undefined : child.kind === 'dir' ? canMkdirIn(child.role) : true,
    }));
  }

  stat(path: string): Entry {
    const node = this.lookup(path, false);
    return {
      name: node.name,
      kind: node.kind,
      writable: node.kind === 'file' ? node.write !== undefined : node.kind === 'dir' ? canMkdirIn(node.role) : true,
    };
  }

  /** Resolve a path; `follow` follows a link in the last component too. */
  lookup(path: string, follow: boolean): TreeNode {
    const parts = splitPath(path);
    return this.walk(parts, follow, 0);
  }

  exists(path: string): boolean {
    try {
      this.lookup(path, false);
      return true;
    } catch {
      return false;
    }
  }

  /** Whether a process-set member names something that exists now: a process, a session with processes, a slice. */
  memberAlive(list: PsetList, name: string): boolean {
    const processes = this.processes;
    if (!processes) return true;
    if (list === 'slices') return processes.sliceExists(name);
    const id = Number(name);
    return list === 'single_processes' ? processes.exists(id) : processes.sessionMembers(id).length > 0;
  }

  /** The checks mkdir of a process-set member makes: a valid name and, unless `allowVanished`, something that exists. */
  checkMember(list: PsetList, name: string, allowVanished = false): void {
    if (list === 'slices') {
      const problem = nameProblem(name);
      if (problem) throw fail('EINVAL', `slice name ${JSON.stringify(name)} ${problem}`);
      if (!allowVanished && !this.memberAlive(list, name)) throw fail('ENOENT', `no slice ${name}`);
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
    if (allowVanished || this.memberAlive(list, name)) return;
    throw list === 'single_processes' ? fail('ESRCH', `process ${name} does not exist`) : fail('ESRCH', `session ${name} has no processes`);
  }

  // ---- placement ----------------------------------------------------------------------------

  /**
   * Ask schedulers where a new task should run: those with handle_all first, then those
   * holding the parent (by pid, session or slice), each group in reverse attach order; the
   * first scheduler whose policy gives an answer wins.
   */
  placeNewTask(task: NewTask): { node: string | null; refused: string | null; scheduler: string | null } {
    const all: Array<{ s: SchedulerInstance; seq: number; handleAll: boolean }> = [];
    const schedulers = this.root.children.get('schedulers') as DirNode;
    for (const child of schedulers.children.values()) {
      if (child.kind !== 'dir' || !child.scheduler) continue;
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
    all.sort((a, b) => (a.handleAll !== b.handleAll ? (a.handleAll ? -1 : 1) : b.seq - a.seq));
    for (const { s } of all) {
      const answer: PlacementAnswer = s.policy?.behaviour.newTaskNode?.(task) ?? null;
      if (answer === null) continue;
      if (typeof answer === 'object') return { node: null, refused: answer.refuse, scheduler: s.name };
      return { node: answer, refused: null, scheduler: s.name };
    }
    return { node: null, refused: null, scheduler: null };
  }

  /** Every live component, for shutdown. */
  destroyAll(): void {
    const visit = (dir: DirNode): void => {
      for (const child of dir.children.values()) if (child.kind === 'dir') visit(child);
      dir.probe?.destroy();
      if (dir.role === 'filter') (dir.slot as FilterInstance).destroy();
      if (dir.role === 'policy') dir.policy?.destroy();
    };
    visit(this.root);
  }

  // ---- invariants ---------------------------------------------------------------------------

  /** Check the tree's internal consistency; returns the problems found (empty when sound). */
  checkInvariants(): string[] {
    const problems: string[] = [];
    const outputs = new Map<Output, Set<SlotOwner>>();
    const slots: SlotOwner[] = [];
    const visit = (dir: DirNode, depth: number): void => {
      if (depth > MAX_DEPTH) problems.push(`${pathOf(dir)} is deeper than ${MAX_DEPTH}`);
      for (const [name, child] of dir.children) {
        if (child.name !== name || child.parent !== dir) problems.push(`${pathOf(dir)}/${name}: wrong name or parent`);
        if (child.kind === 'dir') visit(child, depth + 1);
      }
      if (dir.role === 'probe') for (const o of dir.probe!.outputs) outputs.set(o, new Set(o.subscribers as SlotOwner[]));
      if (dir.role === 'port' || dir.role === 'filter') {
        const slot = dir.slot!;
        slots.push(slot);
        const links = [...dir.children.values()].filter((c) => c.kind === 'link');
        const filters = [...dir.children.values()].filter((c) => c.kind === 'dir' && c.role === 'filter') as DirNode[];
        if (links.length + filters.length > 1) problems.push(`${pathOf(dir)} has ${links.length + filters.length} sources`);
        if (slot.source === null && links.length + filters.length > 0) problems.push(`${pathOf(dir)} has a source entry but no source`);
        if (slot.source?.kind === 'link' && (links.length !== 1 || links[0]!.name !== slot.source.linkName))
          problems.push(`${pathOf(dir)}: link entry does not match its source`);
        if (slot.source?.kind === 'filter') {
          if (filters.length !== 1 || filters[0]!.slot !== slot.source.filter)
            problems.push(`${pathOf(dir)}: filter entry does not match its source`);
          const subs = slot.source.filter.output.subscribers;
          if (subs.length !== 1 || subs[0] !== slot)
            problems.push(`${pathOf(dir)}: its filter publishes to ${subs.length} subscribers instead of the slot`);
          if (slot.source.filter.valueType !== slot.valueType) problems.push(`${pathOf(dir)}: filter value type differs from the slot's`);
        }
        if (slot.source?.kind === 'link' && slot.source.output.value.type !== slot.valueType)
          problems.push(`${pathOf(dir)}: linked value type differs`);
      }
      if (dir.role === 'scheduler') {
        const policies = [...dir.children.values()].filter((c) => c.kind === 'dir' && c.role === 'policy');
        if (policies.length > 1) problems.push(`${pathOf(dir)} has ${policies.length} policies`);
        if ((policies.length === 1) !== (dir.scheduler!.policy !== null))
          problems.push(`${pathOf(dir)}: policy entry and instance disagree`);
      }
    };
    visit(this.root, 0);
    for (const slot of slots) {
      if (slot.source?.kind === 'link' && !outputs.get(slot.source.output)?.has(slot))
        problems.push(`a link source does not list its subscriber`);
    }
    for (const [output, subs] of outputs) {
      for (const sub of subs)
        if (!slots.includes(sub) || (sub.source?.kind === 'link' && sub.source.output !== output))
          problems.push('a probe source publishes to a removed or foreign subscriber');
    }
    return problems;
  }

  // ---- creation -----------------------------------------------------------------------------

  private async createProbe(parent: DirNode, name: string, seq: number): Promise<void> {
    const type = await this.loadType(name, 'probe', pathOf(parent));
    if (parent.children.has(name)) throw fail('EEXIST', `/probes/${name} already exists`);
    const ctx = this.context(`/probes/${name}`, type);
    const instance = new ProbeInstance(
      type,
      type.create(ctx),
      ctx,
      type.sources.map((s) => this.registry.valueType(s.valueType)),
      this.timers,
    );
    const dir = this.dir(name, parent, 'probe', { userMade: true, seq });
    dir.probe = instance;
    this.file(dir, 'description', () => `${type.description}\n`);
    this.file(dir, 'probe_period', () => `${instance.periodMs}\n`, {
      config: true,
      check: parseProbePeriod,
      write: (text) => {
        const value = parseProbePeriod(text);
        instance.setPeriod(value);
      },
    });
    this.attributeFiles(dir, type.attributes ?? [], ctx, () => undefined);
    type.sources.forEach((source, index) => {
      const sdir = this.dir(source.name, dir, 'source');
      sdir.probe = instance;
      sdir.sourceIndex = index;
      this.file(sdir, 'value', () => {
        if (instance.periodMs === 0) instance.refresh(this.timers.now());
        return instance.outputs[index]!.value.format();
      });
      this.file(sdir, 'type', () => `${source.valueType}\n`);
      this.file(sdir, 'description', () => `${source.description}\n`);
    });
    instance.start();
    instance.refresh(this.timers.now());
  }

  private createScheduler(parent: DirNode, name: string, seq: number): void {
    const problem = nameProblem(name);
    if (problem) throw fail('EINVAL', `scheduler name ${JSON.stringify(name)} ${problem}`);
    const scheduler = new SchedulerInstance(name, seq);
    const dir = this.dir(name, parent, 'scheduler', { userMade: true, seq });
    dir.scheduler = scheduler;
    const ps = this.dir('process_set', dir, 'process_set');
    this.file(ps, 'handle_all', () => `${scheduler.processSet.handleAll ? 1 : 0}\n`, {
      config: true,
      check: parseHandleAll,
      write: (text) => {
        const on = parseHandleAll(text);
        if (on && !scheduler.processSet.handleAll) scheduler.processSet.handleAllSeq = ++this.seq;
        scheduler.processSet.handleAll = on;
      },
    });
    this.file(ps, 'pids', () => this.processSetView(scheduler.processSet).pids().join('\n') + (scheduler.processSet.isEmpty() ? '' : '\n'));
    for (const list of ['single_processes', 'process_sessions', 'slices'] as const) {
      const l = this.dir(list, ps, 'pset_list');
      l.list = list;
    }
  }

  private async createPolicy(parent: DirNode, name: string, seq: number): Promise<void> {
    if (name === 'process_set') throw fail('EEXIST', `${pathOf(parent)}/process_set already exists`);
    const type = await this.loadType(name, 'policy', pathOf(parent));
    const scheduler = parent.scheduler!;
    if (scheduler.policy) {
      throw fail(
        'EBUSY',
        `scheduler ${scheduler.name} already has policy ${scheduler.policy.type.name}; a scheduler holds one policy (remove it to replace it)`,
      );
    }
    if (parent.children.has(name)) throw fail('EEXIST', `${pathOf(parent)}/${name} already exists`);
    const path = `${pathOf(parent)}/${name}`;
    const ports: Record<string, import('./value.js').Value | null> = {};
    const ctx: ComponentContext = { ...this.context(path, type), processSet: this.processSetView(scheduler.processSet), ports };
    const policy = new PolicyInstance(type, ctx, scheduler, this.services.log);
    policy.ports = type.ports.map((p, i) => new PortInstance(policy, i, p.name, this.registry.valueType(p.valueType)));
    // Ports expose what they collected by reference; the policy reads them through ctx.ports.
    for (const port of policy.ports) Object.defineProperty(ports, port.name, { get: () => port.collected, enumerable: true });
    policy.behaviour = type.create(ctx);
    scheduler.policy = policy;
    const dir = this.dir(name, parent, 'policy', { userMade: true, seq });
    dir.policy = policy;
    this.file(dir, 'description', () => `${type.description}\n`);
    this.file(
      dir,
      'status',
      () =>
        `${JSON.stringify({ activations: policy.activations, failures: policy.failures, ...(policy.behaviour.status?.() ?? {}) }, null, 2)}\n`,
    );
    this.attributeFiles(dir, type.attributes ?? [], ctx, () => policy.behaviour.configure?.());
    policy.ports.forEach((port, i) => {
      const pdir = this.dir(port.name, dir, 'port');
      pdir.slot = port;
      this.file(pdir, 'collected_value', () => port.collected?.format() ?? '');
      this.file(pdir, 'type', () => `${port.valueType.name}\n`);
      this.file(pdir, 'description', () => `${type.ports[i]!.description}\n`);
    });
  }

  private async createFilter(parent: DirNode, name: string, seq: number): Promise<void> {
    const type = await this.loadType(name, 'filter', pathOf(parent));
    const slot = parent.slot!;
    if (slot.source) throw fail('EPERM', `${pathOf(parent)} already has a source (${describeSource(slot)}); remove it first`);
    if (parent.children.has(name)) throw fail('EEXIST', `${pathOf(parent)}/${name} already exists`);
    if (depthOf(parent) >= MAX_DEPTH) throw fail('EINVAL', `${pathOf(parent)}/${name} would nest filters deeper than ${MAX_DEPTH} levels`);
    if (type.accepts && !type.accepts.includes(slot.valueType.name)) {
      throw fail(
        'EINVAL',
        `filter ${name} accepts values of type ${type.accepts.join(' or ')}, but ${pathOf(parent)} carries ${slot.valueType.name}`,
      );
    }
    const path = `${pathOf(parent)}/${name}`;
    const ctx: ComponentContext = { ...this.context(path, type), valueType: slot.valueType };
    const filter = new FilterInstance(type, type.create(ctx), ctx, slot.valueType);
    const dir = this.dir(name, parent, 'filter', { userMade: true, seq });
    dir.slot = filter;
    this.file(dir, 'description', () => `${type.description}\n`);
    this.file(dir, 'value', () => filter.output.value.format());
    this.file(dir, 'collected_value', () => filter.collected?.format() ?? '');
    this.attributeFiles(dir, type.attributes ?? [], ctx, () => filter.behaviour.configure?.());
    slot.source = { kind: 'filter', filter };
    filter.output.subscribe(slot);
  }

  private createMember(parent: DirNode, name: string, seq: number, allowVanished: boolean): void {
    const set = parent.parent!.parent!.scheduler!.processSet;
    const list = parent.list!;
    this.checkMember(list, name, allowVanished);
    if (list === 'slices') set.slices.set(name, { seq });
    else if (list === 'single_processes') set.singles.set(Number(name), { seq });
    else set.sessions.set(Number(name), { seq });
    this.dir(name, parent, 'pset_member', { userMade: true, seq });
  }

  private removeMember(node: DirNode): void {
    const list = node.parent!.list!;
    const set = node.parent!.parent!.parent!.scheduler!.processSet;
    if (list === 'slices') set.slices.delete(node.name);
    else if (list === 'single_processes') set.singles.delete(Number(node.name));
    else set.sessions.delete(Number(node.name));
  }

  private processSetView(set: ProcessSet): ProcessSetView {
    return {
      get handleAll() {
        return set.handleAll;
      },
      pids: () => {
        const processes = this.processes;
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

  private async loadType<K extends ComponentType['kind']>(
    name: string,
    kind: K,
    where: string,
  ): Promise<Extract<ComponentType, { kind: K }>> {
    if (!TYPE_NAME.test(name)) {
      throw fail(
        'ENOENT',
        `${where}/${name}: ${JSON.stringify(name)} is not a ${kind} type (type names are lower-case letters, digits and "_")`,
      );
    }
    const type = await this.registry.load(name);
    if (type.kind !== kind) throw fail('EINVAL', `${name} is a ${type.kind}, not a ${kind}; it cannot be created under ${where}`);
    return type as Extract<ComponentType, { kind: K }>;
  }

  private context(path: string, type: ComponentType): ComponentContext {
    const attrs: Record<string, AttributeValue> = {};
    for (const spec of type.attributes ?? []) attrs[spec.name] = spec.default;
    return { path, attrs, log: this.services.log, services: this.services };
  }

  private attributeFiles(dir: DirNode, specs: readonly AttributeSpec[], ctx: ComponentContext, changed: () => void): void {
    for (const spec of specs) {
      if (RESERVED_ENTRIES.has(spec.name)) continue;
      this.file(dir, spec.name, () => `${ctx.attrs[spec.name]}\n`, {
        config: true,
        check: (text) => parseAttribute(pathOf(dir), spec, text),
        write: (text) => {
          const value = parseAttribute(pathOf(dir), spec, text);
          const previous = ctx.attrs[spec.name]!;
          ctx.attrs[spec.name] = value;
          try {
            changed();
          } catch (err) {
            ctx.attrs[spec.name] = previous;
            throw fail('EINVAL', `${pathOf(dir)}/${spec.name}: ${(err as Error).message}`);
          }
        },
      });
    }
  }

  // ---- nodes --------------------------------------------------------------------------------

  private dir(name: string, parent: DirNode | null, role: Role, options: { userMade?: boolean; seq?: number } = {}): DirNode {
    const node: DirNode = {
      kind: 'dir',
      name,
      parent,
      role,
      children: new Map(),
      userMade: options.userMade ?? false,
      seq: options.seq ?? 0,
    };
    parent?.children.set(name, node);
    return node;
  }

  private file(
    parent: DirNode,
    name: string,
    read: () => string,
    options: { write?: (text: string) => void; check?: (text: string) => void; config?: boolean } = {},
  ): FileNode {
    const node: FileNode = {
      kind: 'file',
      name,
      parent,
      read,
      config: options.config ?? false,
      ...(options.write ? { write: options.write } : {}),
      ...(options.check ? { check: options.check } : {}),
    };
    parent.children.set(name, node);
    return node;
  }

  private parentOf(path: string): { parent: DirNode; name: string } {
    const parts = splitPath(path);
    if (parts.length === 0) throw fail('EEXIST', '/ already exists');
    const name = parts[parts.length - 1]!;
    const parent = this.walk(parts.slice(0, -1), true, 0);
    if (parent.kind !== 'dir') throw fail('ENOTDIR', `${'/' + parts.slice(0, -1).join('/')} is not a directory`);
    return { parent, name };
  }

  private walk(parts: string[], followLast: boolean, hops: number): TreeNode {
    let node: TreeNode = this.root;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (node.kind !== 'dir') throw fail('ENOTDIR', `/${parts.slice(0, i).join('/')} is not a directory`);
      let next: TreeNode | undefined = node.children.get(part);
      if (!next && node.role === 'info') next = this.infoItem(node, part);
      if (!next) throw fail('ENOENT', `/${parts.slice(0, i + 1).join('/')} does not exist`);
      if (next.kind === 'link' && (i < parts.length - 1 || followLast)) {
        if (hops > 8) throw fail('ELOOP', `too many links resolving /${parts.join('/')}`);
        next = this.walk(splitPath(next.target), true, hops + 1);
      }
      node = next;
    }
    return node;
  }

  private infoItem(dir: DirNode, name: string): DirNode | undefined {
    const files = this.providers.get(dir.name)?.files(name);
    if (!files) return undefined;
    // Built on each lookup: the view is live and never stored.
    const item: DirNode = { kind: 'dir', name, parent: dir, role: 'info_item', children: new Map(), userMade: false, seq: 0 };
    for (const [file, read] of Object.entries(files)) this.file(item, file, read);
    return item;
  }

  private describePlace(dir: DirNode): string {
    return `${pathOf(dir) || '/'} (${dir.role.replace('_', ' ')})`;
  }

  private emit(mutation: Mutation): void {
    for (const listener of this.listeners) listener(mutation);
  }
}

// ---- helpers ----------------------------------------------------------------------------------

export function fail(code: ErrorCode, message: string): SlicedError {
  return new SlicedError(code, message);
}

export function pathOf(node: TreeNode): string {
  const parts: string[] = [];
  let n: TreeNode | null = node;
  while (n && n.parent) {
    parts.push(n.name);
    n = n.parent;
  }
  return parts.length === 0 ? '' : `/${parts.reverse().join('/')}`;
}

function depthOf(node: DirNode): number {
  let depth = 0;
  for (let n: DirNode | null = node; n; n = n.parent) depth++;
  return depth;
}

/** Split and validate a tree path: absolute, no "." or ".." components, no NUL, bounded. */
export function splitPath(path: string): string[] {
  if (typeof path !== 'string') throw fail('EINVAL', 'a path must be a string');
  if (path.includes('\0')) throw fail('EINVAL', `path ${JSON.stringify(path)} must not contain NUL`);
  if (!path.startsWith('/')) throw fail('EINVAL', `path ${JSON.stringify(path)} must be absolute (start with "/")`);
  if (path.length > 4096) throw fail('EINVAL', `path is ${path.length} characters long; at most 4096 are allowed`);
  const parts = path.split('/').filter((p) => p !== '');
  for (const part of parts) {
    if (part === '.' || part === '..') throw fail('EINVAL', `path ${JSON.stringify(path)} must not contain "." or ".." components`);
    if (part.length > 255) throw fail('EINVAL', `path component is ${part.length} characters long; at most 255 are allowed`);
  }
  if (parts.length > MAX_DEPTH * 2)
    throw fail('EINVAL', `path ${JSON.stringify(path.slice(0, 80))}... is deeper than ${MAX_DEPTH * 2} components`);
  return parts;
}

function canMkdirIn(role: Role): boolean {
  return ['probes', 'schedulers', 'scheduler', 'port', 'filter', 'pset_list'].includes(role);
}

function describeSource(slot: SlotOwner): string {
  if (!slot.source) return 'none';
  return slot.source.kind === 'link' ? `link ${slot.source.linkName} -> ${slot.source.target}` : `filter ${slot.source.filter.type.name}`;
}

/** A probe's probe_period, as its write checks it. */
export function parseProbePeriod(text: string): number {
  return parseNumber(text, 'probe_period', 0, 3_600_000, 'a whole number of milliseconds from 0 (refresh only when read) to 3600000');
}

/** A scheduler's process_set/handle_all, as its write checks it. */
export function parseHandleAll(text: string): boolean {
  return parseNumber(text, 'handle_all', 0, 1, '0 or 1') === 1;
}

/** A component attribute's value, parsed by its type; EINVAL naming the attribute when refused. */
export function parseAttribute(dirPath: string, spec: AttributeSpec, text: string): AttributeValue {
  try {
    return spec.parse(text);
  } catch (err) {
    throw fail('EINVAL', `${dirPath}/${spec.name}: ${(err as Error).message}`);
  }
}

function parseNumber(text: string, name: string, min: number, max: number, allowed: string): number {
  const trimmed = text.trim();
  const value = /^-?\d+$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isInteger(value) || value < min || value > max)
    throw fail('EINVAL', `${name} ${JSON.stringify(trimmed)} is not allowed: must be ${allowed}`);
  return value;
}
