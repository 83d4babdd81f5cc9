/**
 * The tasks this node runs. It follows `tasks/` in the cluster store and starts, as the
 * slice's user in the slice's groups (kernel/spawn.ts, as `slicectl exec` does), every task
 * whose record places it here and wants it running; it stops (SIGTERM, a grace period, then
 * SIGKILL to the task's process group) every task of its own whose record no longer does:
 * stopped, placed elsewhere or deleted. It restarts a task that ended under its restart
 * policy, with a growing delay, and reports each change under `tasks/<id>/status/<node>`.
 *
 * A task's process writes its output into files itself (task-log.ts) and is its own session,
 * so it outlives a restart of sliced: the next run takes it back by pid and start time, and
 * only its exit status is then unknown. The pid is found in the status reported, or in the
 * file the spawn helper writes before the agent hears of the process (an agent killed in
 * between would otherwise leave it running, unknown to anyone).
 */
import { constants } from 'node:os';
import type { Logger } from 'pino';
import { SlicedError } from '../core/errors.js';
import { exitStatusOf, failsOver, restartDelayMs, restartsAfter, type TaskRecord, type TaskStatus } from '../core/tasks.js';
import { startFenceWatchdog, writeFence } from '../kernel/fence.js';
import { sliceSpawnArgs } from '../kernel/spawn.js';
import { SpawnServer, type ServedProcess } from '../kernel/spawn-server.js';
import { processAlive, readProcStat } from '../kernel/procfs.js';
import type { TaskStore } from '../cluster/task-store.js';
import type { TaskIndex } from '../cluster/task-index.js';
import type { SliceProcessPlan } from '../core/exec-plan.js';
import {
  forgetStartedProcess,
  readStartedProcess,
  removeTaskLogs,
  rotateIfLarge,
  taskLogIds,
  taskProcessFile,
  taskStreamPaths,
} from './task-log.js';

export interface TaskRunnerOptions {
  node: string;
  tasks: TaskStore;
  /** Every task's record, kept current (opened by the caller). */
  index: TaskIndex;
  /** Where task output is kept (root-only). */
  logRoot: string;
  /** How a process of a slice starts (the agent's exec plan). */
  planFor: (slice: string) => SliceProcessPlan;
  log: Logger;
  /** Between SIGTERM and SIGKILL when a task is stopped. */
  stopGraceMs: number;
  /**
   * In a cluster: the fence file (kernel/fence.ts) and the earliest end of this node's lease.
   * Tasks another node could be given are killed before that end; none starts while past it.
   */
  fence: { file: string; leaseExpiresAt: () => number } | null;
}

interface LocalTask {
  generation: number;
  /** The process, when this run of sliced started it. */
  child: ServedProcess | null;
  /** Its pid (also for a process taken back after a restart of sliced). */
  pid: number | null;
  /** Its start time (/proc/PID/stat), which the fence checks before it kills. */
  startTicks: number | null;
  /** Killed by the fence, not ended by itself. */
  fenced: boolean;
  restarts: number;
  stopping: boolean;
  /** A pending restart, or the poll of a process taken back. */
  timer: NodeJS.Timeout | null;
  /** The SIGKILL after the grace period of a stop. */
  killTimer: NodeJS.Timeout | null;
}

const ROTATE_EVERY_MS = 2000;
const ADOPTED_POLL_MS = 500;
/** Tasks are fenced this long before the earliest end of the lease, for the kill to land in time. */
export const FENCE_MARGIN_MS = 1000;
const FENCE_EVERY_MS = 200;
const STATUS_RETRY_MS = 1000;
/** At most this many statuses per transaction (etcd refuses more than 128 operations in one). */
const STATUS_BATCH = 100;
const FENCED = "killed by the fence: this node's agent lost its lease (stopped, or cut off from etcd)";

