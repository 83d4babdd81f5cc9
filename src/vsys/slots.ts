/**
 * Per-slice concurrency cap: at most `limit` calls of one slice run at once; later ones
 * wait in order. Waiting callers hold their input in the FIFO, so the slice's writers block
 * (back-pressure) and nothing accumulates in the daemon. Pure.
 */
export class Slots {
  private readonly running = new Map<string, number>();
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(private readonly limit: number) {}

  /** Resolves with a release function once `key` has a free slot. */
  acquire(key: string): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = (): void => {
        this.running.set(key, (this.running.get(key) ?? 0) + 1);
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.release(key);
        });
      };
      if ((this.running.get(key) ?? 0) < this.limit) grant();
      else {
        const queue = this.waiting.get(key) ?? [];
        queue.push(grant);
        this.waiting.set(key, queue);
      }
    });
  }

  inUse(key: string): number {
    return this.running.get(key) ?? 0;
  }

  queued(key: string): number {
    return this.waiting.get(key)?.length ?? 0;
  }

  private release(key: string): void {
    const left = (this.running.get(key) ?? 1) - 1;
    if (left === 0) this.running.delete(key);
    else this.running.set(key, left);
    const queue = this.waiting.get(key);
    const next = queue?.shift();
    if (queue?.length === 0) this.waiting.delete(key);
    next?.();
  }
}
