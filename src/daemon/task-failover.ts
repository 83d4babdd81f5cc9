/**
 * Failover of tasks, by the cluster's leader alone (cluster/leader.ts): when a node's lease
 * has ended, each of its tasks that another node may be given (a restart policy, or being
 * moved) is placed again on a live node of its slice, as a new generation. The node that went
 * fenced those tasks before its lease could end (task-runner.ts, kernel/fence.ts), so none
 * runs twice. The leader's writes compare the leader key: one that lost leadership while
 * paused cannot place anything.
 */
import type { Logger } from 'pino';
import { failsOver } from '../core/tasks.js';
import type { Leadership } from '../cluster/leader.js';
import type { Membership } from '../cluster/membership.js';
import type { TaskStore } from '../cluster/task-store.js';
import type { TaskIndex } from '../cluster/task-index.js';
import type { TaskService } from './tasks.js';

/** Besides reacting to membership changes, the leader looks this often (a change it missed, a node with no room earlier). */
const SCAN_EVERY_MS = 1000;

export class TaskFailover {
  private timer: NodeJS.Timeout | null = null;
  private scanning = false;
  private again = false;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly opts: {
      tasks: TaskStore;
      index: TaskIndex;
      membership: Membership;
      leadership: Leadership;
      service: TaskService;
      log: Logger;
    },
  ) {}

  start(): void {
    this.unsubscribe.push(this.opts.membership.subscribe(() => void this.scan()));
    this.unsubscribe.push(this.opts.leadership.subscribe(() => void this.scan()));
    this.timer = setInterval(() => void this.scan(), SCAN_EVERY_MS);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const off of this.unsubscribe.splice(0)) off();
  }

  private async scan(): Promise<void> {
    if (!this.opts.leadership.isLeader()) return;
    if (this.scanning) {
      this.again = true;
      return;
    }
    this.scanning = true;
    try {
      do {
        this.again = false;
        await this.placeOrphans();
      } while (this.again);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'failover: reading the tasks failed; trying again');
    } finally {
      this.scanning = false;
    }
  }

  private async placeOrphans(): Promise<void> {
    const down = new Set(
      this.opts.membership
        .list()
        .filter((n) => n.status !== 'up')
        .map((n) => n.name),
    );
    const members = new Set(this.opts.membership.list().map((n) => n.name));
    for (const { record } of [...this.opts.index.all()]) {
      const id = record.spec.id;
      if (!failsOver(record) || !(down.has(record.node) || !members.has(record.node))) continue;
      const from = record.node;
      try {
        // A move under way goes where it was going, if that node can take it; else anywhere.
        const target =
          record.moving && !down.has(record.moving.to)
            ? { node: record.moving.to, placedBy: `${record.moving.by}, finished by failover from ${from}` }
            : await this.opts.service.choose(record.spec, { pid: 0, sessionId: null }, [from]);
        await this.opts.tasks.update(
          id,
          ({ record: now }) => {
            if (now.node !== from || now.generation !== record.generation) throw new Error('changed meanwhile');
            return {
              ...now,
              node: target.node,
              generation: now.generation + 1,
              moving: null,
              placedAt: Date.now(),
              placedBy: `failover from ${from} (${target.placedBy})`,
            };
          },
          () => [this.opts.leadership.fence()],
        );
        this.opts.log.info({ task: id, from, to: target.node }, 'failover: task placed again');
      } catch (err) {
        this.opts.log.warn({ task: id, from, err: (err as Error).message }, 'failover: cannot place the task again yet');
      }
    }
  }
}
