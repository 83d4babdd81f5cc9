/**
 * The node agent: owns the desired state, keeps it durable in the store and makes the
 * kernel match it. Every change is validated and admitted as a whole (src/core), made
 * durable, then applied; if the kernel refuses, the change is rolled back in both places.
 * Changes are serialised, so the kernel never sees two half-done changes at once.
 */
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store, StoreOp } from '../cluster/store.js';
import type { CgroupBackend, GroupPath } from '../kernel/cgroup/backend.js';
import { groupKey } from '../kernel/cgroup/backend.js';
import { createUser, deleteUser, lookupUser, type UnixUser } from '../kernel/users.js';
import { realtimePolicyOf, resetRealtimeThreads, signalAll, threadsOf } from '../kernel/processes.js';
import { isKernelThread, processAlive, processExists } from '../kernel/procfs.js';
import type { ExecPlan } from '../wire/exec.js';
import type { NodeCapacity } from '../core/admission.js';
import * as changes from '../core/changes.js';
import {
  emptyState,
  withAllocationDefaults,
  type DesiredState,
  type DomainCreateInput,
  type DomainSpec,
  type IoDeviceLimit,
  type MemoryAllocation,
  type SliceCreateInput,
  type SliceSpec,
  type SliceUpdateInput,
} from '../core/model.js';
import { effectiveIoCaps, resolveIoInput } from '../core/io.js';
import { blockDeviceExists, resolveBlockDevice } from '../kernel/block-devices.js';
import {
  affectedIds,
  domainGroup,
  domainKey,
  parseGroupName,
  parseKey,
  sliceGroup,
  sliceKey,
  sliceUserName,
  type GroupKind,
} from '../core/layout.js';
import { SlicedError } from '../core/errors.js';
import { effectiveDomainLimit, effectiveSliceLimit } from '../core/limits.js';
import { effectivePidsMax } from '../core/task-limits.js';
import { reservationKey, type Reservation } from '../core/net.js';
import type { SliceNetworks } from './net.js';

const SLICE_PREFIX = '/slices/';
const DOMAIN_PREFIX = '/domains/';
const RESERVATION_PREFIX = '/net/reservations/';
/** How often a failed store is tried again (see resyncStore()). */
const STORE_RETRY_MS = 2000;

export interface AgentOptions {
  store: Store;
  backend: CgroupBackend;
  node: NodeCapacity;
  log: Logger;
  /** Grace between SIGTERM and SIGKILL when a slice is deleted. */
  stopGraceMs: number;
  /** cpu weight of sliced's root group against the system's own tasks. */
  rootWeight: number;
  attachAnyMemoryCgroup: boolean;
  /** Device lookup for io.max (path or MAJ:MIN to MAJ:MIN); the kernel's by default, a fake in fixture tests. */
  resolveDevice?: (name: string) => { device: string; path: string | null };
  deviceExists?: (device: string) => boolean;
  /** Slice networking, or null when the node has none configured. */
  net: SliceNetworks | null;
}

type GroupMap = Map<string, GroupPath>; // "slice/x" | "domain/x" -> path

export class SliceAgent {
  private current: DesiredState = emptyState();
  private readonly opts: AgentOptions;
  private readonly log: Logger;
  private chain: Promise<unknown> = Promise.resolve();
  /** The store write of the last change (see serialise()). */
  private durable: Promise<void> = Promise.resolve();
  /** Set when the store failed to make a change durable; cleared by resyncStore(). */
  private storeFailure: Error | null = null;
  /** Tries resyncStore() while storeFailure is set, so the store catches up without a change. */
  private storeRetry: NodeJS.Timeout | null = null;
  private readonly users = new Map<string, UnixUser>();
  /** Last limits written per group key, so unchanged values are not rewritten. */
  private readonly written = new Map<string, { cpu: number | null; rest: string }>();
  /** Whether sliced's groups had BFQ's weight files at the last look (refreshIoWeights). */
  private bfqWeightFiles = false;
  private readonly resolveDevice: (name: string) => { device: string; path: string | null };
  private readonly deviceExists: (device: string) => boolean;
  private readonly listeners: Array<() => void> = [];
  /** When each group was (re)created, so cached kernel values of an older group are not trusted. */
  private readonly groupEpochs = new Map<string, number>();
  private epochCounter = 0;

  constructor(options: AgentOptions) {
    this.opts = options;
    this.log = options.log;
    this.resolveDevice = options.resolveDevice ?? resolveBlockDevice;
    this.deviceExists = options.deviceExists ?? blockDeviceExists;
  }

