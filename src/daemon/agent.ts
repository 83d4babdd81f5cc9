/**
 * The node agent: owns the desired state, keeps it durable in the store and makes the
 * kernel match it. A façade over its parts, each with one job (src/daemon/agent/):
 * change-path.ts runs every change kind through one path (resolve, check in src/core,
 * apply, store, publish, log); change-queue.ts serialises changes and makes them durable;
 * state-repository.ts is the stored desired state; reconciler.ts and limits.ts make the
 * kernel's groups match it; processes.ts attaches, plans exec and stops slices' processes;
 * users.ts keeps slices' Unix users.
 */
import type { Logger } from 'pino';
import type { Store } from '../cluster/store.js';
import type { CgroupBackend } from '../kernel/cgroup/backend.js';
import type { UnixUser } from '../kernel/users.js';
import type { ExecPlan } from '../wire/exec.js';
import type { NodeCapacity } from '../core/admission.js';
import type * as changes from '../core/changes.js';
import type { ChangeKind, ChangeResults } from '../core/change-kinds.js';
import {
  emptyState,
  type DesiredState,
  type DomainCreateInput,
  type DomainSpec,
  type SliceCreateInput,
  type SliceSpec,
  type SliceUpdateInput,
} from '../core/model.js';
import { parseKey } from '../core/layout.js';
import type { Reservation } from '../core/net.js';
import { blockDeviceExists, resolveBlockDevice } from '../kernel/block-devices.js';
import type { SliceNetworks } from './net.js';
import { realiseState, runChange, type Change, type ChangeContext } from './agent/change-path.js';
import { ChangeQueue } from './agent/change-queue.js';
import { LimitWriter } from './agent/limits.js';
import { SliceProcesses } from './agent/processes.js';
import { Reconciler } from './agent/reconciler.js';
import { SliceCounters } from './slice-counters.js';
import { StateRepository } from '../cluster/state-repository.js';
import { SliceUsers } from './agent/users.js';

export type { Change } from './agent/change-path.js';

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
  /** How the users sliced makes for slices begin ("sl-"). */
  userPrefix?: string;
  /** What tells this daemon's users from another's on the same machine: its state directory. */
  userOwner?: string;
  /** Device lookup for io.max (path or MAJ:MIN to MAJ:MIN); the kernel's by default, a fake in fixture tests. */
  resolveDevice?: (name: string) => { device: string; path: string | null };
  deviceExists?: (device: string) => boolean;
  /** Slice networking, or null when the node has none configured. */
  net: SliceNetworks | null;
}

export class SliceAgent {
  private current: DesiredState = emptyState();
  private readonly opts: AgentOptions;
  private readonly log: Logger;
  private readonly listeners: Array<() => void> = [];
  private readonly repository: StateRepository;
  private readonly queue: ChangeQueue;
  private readonly users: SliceUsers;
  private readonly processes: SliceProcesses;
  private readonly reconciler: Reconciler;
  /** Slices' CPU, throttling, OOM, I/O and fork counts, monotonic across their groups (views read them). */
  readonly counters: SliceCounters;
  private readonly changeContext: ChangeContext;

  constructor(options: AgentOptions) {
    this.opts = options;
    this.log = options.log;
    const { backend, net, log } = options;
    this.repository = new StateRepository(options.store);
    this.queue = new ChangeQueue(this.repository, () => this.current, log);
    this.users = new SliceUsers(log, options.userPrefix, options.userOwner);
    this.processes = new SliceProcesses({ ...options, users: this.users });
    const limits = new LimitWriter({ backend, node: options.node, log, deviceExists: options.deviceExists ?? blockDeviceExists });
    this.counters = new SliceCounters(options.store, backend);
    this.reconciler = new Reconciler({ backend, net, limits, processes: this.processes, log, counters: this.counters });
    this.changeContext = {
      node: options.node,
      log,
      queue: this.queue,
      reconciler: this.reconciler,
      users: this.users,
      resolveDevice: options.resolveDevice ?? resolveBlockDevice,
      current: () => this.current,
      publish: (next) => {
        this.current = next;
        this.notify();
      },
    };
  }

  /** The desired state as applied to the kernel (read by the controller and views). */
  get state(): DesiredState {
    return this.current;
  }

  /** Creation stamp of a group: it changes when the group is removed and made again (new default values). */
  groupEpoch(key: string): number {
    return this.reconciler.groupEpoch(key);
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
    const existing = this.reconciler.adopt(this.opts.rootWeight, loaded);
    let adopted = 0;
    for (const id of existing.keys()) if (parseKey(id)?.kind === 'slice') adopted++;
    for (const slice of [...loaded.slices.values()]) this.users.ensure(slice);
    await this.reconciler.syncGroups(existing, loaded, undefined, this.reconciler.takeStrays());
    this.users.removeStrays(loaded); // after the stray groups' processes were stopped
    await this.counters.forgetAllBut(new Set(loaded.slices.keys()));
    this.reconciler.lookForIoWeights();
    await this.opts.net?.start(loaded);
    this.log.info({ slices: loaded.slices.size, domains: loaded.domains.size, adoptedGroups: adopted }, 'state loaded and reconciled');
  }

