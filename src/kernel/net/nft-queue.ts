/**
 * Write-behind for nft scripts that only add counting objects: the lines of many changes go
 * to the kernel in one `nft -f` transaction, while the agent goes on with the next change.
 * Each transaction costs a process spawn, which blocks the daemon's event loop for a few
 * milliseconds (fork of a large process), so lines wait up to BATCH_WINDOW_MS for company and
 * lines added while a transaction runs go into the next one. Callers flush before anything
 * that depends on the objects: before removals, before a process may run in a slice, at stop.
 */
import type { Logger } from 'pino';
import { runScript } from './nft.js';
import { SerialQueue } from '../../core/serial-queue.js';

/** How long added lines wait for more before they are written (nothing depends on them yet). */
export const BATCH_WINDOW_MS = 50;

export class NftQueue {
  private pending: string[] = [];
  private readonly transactions = new SerialQueue();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: Logger,
    private readonly apply: (lines: readonly string[]) => Promise<void> = runScript,
  ) {}

  add(lines: readonly string[]): void {
    if (lines.length === 0) return;
    this.pending.push(...lines);
    this.timer ??= setTimeout(() => void this.flush(), BATCH_WINDOW_MS);
  }

  /** Resolves once every line added so far is in the kernel (or failed, which is logged). */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    // The lines are taken when the previous transaction is done, so flushes that pile up
    // behind a running one share the next transaction.
    return this.transactions.run(() => this.drain());
  }

  private async drain(): Promise<void> {
    const lines = this.pending;
    this.pending = [];
    if (lines.length === 0) return;
    try {
      await this.apply(lines);
    } catch (err) {
      // One bad line must not lose the others: apply them one by one, logging failures;
      // the next start reconciles whatever is still missing.
      for (const line of lines) {
        await this.apply([line]).catch((lineErr: Error) =>
          this.log.error({ err: lineErr.message, line }, 'nft counting object not created'),
        );
      }
      this.log.warn({ err: (err as Error).message }, 'batched nft changes applied line by line');
    }
  }
}
