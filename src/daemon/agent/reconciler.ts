/**
 * Makes the kernel's groups match the desired state: creates what is missing top-down,
 * writes limits (limits.ts), moves the processes of slices whose group moved, and stops and
 * removes what is no longer wanted bottom-up. Slice networking hooks in before and after.
 */
import type { Logger } from 'pino';
import type { CgroupBackend, GroupPath } from '../../kernel/cgroup/backend.js';
import { groupKey } from '../../kernel/cgroup/backend.js';
import { processExists } from '../../kernel/procfs.js';
import type { DesiredState } from '../../core/model.js';
import { affectedIds, domainGroup, domainKey, parseGroupName, parseKey, sliceGroup, sliceKey } from '../../core/layout.js';
import { SlicedError } from '../../core/errors.js';
import type { SliceNetworks } from '../net.js';
import type { LimitWriter } from './limits.js';
import type { SliceProcesses } from './processes.js';

/** "slice/x" | "domain/x" -> path */
export type GroupMap = Map<string, GroupPath>;

export interface ReconcilerOptions {
  backend: CgroupBackend;
  net: SliceNetworks | null;
  limits: LimitWriter;
  processes: SliceProcesses;
  log: Logger;
  /** Where a slice's group counts go before the group is removed while the slice lives on. */
  counters?: { retire(slice: string, group: GroupPath): Promise<void>; forgetAllBut(slices: ReadonlySet<string>): Promise<void> };
}

export class Reconciler {
  /** When each group was (re)created, so cached kernel values of an older group are not trusted. */
  private readonly groupEpochs = new Map<string, number>();
  private epochCounter = 0;
  /** Whether sliced's groups had BFQ's weight files at the last look (refreshIoWeights). */
  private bfqWeightFiles = false;
  /** Second groups of one slice or domain found by the last scan (takeStrays()). */
  private readonly strays: Array<[string, GroupPath]> = [];

  constructor(private readonly opts: ReconcilerOptions) {}

  /** Creation stamp of a group: it changes when the group is removed and made again (new default values). */
  groupEpoch(key: string): number {
    return this.groupEpochs.get(key) ?? 0;
  }

  /**
   * Set up sliced's root group and find the groups that exist already (adopted, then
   * reconciled by syncGroups). Groups made by an older version lack hierarchies added
   * since (pids): they are completed here.
   */
  adopt(rootWeight: number, desired: DesiredState): GroupMap {
    const backend = this.opts.backend;
    backend.init(rootWeight);
    const pidsUnavailable = backend.pidsUnavailable();
    if (pidsUnavailable) this.opts.log.warn({ reason: pidsUnavailable }, 'slices have no task (pids) limit');
    const existing = this.scanGroups(desired);
    for (const path of [...existing.values()].sort((a, b) => a.length - b.length)) backend.create(path);
    return existing;
  }

  /**
   * The groups the last scan found twice for one slice or domain (a kill cut a move short:
   * the old and the new group both exist), for syncGroups to remove; taken once.
   */
  takeStrays(): Array<[string, GroupPath]> {
    return this.strays.splice(0);
  }

  /** Note whether BFQ's weight files exist now (see refreshIoWeights()). */
  lookForIoWeights(): void {
    this.bfqWeightFiles = this.opts.backend.ioWeightUnavailable() === null;
  }

