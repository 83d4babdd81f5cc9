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
import { nameProblem } from '../core/names.js';
import type { Entry } from '../wire/tree.js';
import { realTimers, type Timers } from './instances.js';
import type { TypeRegistry } from './registry.js';
import type { AttributeValue, ComponentContext, ComponentType, FrameworkServices, NewTask } from './types.js';
import type { InfoProvider, ProcessDirectory, TreeHost } from './tree/host.js';
import { checkInvariants } from './tree/invariants.js';
import { fail, pathOf, type DirNode, type PsetList, type TreeNode } from './tree/nodes.js';
import { parentOf, resolve, splitPath, type VirtualChild } from './tree/path.js';
import { checkMember, memberAlive } from './tree/process-set.js';
import { canMkdirIn, childRole, roleOf } from './tree/roles.js';
import { makeRoot, type SchedulersNode } from './tree/root.js';
import { addPrecedenceFile, placeNewTask, placeNewTaskWith, type Placement } from './tree/scheduler.js';
import { linkSource, unlinkSource } from './tree/slot.js';

// The nodes, paths and parsers live by role under ./tree/; this module is the tree's face.
export type { DirNode, FileNode, LinkNode, PsetList, Role, TreeNode } from './tree/nodes.js';
export type { InfoProvider, ProcessDirectory } from './tree/host.js';
export { fail, pathOf } from './tree/nodes.js';
export { MAX_DEPTH, splitPath } from './tree/path.js';
export { parseAttribute } from './tree/component.js';
export { parseProbePeriod } from './tree/probe.js';
export { parseHandleAll } from './tree/process-set.js';

export type Mutation =
  | { op: 'mkdir'; path: string; seq: number }
  | { op: 'rmdir'; path: string }
  | { op: 'write'; path: string; value: string; seq: number }
  | { op: 'ln'; path: string; target: string; seq: number }
  | { op: 'rm'; path: string };

export interface TreeOptions {
  registry: TypeRegistry;
  services: FrameworkServices;
  timers?: Timers;
  processes?: ProcessDirectory;
}

export class ConfigTree {
  readonly root: DirNode;
  private readonly registry: TypeRegistry;
  private readonly services: FrameworkServices;
  private readonly timers: Timers;
  private processes: ProcessDirectory | null;
  private readonly providers = new Map<string, InfoProvider>();
  private readonly listeners: Array<(m: Mutation) => void> = [];
  private seq = 0;
  /** What the role modules get from the tree. */
  private readonly host: TreeHost;
  private readonly schedulers: SchedulersNode;
  /** Items of read-only views, made on lookup. */
  private readonly virtual: VirtualChild;

  constructor(options: TreeOptions) {
    this.registry = options.registry;
    this.services = options.services;
    this.timers = options.timers ?? realTimers;
    this.processes = options.processes ?? null;
    this.host = {
      registry: this.registry,
      services: this.services,
      timers: this.timers,
      processes: () => this.processes,
      provider: (name) => this.providers.get(name),
      nextSeq: () => ++this.seq,
      context: (path, type) => this.context(path, type),
    };
    this.virtual = (dir, name) => roleOf(dir).virtualChild?.(this.host, dir, name);
    ({ root: this.root, schedulers: this.schedulers } = makeRoot());
    addPrecedenceFile(this.schedulers);
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
    const { parent, name } = parentOf(this.root, path, this.virtual);
    if (parent.children.has(name)) throw fail('EEXIST', `${path} already exists`);
    const seq = options.seq ?? this.seq + 1;
    const role = childRole(parent);
    if (!role?.create) {
      throw fail(
        'EPERM',
        `cannot create ${path}: ${pathOf(parent) || '/'} (${parent.role.replace('_', ' ')}) does not hold directories made with mkdir`,
      );
    }
    await role.create(this.host, parent, name, { seq, allowVanished: options.allowVanished ?? false });
    this.seq = Math.max(this.seq, seq);
    const made = parent.children.get(name);
    if (made) this.emit({ op: 'mkdir', path: pathOf(made), seq });
  }

