/**
 * Write-behind for nft scripts that only add counting objects: the lines of many changes go
 * to the kernel in one `nft -f` transaction (each transaction costs a commit, ~10 ms, whatever
 * its size), while the agent goes on with the next change. Callers flush before anything that
 * depends on the objects: before removals, before a process may run in a slice, at stop.
 */
import type { Logger } from 'pino';
import { runScript } from './nft.js';

export class NftQueue {
  private pending: string[] = [];
  private running: Promise<void> = Promise.resolve();
  private scheduled = false;

  constructor(private readonly log: Logger) {}

  add(lines: readonly string[]): void {
    if (lines.length === 0) return;
    this.pending.push(...lines);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
  }

  /** Resolves once every line added so far is in the kernel (or failed, which is logged). */
  flush(): Promise<void> {
    this.scheduled = false;
    const lines = this.pending;
    this.pending = [];
    this.running = this.running.then(async () => {
      if (lines.length === 0) return;
      try {
        await runScript(lines);
      } catch (err) {
        // One bad line must not lose the others: apply them one by one, logging failures;
        // the next start reconciles whatever is still missing.
        for (const line of lines) {
          await runScript([line]).catch((lineErr: Error) => this.log.error({ err: lineErr.message, line }, 'nft counting object not created'));
        }
        this.log.warn({ err: (err as Error).message }, 'batched nft changes applied line by line');
      }
    });
    return this.running;
  }
}