export class TaskRunner {
  private refreshing = false;
  private handedOverAt: number | null = null;
  private lastMoveStartedAt: number | null = null;
  /** Fenced since the last full read: nothing starts until the records are read again. */
  private stale = false;
  private readonly own = new Map<string, TaskStatus>();
  private readonly local = new Map<string, LocalTask>();
  /** Statuses reported and not yet written, the latest of each task. */
  private readonly unwritten = new Map<string, TaskStatus>();
  private writer: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  private rotator: NodeJS.Timeout | null = null;
  private fencer: NodeJS.Timeout | null = null;
  private lastFence = '';
  /** Tasks the fence killed, to start again when the node has its lease back. */
  private readonly fencedTasks = new Set<string>();
  /** Hand-overs under way (task id), so one is sent once. */
  private readonly handing = new Set<string>();
  private closed = false;
  /** Starts the tasks' processes, so that the agent itself never forks (spawn-server.ts). */
  private readonly spawner = new SpawnServer(processAlive);

  constructor(private readonly opts: TaskRunnerOptions) {}

  async open(): Promise<void> {
    for (const task of this.opts.index.all()) {
      const mine = task.statuses.get(this.opts.node);
      if (mine) this.own.set(task.record.spec.id, mine);
    }
    for (const id of new Set([...this.own.keys(), ...taskLogIds(this.opts.logRoot)])) {
      const status = this.lastStarted(id);
      if (status?.state === 'running') this.takeBack(id, status);
    }
    for (const [id, status] of this.own) this.resumeRestart(id, status);
    if (this.opts.fence) {
      this.fenceTick();
      startFenceWatchdog(this.opts.fence.file);
      this.fencer = setInterval(() => this.fenceTick(), FENCE_EVERY_MS);
    }
    for (const id of this.opts.index.ids()) this.reconcile(id);
    // Output of tasks removed while this agent was away.
    for (const id of taskLogIds(this.opts.logRoot)) if (!this.opts.index.record(id) && !this.local.has(id)) this.forget(id);
    this.unsubscribe = this.opts.index.subscribe((id) => this.reconcile(id));
    this.rotator = setInterval(() => {
      for (const id of this.local.keys()) {
        try {
          rotateIfLarge(this.opts.logRoot, id);
        } catch (err) {
          this.opts.log.warn({ task: id, err: (err as Error).message }, 'cannot rotate the task output');
        }
      }
    }, ROTATE_EVERY_MS);
    this.rotator.unref();
  }

  /**
   * Stop following. Tasks that stay on this node whatever happens (restart never, not moving)
   * keep running and are taken back at the next start; in a cluster the others are stopped
   * first (SIGTERM, grace, SIGKILL), as the lease ends with the agent and the leader places
   * them elsewhere at once.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    if (this.rotator) clearInterval(this.rotator);
    if (this.fencer) clearInterval(this.fencer);
    for (const task of this.local.values()) clearTimers(task);
    if (!this.opts.fence) {
      this.spawner.close();
      return;
    }
    const fenced = this.fenceable();
    for (const { pid } of fenced) this.kill(pid, 'SIGTERM');
    const deadline = Date.now() + this.opts.stopGraceMs;
    while (fenced.some((t) => processAlive(t.pid)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    for (const { pid } of fenced) this.kill(pid, 'SIGKILL');
    writeFence(
      this.opts.fence.file,
      0,
      fenced.map((t) => ({ pgid: t.pid, startTicks: t.startTicks })),
    );
    // After the kills: the ends the helper reported meanwhile are in the statuses to write.
    this.spawner.close();
    await this.flushed();
  }

  /** Whether the task has a process here now, or will have one again (a restart is pending). */
  isActive(id: string): boolean {
    return this.local.has(id);
  }

  /** The migratable task running here whose process group holds `pid`, or null. */
  migratableTaskOf(pid: number): string | null {
    const group = readProcStat(pid)?.processGroup;
    if (group === undefined) return null;
    for (const [id, task] of this.local) {
      if (task.pid === group && !task.stopping && this.wanted(id)?.spec.migratable) return id;
    }
    return null;
  }

  /** When a task last started to leave this node (Kerrighed's last_migration), or was last handed over; null before any. */
  get lastMigration(): number | null {
    if (this.lastMoveStartedAt === null) return this.handedOverAt;
    return Math.max(this.lastMoveStartedAt, this.handedOverAt ?? 0);
  }

  /** Tasks moving away from this node whose record is not handed over yet. */
  get movesUnderWay(): number {
    let count = 0;
    for (const { record } of this.opts.index.all()) if (record.node === this.opts.node && record.moving) count++;
    return count;
  }