  /** The desired state as applied to the kernel (read by the controller and views). */
  get state(): DesiredState {
    return this.current;
  }

  /** Creation stamp of a group: it changes when the group is removed and made again (new default values). */
  groupEpoch(key: string): number {
    return this.groupEpochs.get(key) ?? 0;
  }

  /** Call `listener` after every change that was applied (for views and socket management). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private notify(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'change listener failed');
      }
    }
  }

  get node(): NodeCapacity {
    return this.opts.node;
  }

  get backend(): CgroupBackend {
    return this.opts.backend;
  }

  get net(): SliceNetworks | null {
    return this.opts.net;
  }

  /** Load the desired state, adopt what the kernel already has, and reconcile the rest. */
  async start(): Promise<void> {
    const loaded = await this.load();
    this.opts.backend.init(this.opts.rootWeight);
    const pidsUnavailable = this.opts.backend.pidsUnavailable();
    if (pidsUnavailable) this.log.warn({ reason: pidsUnavailable }, 'slices have no task (pids) limit');
    const existing = this.scanGroups();
    // Groups made by an older version lack hierarchies added since (pids): complete them.
    for (const path of [...existing.values()].sort((a, b) => a.length - b.length)) this.opts.backend.create(path);
    let adopted = 0;
    for (const id of existing.keys()) if (parseKey(id)?.kind === 'slice') adopted++;
    for (const slice of [...loaded.slices.values()]) this.ensureUser(slice);
    await this.syncGroups(existing, loaded);
    this.bfqWeightFiles = this.opts.backend.ioWeightUnavailable() === null;
    await this.opts.net?.start(loaded);
    this.log.info({ slices: loaded.slices.size, domains: loaded.domains.size, adoptedGroups: adopted }, 'state loaded and reconciled');
  }

  /** Read the desired state from the store without touching the kernel. */
  async load(): Promise<DesiredState> {
    const loaded = emptyState();
    for (const value of (await this.opts.store.range(SLICE_PREFIX)).values()) {
      const spec = withAllocationDefaults(JSON.parse(value) as SliceSpec);
      loaded.slices.set(spec.name, { ...spec, net: spec.net ?? null }); // state written before networking had no net
    }
    for (const value of (await this.opts.store.range(DOMAIN_PREFIX)).values()) {
      const spec = withAllocationDefaults(JSON.parse(value) as DomainSpec);
      loaded.domains.set(spec.name, spec);
    }
    for (const value of (await this.opts.store.range(RESERVATION_PREFIX)).values()) {
      const r = JSON.parse(value) as Reservation;
      loaded.reservations.set(reservationKey(r), r);
    }
    this.current = loaded;
    return loaded;
  }

  /** Remove every kernel object sliced made (groups, created users); the desired state stays. */
  async teardown(): Promise<void> {
    await this.serialise(async () => {
      // Groups and users go even when the network part fails; its error is reported after.
      const netFailure = await this.opts.net?.teardown(this.current).then(
        () => null,
        (err: Error) => err,
      );
      const existing = this.scanGroups();
      await this.syncGroups(existing, emptyState());
      for (const slice of [...this.current.slices.values()]) {
        if (slice.userCreated && lookupUser(slice.user)) {
          deleteUser(slice.user);
          this.log.info({ slice: slice.name, user: slice.user }, 'user removed');
        }
      }
      this.opts.backend.remove([]);
      if (netFailure) throw netFailure;
    }, false);
  }

  // ---- changes -------------------------------------------------------------------------

  createSlice(input: SliceCreateInput): Promise<SliceSpec> {
    return this.serialise(async () => {
      const before = this.current;
      changes.assertNameFree(before, input.name);
      let user: string;
      let userCreated: boolean;
      if (input.user !== undefined) {
        const found = lookupUser(input.user);
        if (!found) throw new SlicedError('ENOENT', `user ${input.user} does not exist; omit the user to have sliced create one`);
        if (found.uid === 0) throw new SlicedError('EPERM', `user ${input.user} has uid 0; a slice's user must be unprivileged`);
        this.users.set(found.name, found);
        user = input.user;
        userCreated = false;
      } else {
        user = sliceUserName(input.name);
        userCreated = true;
        const holder = [...before.slices.values()].find((s) => s.user === user);
        if (holder) throw new SlicedError('EEXIST', `user ${user} is already used by slice ${holder.name}`);
      }
      const next = changes.createSlice(before, { ...input, io: this.resolveIo(input.io), user, userCreated }, this.opts.node);
      const spec = next.slices.get(input.name)!;
      await this.commit(
        before,
        next,
        async () => {
          this.ensureUser(spec);
          await this.applyChange(before, next);
        },
        () => {
          if (userCreated && this.users.has(user)) {
            deleteUser(user);
            this.users.delete(user);
          }
        },
        // A user made for the slice is stored first: a crash right after useradd must not
        // leave a user that no stored slice would ever remove.
        userCreated,
      );
      this.log.info(
        { slice: spec.name, user, cpu: spec.cpu, memory: spec.memory, io: spec.io, pids: spec.pids, domain: spec.domain },
        'slice created',
      );
      return spec;
    });
  }

