/**
 * Writes the limits of sliced's groups (CPU quota, memory, I/O weight and caps, pids) from
 * the desired state, remembering what it wrote so unchanged values are not written again.
 */
import type { Logger } from 'pino';
import type { CgroupBackend, GroupPath } from '../../kernel/cgroup/backend.js';
import { groupKey } from '../../kernel/cgroup/backend.js';
import type { NodeCapacity } from '../../core/admission.js';
import type { DesiredState, IoDeviceLimit, MemoryAllocation } from '../../core/model.js';
import { effectiveIoCaps } from '../../core/io.js';
import { domainGroup, domainKey, parseKey, sliceGroup, sliceKey, type GroupKind } from '../../core/layout.js';
import { effectiveDomainLimit, effectiveSliceLimit } from '../../core/limits.js';
import { effectivePidsMax } from '../../core/task-limits.js';

export interface LimitWriterOptions {
  backend: CgroupBackend;
  node: NodeCapacity;
  log: Logger;
  deviceExists: (device: string) => boolean;
}

export class LimitWriter {
  /** Last limits written per group key, so unchanged values are not rewritten. */
  private readonly written = new Map<string, { cpu: number | null; rest: string }>();

  constructor(private readonly opts: LimitWriterOptions) {}

  /** Forget what was written to one group (it is gone, or made again with the kernel's defaults). */
  forget(key: string): void {
    this.written.delete(key);
  }

  /** Forget everything written: the kernel may hold values of a change rolled back, so all are written again. */
  forgetAll(): void {
    this.written.clear();
  }

  /**
   * Write CPU, memory and I/O settings of every group. A v1 child's quota may not exceed its
   * parent's, so each group gets min(own limit, ancestors' limits), written in two passes:
   * bottom-up (everything that can be written now, lowering children before parents), then
   * top-down for what had to wait for its parent to be raised. On v1 a group's I/O caps
   * depend on its siblings' weights (domain caps are split among members), so every group's
   * caps are recomputed and the changed ones written, affected by the change or not.
   */
  apply(state: DesiredState, only?: ReadonlySet<string>): void {
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
      const present = item.io.filter((cap) => this.opts.deviceExists(cap.device));
      if (present.length < item.io.length) {
        this.opts.log.warn(
          { group: groupKey(item.path), missing: item.io.filter((c) => !present.includes(c)).map((c) => c.device) },
          'io.max names devices that do not exist now; skipped',
        );
      }
      backend.setIoCaps(item.path, present);
      backend.setPidsMax(item.path, item.pids);
      this.written.set(groupKey(item.path), { cpu: item.cpu, rest: item.rest });
    }
  }
}
