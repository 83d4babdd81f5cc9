/**
 * The processes of slices: attaching a running process, the plan `slicectl exec` follows to
 * start one, the cgroup.procs files for processes the daemon starts on a slice's behalf,
 * and stopping every process of a group when its slice goes.
 */
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CgroupBackend, GroupPath } from '../../kernel/cgroup/backend.js';
import { groupKey } from '../../kernel/cgroup/backend.js';
import { realtimePolicyOf, resetRealtimeThreads, signalAll, threadsOf } from '../../kernel/processes.js';
import { isKernelThread, processAlive, processExists } from '../../kernel/procfs.js';
import type { SliceProcessPlan } from '../../kernel/spawn.js';
import * as changes from '../../core/changes.js';
import { sliceGroup } from '../../core/layout.js';
import type { DesiredState } from '../../core/model.js';
import { SlicedError } from '../../core/errors.js';
import type { SliceNetworks } from '../net.js';
import type { SliceUsers } from './users.js';

export interface SliceProcessesOptions {
  backend: CgroupBackend;
  net: SliceNetworks | null;
  users: SliceUsers;
  log: Logger;
  /** Grace between SIGTERM and SIGKILL when a slice is deleted. */
  stopGraceMs: number;
  attachAnyMemoryCgroup: boolean;
}

export class SliceProcesses {
  constructor(private readonly opts: SliceProcessesOptions) {}

  /** Move process `pid` into the slice's groups (`state` holds the slice). */
  async attach(state: DesiredState, slice: string, pid: number): Promise<void> {
    changes.getSlice(state, slice);
    if (!Number.isSafeInteger(pid) || pid <= 0) {
      throw new SlicedError('EINVAL', `pid ${JSON.stringify(pid)} must be a positive whole number`);
    }
    if (!processExists(pid)) throw new SlicedError('ENOENT', `process ${pid} does not exist`);
    if (pid === 1) throw new SlicedError('EPERM', 'process 1 (init) cannot be attached to a slice');
    if (pid === process.pid) throw new SlicedError('EPERM', `process ${pid} is sliced itself and cannot be attached to a slice`);
    if (isKernelThread(pid)) throw new SlicedError('EPERM', `process ${pid} is a kernel thread and cannot be attached to a slice`);
    const group = sliceGroup(state, slice);
    await this.opts.net?.settle(); // its traffic is counted from the first packet
    const exited = (): SlicedError => new SlicedError('ESRCH', `process ${pid} exited while it was being moved into slice ${slice}`);
    try {
      this.assertMemoryMoveAllowed(pid, group);
      // Slices may not hold real-time policies (the kernel refuses such tasks in groups
      // without real-time runtime): reset them first, as for a slice's deletion.
      const reset = await resetRealtimeThreads(threadsOf(pid));
      if (reset.length > 0) this.opts.log.warn({ slice, pid, threads: reset }, 'reset real-time threads to SCHED_OTHER');
      this.opts.backend.moveProcess(group, pid);
    } catch (err) {
      if (!processAlive(pid)) throw exited();
      const policy = realtimePolicyOf(pid);
      if (policy !== null) {
        throw new SlicedError(
          'EINVAL',
          `process ${pid} holds real-time policy ${policy === 1 ? 'SCHED_FIFO' : policy === 2 ? 'SCHED_RR' : 'SCHED_DEADLINE'} (set ` +
            `again after sliced reset it); processes in a slice may not hold real-time policies`,
        );
      }
      throw err;
    }
    if (!processAlive(pid)) throw exited();
    this.opts.log.info({ slice, pid }, 'process attached');
  }

  /**
   * What `slicectl exec` needs to start a command in the slice: the user and the files its
   * child writes its pid into. `requester` is the pid of slicectl, whose memory cgroup the
   * child starts in.
   */
  execPlan(state: DesiredState, slice: string, requester: number): SliceProcessPlan {
    const spec = changes.getSlice(state, slice);
    const user = this.opts.users.find(spec.user);
    if (!user) throw new SlicedError('ENOENT', `user ${spec.user} of slice ${slice} does not exist any more`);
    const group = sliceGroup(state, slice);
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
  procsFiles(state: DesiredState, slice: string): string[] {
    return this.opts.backend.procsFiles(sliceGroup(state, slice));
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
    const backend = this.opts.backend;
    const from = backend.processMemoryDirectory(pid);
    if (from === null) throw new SlicedError('ENOENT', `process ${pid} does not exist`);
    const target = backend.memoryDirectory(group);
    const ours = backend.memoryDirectory([]);
    if (target.startsWith(`${from}/`) || from === ours || from.startsWith(`${ours}/`)) return;
    if (from === backend.supervisorDirectory()) return;
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
  async stop(group: GroupPath): Promise<void> {
    const backend = this.opts.backend;
    if (!backend.exists(group)) return;
    const reset = await resetRealtimeThreads(backend.threads(group));
    if (reset.length > 0) this.opts.log.warn({ group: groupKey(group), threads: reset }, 'reset real-time threads to SCHED_OTHER');
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
}