  updateSlice(name: string, input: SliceUpdateInput): Promise<SliceSpec> {
    return this.serialise(async () => {
      const before = this.current;
      const next = changes.updateSlice(before, name, { ...input, io: this.resolveIo(input.io) }, this.opts.node);
      await this.commit(before, next, () => this.applyChange(before, next));
      const spec = next.slices.get(name)!;
      this.log.info({ slice: name, cpu: spec.cpu, memory: spec.memory, io: spec.io, pids: spec.pids }, 'slice updated');
      return spec;
    });
  }

  deleteSlice(name: string): Promise<void> {
    return this.serialise(async () => {
      const before = this.current;
      const spec = changes.getSlice(before, name);
      const next = changes.deleteSlice(before, name);
      // Kernel first: if the daemon dies half-way, the slice is still in the store and the
      // next start finishes the job from there instead of leaking a user or a group.
      await this.applyChange(before, next);
      if (spec.userCreated) {
        deleteUser(spec.user);
        this.users.delete(spec.user);
      }
      this.persistBehind(before, next);
      this.current = next;
      this.notify();
      this.log.info({ slice: name }, 'slice deleted');
    });
  }

  createDomain(input: DomainCreateInput): Promise<DomainSpec> {
    return this.serialise(async () => {
      const before = this.current;
      const next = changes.createDomain(before, { ...input, io: this.resolveIo(input.io) }, this.opts.node);
      await this.commit(before, next, () => this.applyChange(before, next));
      this.log.info({ domain: input.name, cpu: next.domains.get(input.name)!.cpu }, 'domain created');
      return next.domains.get(input.name)!;
    });
  }

  updateDomain(name: string, input: SliceUpdateInput): Promise<DomainSpec> {
    return this.serialise(async () => {
      const before = this.current;
      const next = changes.updateDomain(before, name, { ...input, io: this.resolveIo(input.io) }, this.opts.node);
      await this.commit(before, next, () => this.applyChange(before, next));
      this.log.info({ domain: name, cpu: next.domains.get(name)!.cpu }, 'domain updated');
      return next.domains.get(name)!;
    });
  }

  deleteDomain(name: string): Promise<void> {
    return this.serialise(async () => {
      const before = this.current;
      const next = changes.deleteDomain(before, name);
      await this.commit(before, next, () => this.applyChange(before, next));
      this.log.info({ domain: name }, 'domain deleted');
    });
  }

  /** Move a slice or domain into `domain`, or to the node level when null; processes follow. */
  moveMember(member: string, domain: string | null): Promise<void> {
    return this.serialise(async () => {
      const before = this.current;
      const next = changes.moveMember(before, member, domain, this.opts.node);
      await this.commit(before, next, () => this.applyChange(before, next));
      this.log.info({ member, domain }, domain === null ? 'moved to node level' : 'moved into domain');
    });
  }

  /** Devices named in io.max become MAJ:MIN; a missing or non-block device is refused here, before anything changes. */
  private resolveIo(input: SliceUpdateInput['io']): ReturnType<typeof resolveIoInput> {
    return resolveIoInput(input, this.resolveDevice);
  }

  // ---- port reservations -----------------------------------------------------------------

  reserve(input: changes.ReservationInput): Promise<Reservation> {
    return this.serialise(async () => {
      const before = this.current;
      const next = changes.reservePort(before, input, this.opts.node);
      const added = [...next.reservations.values()].find((r) => !before.reservations.has(reservationKey(r)))!;
      await this.commit(before, next, () => this.applyChange(before, next));
      this.log.info({ ...added }, 'port reserved');
      return added;
    });
  }

  release(input: Omit<changes.ReservationInput, 'slice'>): Promise<Reservation> {
    return this.serialise(async () => {
      const before = this.current;
      const { next, released } = changes.releasePort(before, input);
      await this.commit(before, next, () => this.applyChange(before, next));
      this.log.info({ ...released }, 'port released');
      return released;
    });
  }

  /** Run `work` between two changes, with the current state (whose groups all exist then). */
  betweenChanges<T>(work: (state: DesiredState) => Promise<T>): Promise<T> {
    return this.serialise(() => work(this.current), false);
  }

