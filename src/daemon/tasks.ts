/**
 * Cluster tasks as the API serves them, on any node: submit (the schedulers of the tree choose
 * the node among the slice's), list, show, stop, signal, remove, and the output, read here
 * when the task ran here and through the node-to-node channel when it ran elsewhere. The
 * node itself starts and stops its tasks (task-runner.ts) from the records written here.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { SlicedError } from '../core/errors.js';
import {
  assertTaskId,
  candidateNodes,
  defaultTaskNode,
  expired,
  isFinished,
  taskId,
  taskView,
  type TaskRecord,
  type TaskRequest,
  type TaskView,
} from '../core/tasks.js';
import type { NewTask } from '../framework/types.js';
import type { Placement } from '../framework/tree/scheduler.js';
import type { Membership } from '../cluster/membership.js';
import type { PeerClient } from '../cluster/peer-client.js';
import type { StoredTask, TaskStore } from '../cluster/task-store.js';
import type { TaskIndex } from '../cluster/task-index.js';
import type { ChangeRunner } from './changes.js';
import type { DrainResult } from '../wire/nodes.js';
import type { DesiredState } from '../core/model.js';
import { logLines } from './task-log.js';
import type { TaskRunner } from './task-runner.js';

export interface TaskServiceOptions {
  node: string;
  tasks: TaskStore;
  /** The tasks as last seen (for placement's counts, which need no round trip). */
  index: TaskIndex;
  membership: Membership;
  changes: ChangeRunner;
  /** This node's desired state (where a slice is when the node is alone). */
  state: () => DesiredState;
  /** The tree's placement: every scheduler governing the task, or the one named. */
  place: (task: NewTask, scheduler: string | null) => Placement;
  runner: TaskRunner;
  /** Calls to other agents; null when this node has no channel configured. */
  peer: PeerClient | null;
  logRoot: string;
  /** How long a stop waits for the node to report the task stopped. */
  stopWaitMs: number;
}

const POLL_MS = 50;

/** How long the ready nodes of a slice are kept (see sliceNodes), and for how many slices at most. */
const SLIVER_CACHE_MS = 1000;
const SLIVER_CACHE_MAX = 1024;

export class TaskService {
  private readonly sliverCache = new Map<string, { at: number; nodes: string[] }>();

  constructor(private readonly opts: TaskServiceOptions) {}

  async submit(request: TaskRequest, requester: { pid: number; sessionId: number | null }): Promise<TaskView> {
    const { node, placedBy } = await this.choose(request, requester);
    const now = Date.now();
    const record: TaskRecord = {
      spec: { ...request, id: taskId(randomBytes(6)), createdAt: now, createdOn: this.opts.node },
      desired: 'run',
      node,
      generation: 1,
      placedAt: now,
      placedBy,
    };
    await this.opts.tasks.create(record);
    return this.view({ record, status: null, statuses: new Map(), modRevision: 0 });
  }

  /**
   * The node a task of `request` goes to: the schedulers that govern it decide among the
   * slice's nodes that are up and not cordoned (all but `exclude`); where none answers, the
   * node with the fewest tasks.
   */
  async choose(
    request: TaskRequest,
    requester: { pid: number; sessionId: number | null },
    exclude: readonly string[] = [],
  ): Promise<{ node: string; placedBy: string }> {
    const held = await this.sliceNodes(request.slice);
    const pinned = request.node ?? null;
    if (pinned !== null && !held.includes(pinned)) {
      throw new SlicedError(
        'EINVAL',
        `node ${pinned} does not hold slice ${request.slice} (ready on: ${held.join(', ') || 'no node'}); pin the task to one of those`,
      );
    }
    const sliceNodes = (pinned !== null ? [pinned] : held).filter((n) => !exclude.includes(n));
    const nodes = candidateNodes(request.slice, sliceNodes, this.opts.membership.list());
    const newTask: NewTask = { parentPid: requester.pid, sessionId: requester.sessionId, slice: request.slice, nodes };
    const answer = this.opts.place(newTask, request.scheduler);
    if (answer.refused !== null) throw new SlicedError('EBUSY', `scheduler ${answer.scheduler} refuses new tasks now: ${answer.refused}`);
    if (answer.node !== null) return { node: answer.node, placedBy: answer.scheduler! };
    if (pinned !== null) return { node: pinned, placedBy: 'pinned (--node)' };
    return {
      node: defaultTaskNode(nodes, this.activePerNode(), this.opts.node),
      placedBy: answer.scheduler ? `default (scheduler ${answer.scheduler} gave no node)` : 'default (fewest tasks)',
    };
  }