  /** Send a signal to the task's process group; refuses a task with no process on this node. */
  signal(id: string, signal: NodeJS.Signals): void {
    const task = this.local.get(id);
    if (!task || task.pid === null || task.stopping)
      throw new SlicedError('ESRCH', `task ${id} has no process running on node ${this.opts.node}`);
    try {
      process.kill(-task.pid, signal);
    } catch (err) {
      throw new SlicedError('ESRCH', `task ${id}: cannot send ${signal} to its process group ${task.pid}: ${(err as Error).message}`);
    }
  }

  /** The record if it wants the task running here (and not moving away). */
  private wanted(id: string): TaskRecord | null {
    const record = this.opts.index.record(id);
    return record && record.node === this.opts.node && record.desired === 'run' && !record.moving ? record : null;
  }

  private reconcile(id: string): void {
    if (this.closed) return;
    const here = this.opts.index.record(id);
    const running = this.local.get(id);
    if (!here && !running) {
      this.forget(id);
      return;
    }
    if (here && here.node === this.opts.node && here.desired === 'run' && here.moving) {
      // Moving away: stop it here, then hand the record over (when it has ended).
      if (running && !running.stopping) this.lastMoveStartedAt = Date.now();
      if (running) this.stop(id, running);
      else void this.handOver(id, here);
      return;
    }
    const record = this.wanted(id);
    if (running && (!record || running.generation !== record.generation)) {
      this.stop(id, running);
      return;
    }
    if (!record || running || this.stale || this.isFenced()) return;
    const reported = this.own.get(id);
    if (reported && reported.generation === record.generation) return; // this placement ran here and ended
    this.start(id, record, 0);
  }