  // ---- processes -----------------------------------------------------------------------

  attach(slice: string, pid: number): Promise<void> {
    return this.serialise(async () => {
      changes.getSlice(this.current, slice);
      if (!Number.isSafeInteger(pid) || pid <= 0) {
        throw new SlicedError('EINVAL', `pid ${JSON.stringify(pid)} must be a positive whole number`);
      }
      if (!processExists(pid)) throw new SlicedError('ENOENT', `process ${pid} does not exist`);
      if (pid === 1) throw new SlicedError('EPERM', 'process 1 (init) cannot be attached to a slice');
      if (pid === process.pid) throw new SlicedError('EPERM', `process ${pid} is sliced itself and cannot be attached to a slice`);
      if (isKernelThread(pid)) throw new SlicedError('EPERM', `process ${pid} is a kernel thread and cannot be attached to a slice`);
      const group = sliceGroup(this.current, slice);
      await this.opts.net?.settle(); // its traffic is counted from the first packet
      const exited = (): SlicedError => new SlicedError('ESRCH', `process ${pid} exited while it was being moved into slice ${slice}`);
      try {
        this.assertMemoryMoveAllowed(pid, group);
        // Slices may not hold real-time policies (the kernel refuses such tasks in groups
        // without real-time runtime): reset them first, as for a slice's deletion.
        const reset = await resetRealtimeThreads(threadsOf(pid));
        if (reset.length > 0) this.log.warn({ slice, pid, threads: reset }, 'reset real-time threads to SCHED_OTHER');
        this.opts.backend.moveProcess(group, pid);
      } catch (err) {
        if (!processAlive(pid)) throw exited();
        const policy = realtimePolicyOf(pid);
        if (policy !== null) {
          throw new SlicedError(
            'EINVAL',
            `process ${pid} holds real-time policy ${policy === 1 ? 'SCHED_FIFO' : policy === 2 ? 'SCHED_RR' : 'SCHED_DEADLINE'} (set again after sliced reset it); processes in a slice may not hold real-time policies`,
          );
        }
        throw err;
      }
      if (!processAlive(pid)) throw exited();
      this.log.info({ slice, pid }, 'process attached');
    }, false);
  }

  /**
   * What `slicectl exec` needs to start a command in the slice: the user and the files its
   * child writes its pid into. `requester` is the pid of slicectl, whose memory cgroup the
   * child starts in.
   */
  execPlan(slice: string, requester: number): ExecPlan {
    const spec = changes.getSlice(this.current, slice);
    const user = this.users.get(spec.user) ?? lookupUser(spec.user);
    if (!user) throw new SlicedError('ENOENT', `user ${spec.user} of slice ${slice} does not exist any more`);
    const group = sliceGroup(this.current, slice);
    if (Number.isSafeInteger(requester) && requester > 0 && processExists(requester)) {
      this.assertMemoryMoveAllowed(requester, group);
    }
    return {
      slice,
      user: user.name,
      uid: user.uid,
      gid: user.gid,
      home: user.home,
      procsFiles: this.opts.backend.procsFiles(group),
      netns: this.opts.net?.netnsPath(spec) ?? null,
    };
  }

  /**
   * The cgroup.procs files of a slice's groups, for processes the daemon starts on the
   * slice's behalf (vsys scripts). They start in the daemon's own memory group, above the
   * slice's, so joining moves them only within sliced's groups.
   */
  procsFiles(slice: string): string[] {
    return this.opts.backend.procsFiles(sliceGroup(this.current, slice));
  }

  /**
   * Never move a process out of the memory cgroup it is accounted in: sliced's memory
   * groups live beneath the daemon's own, so a process from elsewhere would leave its
   * accounting. Moving between sliced's own groups is fine, and so is moving from the
   * supervisor leaf (the daemon's and its helpers' group beside the root group, inside the
   * same managed group).
   */
  private assertMemoryMoveAllowed(pid: number, group: GroupPath): void {
    if (this.opts.attachAnyMemoryCgroup) return;
    const from = this.opts.backend.processMemoryDirectory(pid);
    if (from === null) throw new SlicedError('ENOENT', `process ${pid} does not exist`);
    const target = this.opts.backend.memoryDirectory(group);
    const ours = this.opts.backend.memoryDirectory([]);
    if (target.startsWith(`${from}/`) || from === ours || from.startsWith(`${ours}/`)) return;
    if (from === this.opts.backend.supervisorDirectory()) return;
    throw new SlicedError(
      'EPERM',
      `process ${pid} is accounted in memory cgroup ${from}, which does not contain sliced's groups (${ours}); ` +
        'moving it would take it out of its memory accounting (set attachAnyMemoryCgroup: true to allow)',
    );
  }

