/**
 * Finished tasks are forgotten once they have been kept `retentionMs` (their record and
 * statuses in the store; each node then removes their output, task-runner.ts), as Nomad
 * collects terminal jobs. In a cluster the leader alone collects, so only one node writes.
 */
import type { Logger } from 'pino';
import type { Leadership } from '../cluster/leader.js';
import type { TaskService } from './tasks.js';

/** How often to look: a tenth of the retention, from 1 s to a minute. */
function intervalFor(retentionMs: number): number {
  return Math.min(60_000, Math.max(1000, Math.floor(retentionMs / 10)));
}

export class TaskCollector {
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly opts: { service: TaskService; retentionMs: number; leadership: Leadership | null; log: Logger }) {}

  start(): void {
    if (this.opts.retentionMs === 0) return; // keep them all
    this.timer = setInterval(() => void this.collect(), intervalFor(this.opts.retentionMs));
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async collect(): Promise<void> {
    if (this.running || (this.opts.leadership && !this.opts.leadership.isLeader())) return;
    this.running = true;
    try {
      const removed = await this.opts.service.collect(this.opts.retentionMs);
      if (removed > 0) this.opts.log.info({ removed, retentionMs: this.opts.retentionMs }, 'finished tasks forgotten');
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'cannot forget finished tasks now; trying again later');
    } finally {
      this.running = false;
    }
  }
}