  private start(id: string, record: TaskRecord, restarts: number): void {
    const { spec } = record;
    const base = { node: this.opts.node, generation: record.generation, restarts };
    let plan: SliceProcessPlan;
    try {
      plan = this.opts.planFor(spec.slice);
    } catch (err) {
      this.notStarted(id, base, (err as Error).message);
      return;
    }
    const task = localTask(record.generation, restarts);
    this.local.set(id, task);
    const child = this.spawner.spawn({
      ...sliceSpawnArgs(plan, spec.command, {
        env: { ...spec.env, SLICED_TASK_ID: id, SLICED_NODE: this.opts.node },
        ...(spec.cwd !== null ? { cwd: spec.cwd } : {}),
      }),
      output: taskStreamPaths(this.opts.logRoot, id),
      started: { file: taskProcessFile(this.opts.logRoot, id), note: String(record.generation) },
    });
    task.child = child;
    const startedAt = Date.now();
    child.once('spawn', () => {
      task.pid = child.pid ?? null;
      const ticks = task.pid !== null ? (readProcStat(task.pid)?.startTicks ?? null) : null;
      task.startTicks = ticks;
      this.fenceTick(); // listed before anyone could take this node for dead
      this.report(id, {
        ...base,
        state: 'running',
        pid: task.pid,
        pidStartTicks: ticks,
        startedAt,
        endedAt: null,
        exitStatus: null,
        error: null,
      });
      // Stopped while it was being started.
      if (task.stopping && task.pid !== null) task.killTimer = this.terminate(task.pid);
    });
    child.once('error', (err: Error) => {
      if (this.local.get(id) === task) this.local.delete(id);
      this.notStarted(id, base, err.message);
    });
    child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      if (code === null && signal === null) {
        // Its helper died before it ended (spawn-server.ts): the end was seen, not its status.
        const error = 'its exit status is unknown: the process that started it ended first';
        this.ended(id, task, record, { startedAt, exitStatus: null, error });
        return;
      }
      const status = exitStatusOf(code, signal ? (constants.signals[signal] ?? 0) : null);
      this.ended(id, task, record, { startedAt, exitStatus: status, error: null });
    });
  }

  private notStarted(id: string, base: { node: string; generation: number; restarts: number }, reason: string): void {
    const ended = { pid: null, pidStartTicks: null, startedAt: null, endedAt: Date.now(), exitStatus: null };
    this.report(id, { ...base, ...ended, state: 'failed', error: `cannot start: ${reason}` });
  }

  /**
   * What this node last knew of the task at its start: the status it reported, unless the
   * spawn helper's file names a later process that still runs (started just before the last
   * run of sliced ended, never reported); that one is reported now.
   */
  private lastStarted(id: string): TaskStatus | undefined {
    const reported = this.own.get(id);
    const found = readStartedProcess(this.opts.logRoot, id);
    if (!found || (reported?.state === 'running' && reported.pid === found.pid)) return reported;
    if (readProcStat(found.pid)?.startTicks !== found.startTicks) return reported;
    const status: TaskStatus = {
      node: this.opts.node,
      generation: found.generation,
      state: 'running',
      pid: found.pid,
      pidStartTicks: found.startTicks,
      startedAt: found.at,
      endedAt: null,
      exitStatus: null,
      restarts: reported?.generation === found.generation ? reported.restarts : 0,
      error: null,
    };
    this.opts.log.info({ task: id, pid: found.pid }, 'found a task process started before the last run of sliced ended');
    this.report(id, status);
    return status;
  }

  /** Take back a task's process that outlived the last run of sliced, when it is still that process. */
  private takeBack(id: string, status: TaskStatus): void {
    const record = this.opts.index.record(id);
    const same = status.pid !== null && processAlive(status.pid) && readProcStat(status.pid)?.startTicks === status.pidStartTicks;
    if (!record || !same) {
      const error = 'ended while sliced was not running on the node: its exit status is unknown';
      if (record) this.ended(id, null, record, { startedAt: status.startedAt, exitStatus: null, error }, status.restarts);
      else {
        // Removed from the cluster while this agent was away.
        if (same) this.terminate(status.pid!);
        this.own.delete(id);
      }
      return;
    }
    const task = { ...localTask(status.generation, status.restarts), pid: status.pid, startTicks: status.pidStartTicks };
    this.local.set(id, task);
    const poll = (): void => {
      if (this.closed) return;
      if (processAlive(task.pid!)) {
        task.timer = setTimeout(poll, ADOPTED_POLL_MS);
        return;
      }
      this.ended(id, task, record, {
        startedAt: status.startedAt,
        exitStatus: null,
        error: 'its exit status is unknown: it ended after sliced restarted',
      });
    };
    this.opts.log.info({ task: id, pid: status.pid }, 'took back a running task');
    poll();
  }

  private ended(
    id: string,
    task: LocalTask | null,
    record: TaskRecord,
    how: { startedAt: number | null; exitStatus: number | null; error: string | null },
    restarts = task?.restarts ?? 0,
  ): void {
    if (task) clearTimers(task);
    if (task && this.local.get(id) === task) this.local.delete(id);
    try {
      forgetStartedProcess(this.opts.logRoot, id);
    } catch (err) {
      this.opts.log.warn({ task: id, err: (err as Error).message }, 'cannot remove the file naming the ended process');
    }
    // What the group leader left behind in its group goes with it.
    if (task?.pid && (task.stopping || task.fenced)) this.kill(task.pid, 'SIGKILL');
    const fenced = task?.fenced === true;
    if (fenced) this.fencedTasks.add(id);
    const base = {
      node: this.opts.node,
      generation: record.generation,
      restarts,
      pid: null,
      pidStartTicks: null,
      startedAt: how.startedAt,
      endedAt: Date.now(),
      exitStatus: how.exitStatus,
      error: fenced ? FENCED : how.error,
    };
    const current = this.wanted(id);
    const again =
      !task?.stopping && !fenced && current?.generation === record.generation && restartsAfter(record.spec.restart, how.exitStatus ?? 1);
    this.report(id, { ...base, state: task?.stopping ? 'stopped' : 'exited' });
    if (again) this.restartLater(id, record, restarts);
    // The record may have changed while the process ended (placed here again, say).
    else this.reconcile(id);
  }

  /** Start the task again after the restart delay, if it is still placed here by then. */
  private restartLater(id: string, record: TaskRecord, restarts: number): void {
    // Held as active while the restart is pending, so a stop in between cancels it.
    const pending = localTask(record.generation, restarts + 1);
    this.local.set(id, pending);
    pending.timer = setTimeout(() => {
      if (this.local.get(id) !== pending) return;
      this.local.delete(id);
      // Past the fence's deadline the records may be old: the fence watchdog may have killed
      // the process while this agent was frozen, and the leader placed it elsewhere since.
      // It starts again, if it is still placed here, once the records are read again.
      if (this.stale || this.isFenced()) {
        this.fencedTasks.add(id);
        return;
      }
      const latest = this.wanted(id);
      if (latest?.generation === record.generation) this.start(id, latest, restarts + 1);
    }, restartDelayMs(restarts));
  }

  /**
   * A task that ended here while the last run of sliced had its restart pending (or was
   * fenced and not started again yet) restarts: the pending restart ended with that run.
   */
  private resumeRestart(id: string, status: TaskStatus): void {
    const record = this.wanted(id);
    if (this.local.has(id) || status.state !== 'exited' || record?.generation !== status.generation) return;
    const again = status.error === FENCED ? record.spec.restart !== 'never' : restartsAfter(record.spec.restart, status.exitStatus ?? 1);
    if (again) this.restartLater(id, record, status.restarts);
  }

  private stop(id: string, task: LocalTask): void {
    if (task.stopping) return;
    task.stopping = true;
    if (task.pid === null) {
      // A restart was pending, or the process had not started yet: nothing runs.
      if (task.timer) clearTimeout(task.timer);
      if (task.child === null) {
        this.local.delete(id);
        const prev = this.own.get(id);
        this.report(id, {
          ...(prev ?? { startedAt: null, exitStatus: null }),
          node: this.opts.node,
          generation: task.generation,
          restarts: task.restarts,
          state: 'stopped',
          pid: null,
          pidStartTicks: null,
          endedAt: Date.now(),
          error: null,
        });
        this.reconcile(id);
      }
      return;
    }
    task.killTimer = this.terminate(task.pid);
  }

  /** SIGTERM to the process group; returns the timer of the SIGKILL after the grace period. */
  private terminate(pid: number): NodeJS.Timeout {
    this.kill(pid, 'SIGTERM');
    return setTimeout(() => this.kill(pid, 'SIGKILL'), this.opts.stopGraceMs);
  }

  /** A task removed from the cluster (slicectl task rm): its output on this node goes with it. */
  private forget(id: string): void {
    this.own.delete(id);
    this.fencedTasks.delete(id);
    try {
      removeTaskLogs(this.opts.logRoot, id);
    } catch (err) {
      this.opts.log.warn({ task: id, err: (err as Error).message }, 'cannot remove the output of a removed task');
    }
  }

  /** Give the record to the node it moves to, once nothing of it runs here (compared on its revision). */
  private async handOver(id: string, record: TaskRecord): Promise<void> {
    if (this.handing.has(id) || !record.moving) return;
    this.handing.add(id);
    const { to, by } = record.moving;
    try {
      await this.opts.tasks.update(id, ({ record: now }) => {
        if (now.node !== this.opts.node || !now.moving || now.generation !== record.generation)
          throw new SlicedError('EBUSY', 'changed meanwhile');
        return { ...now, node: to, generation: now.generation + 1, moving: null, placedAt: Date.now(), placedBy: by };
      });
      this.handedOverAt = Date.now();
      this.opts.log.info({ task: id, to, by }, 'task handed over');
    } catch (err) {
      if (!(err instanceof SlicedError && err.code === 'EBUSY')) {
        this.opts.log.warn({ task: id, to, err: (err as Error).message }, 'cannot hand the task over; trying again');
        setTimeout(() => this.reconcile(id), STATUS_RETRY_MS).unref();
      }
    } finally {
      this.handing.delete(id);
    }
  }

  private isFenced(): boolean {
    const fence = this.opts.fence;
    return fence !== null && Date.now() > fence.leaseExpiresAt() - FENCE_MARGIN_MS;
  }

  /** This node's tasks that another node could be given, with a process to kill. */
  private fenceable(): Array<{ id: string; pid: number; startTicks: number; task: LocalTask }> {
    const out = [];
    for (const [id, task] of this.local) {
      const record = this.opts.index.record(id);
      if (task.pid === null || task.startTicks === null || !record || !failsOver(record)) continue;
      out.push({ id, pid: task.pid, startTicks: task.startTicks, task });
    }
    return out;
  }

  /** Keep the fence file's deadline and list current; past the deadline, kill what it lists. */
  private fenceTick(): void {
    const fence = this.opts.fence;
    if (!fence || this.closed) return;
    const deadline = fence.leaseExpiresAt() - FENCE_MARGIN_MS;
    const listed = this.fenceable();
    const text = `${deadline} ${listed.map((t) => `${t.pid}:${t.startTicks}`).join(',')}`;
    if (text !== this.lastFence) {
      try {
        writeFence(
          fence.file,
          deadline,
          listed.map((t) => ({ pgid: t.pid, startTicks: t.startTicks })),
        );
        this.lastFence = text;
      } catch (err) {
        this.opts.log.warn({ file: fence.file, err: (err as Error).message }, 'cannot write the fence file');
      }
    }
    if (Date.now() > deadline) {
      this.stale = true;
      for (const { pid, task } of listed) {
        if (task.fenced) continue;
        task.fenced = true;
        this.opts.log.warn({ pid }, 'fencing a task: this node has no lease');
        this.kill(pid, 'SIGKILL');
      }
      return;
    }
    if (this.stale) void this.afterFence();
  }

  /**
   * The lease is back. What this node knows of the records may be old (its watch was cut off
   * too, and the leader may have placed its tasks elsewhere meanwhile): read them all again
   * first, then start here what the fence killed and is still placed here.
   */
  private async afterFence(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      await this.opts.index.refresh();
      if (this.isFenced()) return;
      this.stale = false;
      for (const id of [...this.fencedTasks]) {
        this.fencedTasks.delete(id);
        const record = this.wanted(id);
        const reported = this.own.get(id);
        if (record && !this.local.has(id) && reported?.generation === record.generation && record.spec.restart !== 'never') {
          this.start(id, record, reported.restarts + 1);
        }
      }
      for (const id of this.opts.index.ids()) this.reconcile(id);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'cannot read the tasks after the fence; trying again');
    } finally {
      this.refreshing = false;
    }
  }

  private kill(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(-pid, signal);
    } catch {
      // Gone already.
    }
  }

  /**
   * Record a status. One writer puts every status waiting, of all tasks, in one transaction at
   * a time (group commit: under load a transaction carries many), and only a task's latest
   * waiting status is written: the store never ends on an older report.
   */
  private report(id: string, status: TaskStatus): void {
    this.own.set(id, status);
    this.unwritten.set(id, status);
    this.startWriter();
  }

  private startWriter(): void {
    if (this.writer || this.unwritten.size === 0) return;
    this.writer = this.writeStatuses()
      .catch((err: Error) => {
        this.opts.log.error({ err: err.message }, 'the task status writer failed; the next report starts it again');
        return true;
      })
      .then((gaveUp) => {
        this.writer = null;
        // A report made after the writer's last look, before it was cleared, is not left behind.
        if (!gaveUp) this.startWriter();
      });
  }

  /** Write until nothing waits; true when it gave up (a failed write after close). */
  private async writeStatuses(): Promise<boolean> {
    while (this.unwritten.size > 0) {
      const batch = [...this.unwritten].slice(0, STATUS_BATCH);
      for (const [id] of batch) this.unwritten.delete(id);
      try {
        await this.opts.tasks.putStatuses(batch.map(([id, status]) => ({ id, status })));
      } catch (err) {
        this.opts.log.warn({ tasks: batch.length, err: (err as Error).message }, 'cannot record task statuses; trying again');
        // Back in the queue unless a newer report came meanwhile.
        for (const [id, status] of batch) if (!this.unwritten.has(id)) this.unwritten.set(id, status);
        if (this.closed) return true;
        await new Promise((resolve) => setTimeout(resolve, STATUS_RETRY_MS).unref());
      }
    }
    return false;
  }

  /** Resolves once every status reported so far is in the store. */
  async flushed(): Promise<void> {
    while (this.writer) await this.writer;
  }
}

function localTask(generation: number, restarts: number): LocalTask {
  return { generation, child: null, pid: null, startTicks: null, fenced: false, restarts, stopping: false, timer: null, killTimer: null };
}

function clearTimers(task: LocalTask): void {
  if (task.timer) clearTimeout(task.timer);
  if (task.killTimer) clearTimeout(task.killTimer);
  task.timer = task.killTimer = null;
}