  /**
   * Groups that exist under sliced's root, found by walking the primary hierarchy. Where one
   * slice or domain has two, the one `desired` places it in is kept in the map and the other
   * noted as a stray (takeStrays()).
   */
  scanGroups(desired?: DesiredState): GroupMap {
    const found: GroupMap = new Map();
    const wanted =
      desired === undefined ? new Map<string, string>() : new Map([...this.groupsOf(desired)].map(([id, p]) => [id, groupKey(p)]));
    const walk = (path: string[]): void => {
      for (const child of this.opts.backend.children(path)) {
        const parsed = parseGroupName(child);
        if (!parsed) continue; // not ours
        const childPath = [...path, child];
        const id = `${parsed.kind}/${parsed.name}`;
        const seen = found.get(id);
        if (seen === undefined) found.set(id, childPath);
        else if (wanted.get(id) === groupKey(childPath)) {
          this.strays.push([id, seen]);
          found.set(id, childPath);
        } else this.strays.push([id, childPath]);
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
  async applyChange(before: DesiredState, next: DesiredState): Promise<void> {
    const affected = affectedIds(before, next);
    await this.opts.net?.beforeGroups(before, next);
    await this.syncGroups(this.groupsOf(before, affected), next, affected);
    // A deleted slice's counts go with it (one made again later under its name starts from zero).
    if ([...before.slices.keys()].some((name) => !next.slices.has(name)))
      await this.opts.counters?.forgetAllBut(new Set(next.slices.keys()));
    await this.opts.net?.afterGroups(before, next);
  }

  /** The kernel may hold some of a refused change's values: write every limit again from now on. */
  forgetWrittenLimits(): void {
    this.opts.limits.forgetAll();
  }

  /**
   * Make the kernel's groups match `to`, starting from the groups in `from` (and `strays`,
   * second groups of the same ids): create what is missing top-down, set limits, move the
   * processes of slices whose group moved, then stop and remove what is no longer wanted
   * bottom-up, keeping first what a living slice's group counted.
   */
  async syncGroups(
    from: GroupMap,
    to: DesiredState,
    only?: ReadonlySet<string>,
    strays: ReadonlyArray<[string, GroupPath]> = [],
  ): Promise<void> {
    const backend = this.opts.backend;
    const wanted = this.groupsOf(to, only);
    const byDepth = (a: GroupPath, b: GroupPath): number => a.length - b.length;
    const existing = new Set([...from.values()].map(groupKey));
    for (const path of [...wanted.values()].filter((p) => !existing.has(groupKey(p))).sort(byDepth)) {
      backend.create(path);
      this.groupEpochs.set(groupKey(path), ++this.epochCounter);
    }
    this.opts.limits.apply(to, only);
    if (strays.length > 0)
      this.opts.log.warn(
        { groups: strays.map(([, p]) => groupKey(p)) },
        'removing second groups of the same slice or domain (a move cut short)',
      );
    const leaving = [...from, ...strays];
    for (const [id, oldPath] of leaving) {
      const newPath = wanted.get(id);
      if (parseKey(id)?.kind === 'slice' && newPath && groupKey(newPath) !== groupKey(oldPath)) {
        this.migrate(oldPath, newPath);
      }
    }
    const wantedKeys = new Set([...wanted.values()].map(groupKey));
    for (const [id, oldPath] of leaving.sort((a, b) => byDepth(b[1], a[1]))) {
      if (wantedKeys.has(groupKey(oldPath))) continue;
      const key = parseKey(id);
      // A slice that lives on in another group: its counts so far are kept first (durably).
      if (key?.kind === 'slice' && wanted.has(id)) await this.opts.counters?.retire(key.name, oldPath);
      if (key?.kind === 'slice') await this.stopAndRemove(oldPath);
      else backend.remove(oldPath);
      this.opts.limits.forget(groupKey(oldPath));
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
      await this.opts.processes.stop(group);
      try {
        this.opts.backend.remove(group);
        return;
      } catch (err) {
        if (attempt >= 5 || (err as SlicedError).details?.errno !== 'EBUSY') throw err;
        this.opts.log.warn({ group: groupKey(group), attempt }, 'a process joined the group while it was being removed; stopping it too');
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
   * BFQ's weight files appear in every group only once the bfq module is loaded (by
   * `slicectl io enable-bfq`, at start, or by hand): then write every group's stored
   * io.weight again, so weights set while BFQ was missing act from then on. One stat of the
   * root group when nothing changed. Returns true when it wrote.
   */
  refreshIoWeights(state: DesiredState): boolean {
    const backend = this.opts.backend;
    const present = backend.ioWeightUnavailable() === null;
    const appeared = present && !this.bfqWeightFiles;
    this.bfqWeightFiles = present;
    if (!appeared) return false;
    for (const domain of state.domains.values()) backend.setIoWeight(domainGroup(state, domain.name), domain.io.weight);
    for (const slice of state.slices.values()) backend.setIoWeight(sliceGroup(state, slice.name), slice.io.weight);
    this.opts.log.info(
      { slices: state.slices.size, domains: state.domains.size },
      'BFQ weight files appeared: io.weight written to every group',
    );
    return true;
  }
}