  async list(): Promise<TaskView[]> {
    const { tasks } = await this.opts.tasks.list();
    return [...tasks.values()].map((t) => this.view(t)).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  async show(id: string): Promise<TaskView> {
    return this.view(await this.opts.tasks.get(id));
  }

  /** Ask the task's node to stop it (SIGTERM, grace, SIGKILL) and wait until it says so, or its node is down. */
  async stop(id: string): Promise<TaskView> {
    await this.opts.tasks.update(id, ({ record }) => ({ ...record, desired: 'stop' }));
    const deadline = Date.now() + this.opts.stopWaitMs;
    for (;;) {
      const view = await this.show(id);
      if (isFinished(view) || view.state === 'unknown' || view.state === 'pending') return view;
      if (Date.now() > deadline) {
        throw new SlicedError(
          'EBUSY',
          `task ${id} was asked to stop but node ${view.node} still reports it running after ${this.opts.stopWaitMs} ms`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  /**
   * Move a running task to another node of its slice (`to`, or where the schedulers place it):
   * its node stops it (SIGTERM, grace, SIGKILL) and hands it over, and it starts again there
   * with the same spec. Only tasks marked migratable move. Resolves once it runs on the target.
   */
  async migrate(id: string, to: string | null, by: string): Promise<TaskView> {
    const view = await this.show(id);
    const target = await this.moveTarget(view, to);
    await this.opts.tasks.update(id, ({ record }) => {
      if (record.node !== view.node || record.generation !== view.generation || record.moving) {
        throw new SlicedError('EBUSY', `task ${id} moved or changed meanwhile (now on ${record.node}); look again`);
      }
      return { ...record, moving: { to: target, by } };
    });
    return this.whenOn(id, target);
  }

  /**
   * Drain a node: cordon it (no new task goes there), then move its migratable tasks away as
   * `migrate` does. Resolves with what moved where and what could not move, and why.
   */
  async drain(node: string): Promise<DrainResult> {
    await this.opts.membership.setCordoned(node, true);
    const moved: Array<{ task: string; to: string }> = [];
    const left: Array<{ task: string; reason: string }> = [];
    const moving: Array<Promise<unknown>> = [];
    for (const view of await this.list()) {
      if (view.node !== node || view.desired !== 'run' || isFinished(view)) continue;
      if (!view.migratable) {
        left.push({ task: view.id, reason: 'not migratable (slicectl run --migratable): stop it, or let it end' });
        continue;
      }
      try {
        const to = await this.moveTarget(view, null);
        await this.opts.tasks.update(view.id, ({ record }) => ({ ...record, moving: record.moving ?? { to, by: `drain of ${node}` } }));
        moved.push({ task: view.id, to });
        moving.push(this.whenOn(view.id, to).catch((err: Error) => left.push({ task: view.id, reason: err.message })));
      } catch (err) {
        left.push({ task: view.id, reason: (err as Error).message });
      }
    }
    await Promise.all(moving);
    return { node, moved: moved.filter((m) => !left.some((l) => l.task === m.task)), left };
  }

  /** Where a task can move: `to` when it is a node of the slice that takes new tasks, else the schedulers' choice. */
  private async moveTarget(view: TaskView, to: string | null): Promise<string> {
    if (!view.migratable) {
      throw new SlicedError(
        'EPERM',
        `task ${view.id} is not migratable: only tasks started with slicectl run --migratable move between nodes`,
      );
    }
    if (view.state !== 'running' && view.state !== 'pending') {
      throw new SlicedError(
        'EBUSY',
        `task ${view.id} is ${view.state}${view.reason ? ` (${view.reason})` : ''}: only a running task moves`,
      );
    }
    if (to === view.node) throw new SlicedError('EINVAL', `task ${view.id} runs on ${to} already`);
    const record = (await this.opts.tasks.get(view.id)).record;
    if (to === null) return (await this.choose(record.spec, { pid: 0, sessionId: null }, [view.node])).node;
    const candidates = candidateNodes(record.spec.slice, await this.sliceNodes(record.spec.slice), this.opts.membership.list());
    if (!candidates.includes(to)) {
      const member = this.opts.membership.list().find((n) => n.name === to);
      const why = !member
        ? 'is not a member'
        : member.status !== 'up'
          ? 'is down'
          : member.cordoned
            ? 'is cordoned'
            : `does not hold slice ${record.spec.slice} (ready)`;
      throw new SlicedError(
        'EBUSY',
        `task ${view.id} cannot move to ${to}: it ${why}; it can go to ${candidates.filter((c) => c !== view.node).join(', ') || 'no other node'}`,
      );
    }
    return to;
  }

  /** Wait until the task runs on `node` (after a move), at most the stop grace and a start's time. */
  private async whenOn(id: string, node: string): Promise<TaskView> {
    const deadline = Date.now() + this.opts.stopWaitMs + 10_000;
    for (;;) {
      const view = await this.show(id);
      if (view.node === node && view.state !== 'pending') return view;
      if (Date.now() > deadline)
        throw new SlicedError('EBUSY', `task ${id} was asked to move to ${node} but is ${view.state} on ${view.node}`);
      await sleep(POLL_MS);
    }
  }

  /** Forget a task that does not run (stopped or ended); its output goes with it on its node. */
  async remove(id: string): Promise<void> {
    const task = await this.opts.tasks.get(id);
    const view = this.view(task);
    if (task.record.desired === 'run' && !isFinished(view)) {
      throw new SlicedError('EBUSY', `task ${id} is ${view.state} on node ${view.node}; stop it first (slicectl task stop ${id})`);
    }
    if (!(await this.opts.tasks.remove(task))) throw new SlicedError('EBUSY', `task ${id} changed meanwhile; try again`);
  }

  /** Forget every task finished more than `retentionMs` ago (core/tasks.ts `expired`); how many went. */
  async collect(retentionMs: number): Promise<number> {
    const now = Date.now();
    let removed = 0;
    for (const task of [...this.opts.index.all()]) {
      // Compared on the record's revision: a task changed meanwhile stays for the next round.
      if (expired(this.view(task), now, retentionMs) && (await this.opts.tasks.remove(task))) removed++;
    }
    return removed;
  }

  async signal(id: string, signal: NodeJS.Signals): Promise<{ task: string; node: string; signal: string }> {
    const view = await this.show(id);
    if (view.state !== 'running')
      throw new SlicedError('ESRCH', `task ${id} is ${view.state}${view.reason ? ` (${view.reason})` : ''}: it has no process to signal`);
    if (view.node === this.opts.node) {
      this.opts.runner.signal(id, signal);
      return { task: id, node: view.node, signal };
    }
    const { peer, base } = this.peerOf(view.node, id);
    return peer.json(view.node, base, 'POST', `/peer/v1/tasks/${id}/signal`, { signal });
  }

  /** The task's kept output (NDJSON lines), from its node; with `follow`, until it stops running there. */
  async logs(id: string, follow: boolean, aborted: AbortSignal): Promise<Readable> {
    const view = await this.show(id);
    if (view.node === this.opts.node)
      return Readable.from(logLines(this.opts.logRoot, id, follow, () => this.opts.runner.isActive(id), aborted));
    if (this.opts.membership.get(view.node).status !== 'up') {
      throw new SlicedError(
        'EIO',
        `task ${id} ran on node ${view.node}, which is down: its output is kept there and can be read when it is back`,
      );
    }
    const { peer, base } = this.peerOf(view.node, id);
    const upstream = await peer.call(view.node, base, 'GET', `/peer/v1/tasks/${id}/logs?follow=${follow}`);
    aborted.addEventListener('abort', () => upstream.destroy(), { once: true });
    return upstream;
  }

  /** Wait until the task's node reports it started (or that it could not), at most `timeoutMs`; watched, not polled. */
  async started(id: string, timeoutMs: number): Promise<TaskView> {
    assertTaskId(id);
    const after = await this.opts.tasks.revision();
    let view = await this.show(id);
    if (view.state !== 'pending') return view;
    return new Promise<TaskView>((resolve) => {
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        watch.close();
        resolve(view);
      };
      const timer = setTimeout(settle, timeoutMs);
      const look = (): void => {
        this.show(id)
          .then((now) => {
            view = now;
            if (now.state !== 'pending') settle();
          })
          .catch(() => settle()); // removed meanwhile: the last view stands
      };
      const watch = this.opts.tasks.watch(after, look, settle, id);
    });
  }

  private view(task: StoredTask): TaskView {
    const node = this.opts.membership.list().find((n) => n.name === task.record.node);
    return taskView(task.record, task.status, node?.status === 'up');
  }

  /** The nodes where the slice is realised (ready); a node alone holds the slices of its own state. */
  private async sliceNodes(slice: string): Promise<string[]> {
    // Reading a slice's slivers takes a catalogue read and two per node: for a stream of tasks
    // of one slice, the answer is kept for a moment. A node whose sliver went in that moment
    // gets a task that fails to start and says why; which nodes are up is always current.
    const cached = this.sliverCache.get(slice);
    if (cached && Date.now() - cached.at < SLIVER_CACHE_MS) return cached.nodes;
    const placement = await this.opts.changes.placementOf('slice', slice);
    let nodes: string[];
    if (placement) nodes = placement.slivers.filter((s) => s.state === 'ready').map((s) => s.node);
    else if (this.opts.state().slices.has(slice)) nodes = [this.opts.node];
    else throw new SlicedError('ENOENT', `no slice ${slice} (slicectl slice list shows them)`);
    if (this.sliverCache.size >= SLIVER_CACHE_MAX) this.sliverCache.clear();
    this.sliverCache.set(slice, { at: Date.now(), nodes });
    return nodes;
  }

  /** Tasks pending or running per node that is up (a task on a node down is 'unknown', as in its view). */
  private activePerNode(): Map<string, number> {
    const up = new Set(this.opts.membership.list().flatMap((n) => (n.status === 'up' ? [n.name] : [])));
    const counts = new Map<string, number>();
    for (const { node } of this.opts.index.activeRecords()) if (up.has(node)) counts.set(node, (counts.get(node) ?? 0) + 1);
    return counts;
  }

  private peerOf(node: string, id: string): { peer: PeerClient; base: string } {
    const live = this.opts.membership.get(node).live;
    if (!live) throw new SlicedError('EIO', `task ${id} is on node ${node}, which is down`);
    if (!this.opts.peer || !live.peer) {
      const missing = !this.opts.peer ? `this node (${this.opts.node})` : `node ${node}`;
      throw new SlicedError(
        'EIO',
        `task ${id} is on node ${node}, and ${missing} has no node-to-node channel: start sliced with --peer-listen and its credentials`,
      );
    }
    return { peer: this.opts.peer, base: live.peer };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