  /**
   * Stop every process of a group: real-time policies are reset before anything else, then
   * SIGTERM, a grace period, and SIGKILL through freeze + kill + thaw.
   */
  private async stopProcesses(group: GroupPath): Promise<void> {
    const backend = this.opts.backend;
    if (!backend.exists(group)) return;
    const reset = await resetRealtimeThreads(backend.threads(group));
    if (reset.length > 0) this.log.warn({ group: groupKey(group), threads: reset }, 'reset real-time threads to SCHED_OTHER');
    const pids = backend.procs(group);
    if (pids.length === 0) return;
    signalAll(pids, 'SIGTERM');
    const deadline = Date.now() + this.opts.stopGraceMs;
    while (Date.now() < deadline && backend.procs(group).length > 0) await sleep(25);
    if (backend.procs(group).length === 0) return;
    await backend.setFrozen(group, true);
    await resetRealtimeThreads(backend.threads(group));
    backend.killAll(group);
    await backend.setFrozen(group, false);
    for (let waited = 0; waited < 5000 && backend.procs(group).length > 0; waited += 25) await sleep(25);
    const left = backend.procs(group);
    if (left.length > 0) {
      throw new SlicedError(
        'EBUSY',
        `processes ${left.join(', ')} in ${groupKey(group)} did not exit after SIGKILL (stuck in the kernel?)`,
      );
    }
  }

  // ---- kernel reconciliation -------------------------------------------------------------

  /** Groups that exist under sliced's root, found by walking the primary hierarchy. */
  private scanGroups(): GroupMap {
    const found: GroupMap = new Map();
    const walk = (path: string[]): void => {
      for (const child of this.opts.backend.children(path)) {
        const parsed = parseGroupName(child);
        if (!parsed) continue; // not ours
        const childPath = [...path, child];
        found.set(`${parsed.kind}/${parsed.name}`, childPath);
        if (parsed.kind === 'domain') walk(childPath);
      }
    };
    walk([]);
    return found;
  }

  /** Groups of `state`, or only of the ids in `only`. */
  private groupsOf(state: DesiredState, only?: ReadonlySet<string>): GroupMap {
    const groups: GroupMap = new Map();
    const want = (id: string): boolean => only === undefined || only.has(id);
    for (const name of [...state.domains.keys()]) if (want(domainKey(name))) groups.set(domainKey(name), domainGroup(state, name));
    for (const name of [...state.slices.keys()]) if (want(sliceKey(name))) groups.set(sliceKey(name), sliceGroup(state, name));
    return groups;
  }

  /** Apply a change to the kernel, touching only the groups it affects. */
  private async applyChange(before: DesiredState, next: DesiredState): Promise<void> {
    const affected = affectedIds(before, next);
    await this.opts.net?.beforeGroups(before, next);
    await this.syncGroups(this.groupsOf(before, affected), next, affected);
    await this.opts.net?.afterGroups(before, next);
  }

  /**
   * Make the kernel's groups match `to`, starting from the groups in `from`: create what is
   * missing top-down, set limits, move the processes of slices whose group moved, then stop
   * and remove what is no longer wanted bottom-up.
   */
  private async syncGroups(from: GroupMap, to: DesiredState, only?: ReadonlySet<string>): Promise<void> {
    const backend = this.opts.backend;
    const wanted = this.groupsOf(to, only);
    const byDepth = (a: GroupPath, b: GroupPath): number => a.length - b.length;
    const existing = new Set([...from.values()].map(groupKey));
    for (const path of [...wanted.values()].filter((p) => !existing.has(groupKey(p))).sort(byDepth)) {
      backend.create(path);
      this.groupEpochs.set(groupKey(path), ++this.epochCounter);
    }
    this.applyLimits(to, only);
    for (const [id, oldPath] of from) {
      const newPath = wanted.get(id);
      if (parseKey(id)?.kind === 'slice' && newPath && groupKey(newPath) !== groupKey(oldPath)) {
        this.migrate(oldPath, newPath);
      }
    }
    const wantedKeys = new Set([...wanted.values()].map(groupKey));
    for (const [id, oldPath] of [...from].sort((a, b) => byDepth(b[1], a[1]))) {
      if (wantedKeys.has(groupKey(oldPath))) continue;
      if (parseKey(id)?.kind === 'slice') await this.stopAndRemove(oldPath);
      else backend.remove(oldPath);
      this.written.delete(groupKey(oldPath));
      this.groupEpochs.delete(groupKey(oldPath));
    }
  }

