/**
 * Changes run one at a time, and each is acknowledged only once durable. The next change
 * starts as soon as this one is in the kernel, while its store write is still going (the
 * store writes in order and syncs many at once). When the store cannot write (disk full),
 * changes are refused until it writes again, which a timer retries by itself.
 */
import type { Logger } from 'pino';
import { SlicedError } from '../../core/errors.js';
import { SerialQueue } from '../../core/serial-queue.js';
import type { DesiredState } from '../../core/model.js';
import type { StateRepository } from '../../cluster/state-repository.js';

/** How often a failed store is tried again (see resync()). */
const STORE_RETRY_MS = 2000;

export class ChangeQueue {
  private readonly changes = new SerialQueue();
  /** The store write of the last change (see run()). */
  private durable: Promise<void> = Promise.resolve();
  /** Set when the store failed to make a change durable; cleared by resync(). */
  private storeFailure: Error | null = null;
  /** Tries resync() while storeFailure is set, so the store catches up without a change. */
  private storeRetry: NodeJS.Timeout | null = null;

  constructor(
    private readonly repository: StateRepository,
    /** The desired state in the kernel now. */
    private readonly current: () => DesiredState,
    private readonly log: Logger,
  ) {}

  /**
   * Run `work` after every earlier one. It is acknowledged once its store write (or, for
   * work that stores nothing, the one before it) is durable. Work that stores nothing
   * (`stores` false) goes on while the store fails: attaching a process must not wait for
   * disk space.
   */
  run<T>(work: () => Promise<T>, stores = true): Promise<T> {
    const guarded = async (): Promise<{ value: T; durable: Promise<void> }> => {
      if (this.storeFailure && stores) {
        await this.resync().catch((err: Error) => {
          throw new SlicedError(
            'EIO',
            `changes are refused while the desired state cannot be stored: ${err.message}; sliced retries every ` +
              `${STORE_RETRY_MS / 1000} s and accepts changes again by itself once it can write`,
          );
        });
        // Written in order behind every earlier write: all of them are durable now.
        this.durable = Promise.resolve();
      }
      const value = await work();
      // Work that stores nothing does not depend on a write that failed before it.
      return { value, durable: stores || !this.storeFailure ? this.durable : Promise.resolve() };
    };
    return this.changes.run(guarded).then(async ({ value, durable }) => {
      await durable;
      return value;
    });
  }

  /** Queue the store write of a change that is in the kernel; the change is acknowledged when it is durable. */
  storeBehind(before: DesiredState, next: DesiredState): void {
    // After a failure the store may lack earlier changes: a difference to `before` is not enough.
    const write = this.storeFailure ? this.resync(next) : this.repository.write(before, next);
    this.durable = write.catch((err: Error) => {
      throw this.storeFailed(
        err,
        'the change is in effect but could not be stored',
        '; sliced stores it by itself once it can write again (a restart before that undoes it)',
      );
    });
    this.durable.catch(() => undefined); // awaited by the change's caller
  }

  /** Make `next` durable before the kernel is touched. */
  async storeFirst(before: DesiredState, next: DesiredState): Promise<void> {
    await this.repository.write(before, next).catch((err: Error) => {
      throw this.storeFailed(err, 'the change could not be stored; nothing was changed');
    });
  }

  /** Store `before` again after a stored-first change that the kernel refused. */
  async storeBack(next: DesiredState, before: DesiredState): Promise<void> {
    await this.repository.write(next, before);
  }

  /**
   * The store may now lack this change and the ones queued behind it (it refuses those too),
   * while the kernel has them: from now on every change first stores the whole desired state
   * again (resync), and so does a timer, so that sliced recovers by itself once the store can
   * write (space freed) instead of refusing changes until a restart.
   */
  private storeFailed(err: Error, what: string, after = ''): SlicedError {
    if (!this.storeFailure)
      this.log.error(
        { err: err.message },
        'state store write failed; changes are refused until it can write again (retried every few seconds)',
      );
    this.storeFailure ??= err;
    if (!this.storeRetry) {
      this.storeRetry = setInterval(() => void this.run(async () => undefined).catch(() => undefined), STORE_RETRY_MS);
      this.storeRetry.unref();
    }
    return new SlicedError('EIO', `${what}: ${err.message}${after}`);
  }

  /**
   * Write whatever the store lacks of the desired state (`state`, in the kernel now). Runs
   * between changes; while it fails, changes are refused with the store's reason (see run()).
   */
  private async resync(state: DesiredState = this.current()): Promise<void> {
    const rewritten = await this.repository.rewrite(state);
    this.storeFailure = null;
    if (this.storeRetry) clearInterval(this.storeRetry);
    this.storeRetry = null;
    this.log.warn({ rewritten }, 'state store writes again: the desired state is stored, changes are accepted again');
  }
}