  rmdir(path: string): void {
    const node = this.lookup(path, false);
    if (node.kind !== 'dir') throw fail('ENOTDIR', `${path} is not a directory`);
    if (!node.userMade) {
      throw fail('EPERM', `${path} is ${node.parent ? `part of ${pathOf(node.parent) || '/'}` : 'the root'} and goes away only with it`);
    }
    const role = roleOf(node);
    if (!role.remove) throw fail('EPERM', `${path} cannot be removed`);
    role.remove(node, path);
    node.parent?.children.delete(node.name);
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
    const { parent, name } = parentOf(this.root, path, this.virtual);
    if (parent.children.has(name)) throw fail('EEXIST', `${path} already exists`);
    if (!parent.slot) {
      throw fail('EPERM', `cannot link into ${pathOf(parent) || '/'}: only ports and filters take a link to a probe source`);
    }
    const badName = nameProblem(name);
    if (badName) throw fail('EINVAL', `link name ${JSON.stringify(name)} ${badName}`);
    const source = this.lookup(target, true);
    if (source.kind !== 'dir' || source.role !== 'source') {
      throw fail('EINVAL', `${target} is not a probe source: links must point to /probes/<probe>/<source>`);
    }
    const seq = options.seq ?? this.seq + 1;
    const link = linkSource(this.host, parent, name, source, seq);
    this.seq = Math.max(this.seq, seq);
    this.emit({ op: 'ln', path: `${pathOf(parent)}/${name}`, target: link.target, seq });
  }

  unlink(path: string): void {
    const node = this.lookup(path, false);
    if (node.kind === 'dir') throw fail('EISDIR', `${path} is a directory; use rmdir`);
    if (node.kind === 'file') throw fail('EPERM', `${path} is an attribute and cannot be removed`);
    unlinkSource(node);
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
    const names = roleOf(node).names?.(this.host, node);
    if (names) return names.map((name) => ({ name, kind: 'dir' as const, writable: false }));
    return [...node.children.values()].map((child) => entryOf(child));
  }

  stat(path: string): Entry {
    return entryOf(this.lookup(path, false));
  }

  /** Resolve a path; `follow` follows a link in the last component too. */
  lookup(path: string, follow: boolean): TreeNode {
    return resolve(this.root, splitPath(path), follow, this.virtual);
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
    return memberAlive(this.processes, list, name);
  }

  /** The checks mkdir of a process-set member makes: a valid name and, unless `allowVanished`, something that exists. */
  checkMember(list: PsetList, name: string, allowVanished = false): void {
    checkMember(this.processes, list, name, allowVanished);
  }

  /**
   * Ask schedulers where a new task should run: those with handle_all first, then those
   * holding the parent (by pid, session or slice), each group in reverse attach order; the
   * first scheduler whose policy gives an answer wins.
   */
  placeNewTask(task: NewTask): Placement {
    return placeNewTask(this.schedulers, task);
  }

  /** Ask the scheduler `name` alone where a new task should run. */
  placeNewTaskWith(name: string, task: NewTask): Placement {
    return placeNewTaskWith(this.schedulers, name, task);
  }

  /** Every live component, for shutdown. */
  destroyAll(): void {
    const visit = (dir: DirNode): void => {
      for (const child of dir.children.values()) if (child.kind === 'dir') visit(child);
      roleOf(dir).destroy?.(dir);
    };
    visit(this.root);
  }

  /** Check the tree's internal consistency; returns the problems found (empty when sound). */
  checkInvariants(): string[] {
    return checkInvariants(this.root);
  }

  private context(path: string, type: ComponentType): ComponentContext {
    const attrs: Record<string, AttributeValue> = {};
    for (const spec of type.attributes ?? []) attrs[spec.name] = spec.default;
    return { path, attrs, log: this.services.log, services: this.services };
  }

  private emit(mutation: Mutation): void {
    for (const listener of this.listeners) listener(mutation);
  }
}

function entryOf(node: TreeNode): Entry {
  return {
    name: node.name,
    kind: node.kind,
    writable: node.kind === 'file' ? node.write !== undefined : node.kind === 'dir' ? canMkdirIn(node) : true,
  };
}