  /**
   * Stop a slice's processes and remove its groups. A process may join while they stop (a
   * vsys script restarting, an exec racing the deletion): then rmdir says EBUSY, and the
   * newcomers are stopped in turn. Once the groups are gone, joining fails.
   */
  private async stopAndRemove(group: GroupPath): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await this.stopProcesses(group);
      try {
        this.opts.backend.remove(group);
        return;
      } catch (err) {
        if (attempt >= 5 || (err as SlicedError).details?.errno !== 'EBUSY') throw err;
        this.log.warn({ group: groupKey(group), attempt }, 'a process joined the group while it was being removed; stopping it too');
      }
    }
  }

  /** Move every process from one group to another; repeated so that forks during the move follow. */
  private migrate(from: GroupPath, to: GroupPath): void {
    const backend = this.opts.backend;
    if (!backend.exists(from)) return;
    for (let round = 0; round < 20; round++) {
      const pids = backend.procs(from);
      if (pids.length === 0) return;
      for (const pid of pids) {
        try {
          backend.moveProcess(to, pid);
        } catch (err) {
          if (processExists(pid)) throw err; // exited meanwhile is fine
        }
      }
    }
    throw new SlicedError('EBUSY', `processes kept appearing in ${groupKey(from)} while moving them to ${groupKey(to)}`);
  }

  /**
   * Write CPU, memory and I/O settings of every group. A v1 child's quota may not exceed its
   * parent's, so each group gets min(own limit, ancestors' limits), written in two passes:
   * bottom-up (everything that can be written now, lowering children before parents), then
   * top-down for what had to wait for its parent to be raised. On v1 a group's I/O caps
   * depend on its siblings' weights (domain caps are split among members), so every group's
   * caps are recomputed and the changed ones written, affected by the change or not.
   */
  private applyLimits(state: DesiredState, only?: ReadonlySet<string>): void {
    const backend = this.opts.backend;
    type Item = {
      path: GroupPath;
      cpu: number | null;
      memory: MemoryAllocation;
      ioWeight: number;
      io: IoDeviceLimit[];
      pids: number | null;
      rest: string;
    };
    const items: Item[] = [];
    // Only split domain caps make a group's caps depend on other groups; without them a change
    // touches just the groups it names, and the others need not be looked at (O(1) per change).
    const splitsCaps = !backend.hierarchicalIoCaps && [...state.domains.values()].some((d) => d.io.max.length > 0);
    const ioCaps = only === undefined || splitsCaps ? effectiveIoCaps(state, backend.hierarchicalIoCaps) : null;
    const add = (
      id: string,
      path: GroupPath,
      cpu: number | null,
      memory: MemoryAllocation,
      ioWeight: number,
      ownIo: IoDeviceLimit[],
      pids: number | null,
    ): void => {
      const io = ioCaps ? (ioCaps.get(id) ?? []) : ownIo;
      const rest = JSON.stringify([memory, ioWeight, io, pids]);
      if (only !== undefined && !only.has(id) && this.written.get(groupKey(path))?.rest === rest) return;
      items.push({ path, cpu, memory, ioWeight, io, pids, rest });
    };
    const node = this.opts.node;
    // Every group, or only those the change names that still exist.
    const looked = <T>(kind: GroupKind['kind'], specs: ReadonlyMap<string, T>): T[] =>
      ioCaps
        ? [...specs.values()]
        : [...only!].flatMap((id) => {
            const key = parseKey(id);
            const spec = key?.kind === kind ? specs.get(key.name) : undefined;
            return spec ? [spec] : [];
          });
    for (const domain of looked('domain', state.domains)) {
      add(
        domainKey(domain.name),
        domainGroup(state, domain.name),
        effectiveDomainLimit(state, domain.name),
        domain.memory,
        domain.io.weight,
        domain.io.max,
        effectivePidsMax(domain.pids, node),
      );
    }
    for (const slice of looked('slice', state.slices)) {
      add(
        sliceKey(slice.name),
        sliceGroup(state, slice.name),
        effectiveSliceLimit(state, slice.name),
        slice.memory,
        slice.io.weight,
        slice.io.max,
        effectivePidsMax(slice.pids, node),
      );
    }
    const pending = items.filter((item) => {
      const last = this.written.get(groupKey(item.path));
      return !last || last.cpu !== item.cpu || last.rest !== item.rest;
    });
    const failed: Item[] = [];
    for (const item of [...pending].sort((a, b) => b.path.length - a.path.length)) {
      try {
        backend.setCpuLimit(item.path, item.cpu);
      } catch {
        failed.push(item);
      }
    }
    for (const item of failed.sort((a, b) => a.path.length - b.path.length)) backend.setCpuLimit(item.path, item.cpu);
    for (const item of pending) {
      backend.setMemory(item.path, item.memory);
      backend.setIoWeight(item.path, item.ioWeight);
      // A device that went away (a detached loop device, say) cannot take caps; the others still do.
      const present = item.io.filter((cap) => this.deviceExists(cap.device));
      if (present.length < item.io.length) {
        this.log.warn(
          { group: groupKey(item.path), missing: item.io.filter((c) => !present.includes(c)).map((c) => c.device) },
          'io.max names devices that do not exist now; skipped',
        );
      }
      backend.setIoCaps(item.path, present);
      backend.setPidsMax(item.path, item.pids);
      this.written.set(groupKey(item.path), { cpu: item.cpu, rest: item.rest });
    }
  }

  /**
   * BFQ's weight files appear in every group only once the bfq module is loaded (by
   * `slicectl io enable-bfq`, at start, or by hand): then write every group's stored
   * io.weight again, so weights set while BFQ was missing act from then on. One stat of the
   * root group when nothing changed. Resolves true when it wrote.
   */
  refreshIoWeights(): Promise<boolean> {
    return this.serialise(async () => {
      const present = this.opts.backend.ioWeightUnavailable() === null;
      const appeared = present && !this.bfqWeightFiles;
      this.bfqWeightFiles = present;
      if (!appeared) return false;
      const state = this.current;
      for (const domain of state.domains.values()) this.opts.backend.setIoWeight(domainGroup(state, domain.name), domain.io.weight);
      for (const slice of state.slices.values()) this.opts.backend.setIoWeight(sliceGroup(state, slice.name), slice.io.weight);
      this.log.info(
        { slices: state.slices.size, domains: state.domains.size },
        'BFQ weight files appeared: io.weight written to every group',
      );
      return true;
    }, false);
  }

  private ensureUser(slice: SliceSpec): void {
    let user = this.users.get(slice.user) ?? lookupUser(slice.user);
    if (!user && slice.userCreated) {
      user = createUser(slice.user, `sliced slice ${slice.name}`);
      this.log.info({ slice: slice.name, user: slice.user, uid: user.uid }, 'user created');
    }
    if (!user) {
      this.log.error({ slice: slice.name, user: slice.user }, 'the user of this slice does not exist; exec will fail');
      return;
    }
    this.users.set(user.name, user);
  }

  /** The slice's Unix user, or null when it does not exist. */
  userOf(slice: SliceSpec): UnixUser | null {
    return this.users.get(slice.user) ?? null;
  }

  uidOf(slice: SliceSpec): number | null {
    return this.users.get(slice.user)?.uid ?? null;
  }

  // ---- persistence and serialisation ---------------------------------------------------------

  /**
   * Changes run one at a time. The next one starts as soon as this one is in the kernel, while
   * its log write is still going (the store writes in order and syncs many at once); each is
   * acknowledged only once its log write (or, for a change that stores nothing, the one
   * before it) is durable. Work that stores nothing (`stores` false) goes on while the store
   * fails: attaching a process must not wait for disk space.
   */
  private serialise<T>(work: () => Promise<T>, stores = true): Promise<T> {
    const guarded = async (): Promise<{ value: T; durable: Promise<void> }> => {
      if (this.storeFailure && stores) {
        await this.resyncStore().catch((err: Error) => {
          throw new SlicedError(
            'EIO',
            `changes are refused while the desired state cannot be stored: ${err.message}; sliced retries every ${STORE_RETRY_MS / 1000} s and accepts changes again by itself once it can write`,
          );
        });
        // Written in order behind every earlier write: all of them are durable now.
        this.durable = Promise.resolve();
      }
      const value = await work();
      // Work that stores nothing does not depend on a write that failed before it.
      return { value, durable: stores || !this.storeFailure ? this.durable : Promise.resolve() };
    };
    const run = this.chain.then(guarded, guarded);
    this.chain = run.catch(() => undefined);
    return run.then(async ({ value, durable }) => {
      await durable;
      return value;
    });
  }

  /** Queue the store write of a change that is in the kernel; see serialise(). */
  private persistBehind(before: DesiredState, next: DesiredState): void {
    // After a failure the store may lack earlier changes: a difference to `before` is not enough.
    const write = this.storeFailure ? this.resyncStore(next) : this.persist(before, next);
    this.durable = write.catch((err: Error) => {
      throw this.storeFailed(
        err,
        'the change is in effect but could not be stored',
        '; sliced stores it by itself once it can write again (a restart before that undoes it)',
      );
    });
    this.durable.catch(() => undefined); // awaited by the change's caller
  }

  /**
   * The store may now lack this change and the ones queued behind it (it refuses those too),
   * while the kernel has them: from now on every change first stores the whole desired state
   * again (resyncStore), and so does a timer, so that sliced recovers by itself once the
   * store can write (space freed) instead of refusing changes until a restart.
   */
  private storeFailed(err: Error, what: string, after = ''): SlicedError {
    if (!this.storeFailure)
      this.log.error(
        { err: err.message },
        'state store write failed; changes are refused until it can write again (retried every few seconds)',
      );
    this.storeFailure ??= err;
    if (!this.storeRetry) {
      this.storeRetry = setInterval(() => void this.serialise(async () => undefined).catch(() => undefined), STORE_RETRY_MS);
      this.storeRetry.unref();
    }
    return new SlicedError('EIO', `${what}: ${err.message}${after}`);
  }

  /**
   * Write whatever the store lacks of the desired state (`state`, in the kernel now), in one
   * transaction, even an empty one: its success shows the store writes again. Runs between
   * changes; while it fails, changes are refused with the store's reason (see serialise()).
   */
  private async resyncStore(state: DesiredState = this.current): Promise<void> {
    const stored = new Map<string, string>();
    for (const prefix of [SLICE_PREFIX, DOMAIN_PREFIX, RESERVATION_PREFIX])
      for (const [key, value] of await this.opts.store.range(prefix)) stored.set(key, value);
    const wanted = new Map<string, string>();
    const add = <V>(prefix: string, map: ReadonlyMap<string, V>): void =>
      map.forEach((value, name) => wanted.set(prefix + name, JSON.stringify(value)));
    add(SLICE_PREFIX, state.slices);
    add(DOMAIN_PREFIX, state.domains);
    add(RESERVATION_PREFIX, state.reservations);
    const ops: StoreOp[] = [];
    for (const [key, value] of wanted) if (stored.get(key) !== value) ops.push({ type: 'put', key, value });
    for (const key of stored.keys()) if (!wanted.has(key)) ops.push({ type: 'delete', key });
    await this.opts.store.txn(ops);
    this.storeFailure = null;
    if (this.storeRetry) clearInterval(this.storeRetry);
    this.storeRetry = null;
    this.log.warn({ rewritten: ops.length }, 'state store writes again: the desired state is stored, changes are accepted again');
  }

  /**
   * Apply `next` to the kernel, publish it, and queue its store write (acknowledged when
   * durable, see serialise()). If the kernel refuses, undo the kernel side and rethrow the
   * kernel's reason; nothing was stored. With `storeFirst`, `next` is durable before the
   * kernel is touched (and the old state stored again if the kernel refuses).
   */
  private async commit(
    before: DesiredState,
    next: DesiredState,
    apply: () => Promise<void> | void,
    undo?: () => Promise<void> | void,
    storeFirst = false,
  ): Promise<void> {
    if (storeFirst) {
      await this.persist(before, next).catch((err: Error) => {
        throw this.storeFailed(err, 'the change could not be stored; nothing was changed');
      });
    }
    try {
      await apply();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'kernel refused a change; rolling back');
      this.written.clear(); // the kernel may hold some of the new values: rewrite everything
      try {
        await undo?.();
        await this.applyChange(next, before);
      } catch (undoErr) {
        this.log.error({ err: (undoErr as Error).message }, 'rollback incomplete; the next start will reconcile');
      }
      if (storeFirst) await this.persist(next, before);
      throw err;
    }
    if (!storeFirst) this.persistBehind(before, next);
    this.current = next;
    this.notify();
  }

  private async persist(before: DesiredState, next: DesiredState): Promise<void> {
    const ops: StoreOp[] = [];
    diff(SLICE_PREFIX, before.slices, next.slices, ops);
    diff(DOMAIN_PREFIX, before.domains, next.domains, ops);
    diff(RESERVATION_PREFIX, before.reservations, next.reservations, ops);
    if (ops.length > 0) await this.opts.store.txn(ops);
  }
}

function diff<T>(prefix: string, before: ReadonlyMap<string, T>, next: ReadonlyMap<string, T>, ops: StoreOp[]): void {
  for (const [name, value] of next) {
    if (before.get(name) !== value) ops.push({ type: 'put', key: prefix + name, value: JSON.stringify(value) });
  }
  for (const name of before.keys()) if (!next.has(name)) ops.push({ type: 'delete', key: prefix + name });
}