  /** Read the desired state from the store without touching the kernel. */
  async load(): Promise<DesiredState> {
    this.current = await this.repository.load();
    await this.counters.load();
    return this.current;
  }

  /** Remove every kernel object sliced made (groups, created users); the desired state stays. */
  async teardown(): Promise<void> {
    await this.queue.run(async () => {
      // Groups and users go even when the network part fails; its error is reported after.
      const netFailure = await this.opts.net?.teardown(this.current).then(
        () => null,
        (err: Error) => err,
      );
      await this.reconciler.syncGroups(this.reconciler.scanGroups(), emptyState(), undefined, this.reconciler.takeStrays());
      this.users.removeAllMade([...this.current.slices.values()]);
      this.users.removeStrays(emptyState());
      this.opts.backend.remove([]);
      if (netFailure) throw netFailure;
    }, false);
  }

  // ---- changes: every kind through one path (agent/change-path.ts) ----------------------------

  /** Run one change; resolves to what its kind reports, once it is durable. */
  change<K extends ChangeKind>(change: Change<K>): Promise<ChangeResults[K]> {
    return runChange(this.changeContext, change);
  }

  createSlice(input: SliceCreateInput): Promise<SliceSpec> {
    return this.change({ kind: 'slice.create', input });
  }

  updateSlice(name: string, input: SliceUpdateInput): Promise<SliceSpec> {
    return this.change({ kind: 'slice.update', name, input });
  }

  async deleteSlice(name: string): Promise<void> {
    await this.change({ kind: 'slice.delete', name });
  }

  createDomain(input: DomainCreateInput): Promise<DomainSpec> {
    return this.change({ kind: 'domain.create', input });
  }

  updateDomain(name: string, input: SliceUpdateInput): Promise<DomainSpec> {
    return this.change({ kind: 'domain.update', name, input });
  }

  async deleteDomain(name: string): Promise<void> {
    await this.change({ kind: 'domain.delete', name });
  }

  /** Move a slice or domain into `domain`, or to the node level when null; processes follow. */
  async moveMember(member: string, domain: string | null): Promise<void> {
    await this.change({ kind: 'member.move', member, domain });
  }

  reserve(input: changes.ReservationInput): Promise<Reservation> {
    return this.change({ kind: 'port.reserve', input });
  }

  release(input: Omit<changes.ReservationInput, 'slice'>): Promise<Reservation> {
    return this.change({ kind: 'port.release', input });
  }

  /**
   * Make the node's desired state `target`, planned and admitted by the cluster
   * (src/daemon/sliver-sync.ts). Resolves to the slices it left out (their user is missing here), with the reason.
   */
  realise(target: DesiredState): Promise<Map<string, string>> {
    return realiseState(this.changeContext, target);
  }

  /** Run `work` between two changes, with the current state (whose groups all exist then). */
  betweenChanges<T>(work: (state: DesiredState) => Promise<T>): Promise<T> {
    return this.queue.run(() => work(this.current), false);
  }

  /**
   * Write every group's stored io.weight again when BFQ's weight files have appeared since
   * the last look (see Reconciler.refreshIoWeights). Resolves true when it wrote.
   */
  refreshIoWeights(): Promise<boolean> {
    return this.queue.run(async () => this.reconciler.refreshIoWeights(this.current), false);
  }

  // ---- processes (agent/processes.ts) -----------------------------------------------------------

  attach(slice: string, pid: number): Promise<void> {
    return this.queue.run(() => this.processes.attach(this.current, slice, pid), false);
  }

  /**
   * What `slicectl exec` needs to start a command in the slice: the user and the files its
   * child writes its pid into. `requester` is the pid of slicectl, whose memory cgroup the
   * child starts in.
   */
  execPlan(slice: string, requester: number): ExecPlan {
    return this.processes.execPlan(this.current, slice, requester);
  }

  /** The cgroup.procs files of a slice's groups, for processes the daemon starts on the slice's behalf (vsys scripts). */
  procsFiles(slice: string): string[] {
    return this.processes.procsFiles(this.current, slice);
  }

  /** The slice's Unix user, or null when it does not exist. */
  userOf(slice: SliceSpec): UnixUser | null {
    return this.users.cached(slice.user);
  }

  uidOf(slice: SliceSpec): number | null {
    return this.users.cached(slice.user)?.uid ?? null;
  }
}
