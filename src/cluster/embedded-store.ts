/**
 * Embedded store for a single node: a snapshot plus a write-ahead log, both fsync'd.
 *
 * Each transaction is one line "<crc32> <json>" appended to wal.log and made durable with
 * fdatasync before it is acknowledged; transactions that arrive while a sync is in flight
 * are committed together (group commit). A torn last line (crash during a write) is dropped
 * at load; damage anywhere else stops the daemon rather than silently losing state. When
 * the log grows, the whole map is written to snapshot.json by write-fsync-rename and the log
 * starts over. Only one process may open a store directory at a time (lock file with pid).
 * The files' format is in store-files.ts, the lock in store-lock.ts.
 *
 * A failed write or sync (a full filesystem: ENOSPC) rejects its transactions and every one
 * queued behind it, then the store heals itself: the log is cut back to its last durable
 * record and read back from disk, and must hold exactly what was acknowledged (else the
 * snapshot is rewritten from memory). Writes are accepted again from the next turn of the
 * event loop, and succeed once there is space; an empty record is tried every 2 s meanwhile,
 * so health() says when that is.
 */
import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store, StoreOp } from './store.js';
import { encodeRecord, readStoreFiles, SNAPSHOT, truncateFile, WAL, writeFileWhole } from './store-files.js';
import { lockStoreDir, unlockStoreDir } from './store-lock.js';
import { SlicedError } from '../core/errors.js';
import { formatSizeApprox } from '../core/units.js';
import { fsSpace } from '../kernel/fs-space.js';

/** After a failed write, an empty record is tried this often until one succeeds (see health()). */
const PROBE_MS = 2000;

export interface EmbeddedStoreOptions {
  /** Compact once the log holds this many transactions. */
  compactAfter?: number;
}

/** Whether the store can write now; shown in status and metrics. */
export interface StoreHealth {
  /** Why the last write failed (a sentence), or null when the last write succeeded. */
  error: string | null;
  /** errno of that failure (ENOSPC, EDQUOT, EIO ...), or null. */
  errno: string | null;
  /** Since when writes fail (ISO time), or null. */
  since: string | null;
}

interface Pending {
  ops: readonly StoreOp[];
  resolve: () => void;
  reject: (err: Error) => void;
}

export class EmbeddedStore implements Store {
  private readonly dir: string;
  private readonly data = new Map<string, string>();
  private readonly compactAfter: number;
  private wal: FileHandle | null = null;
  private walRecords = 0;
  /** Length of the log up to its last durable record. */
  private walBytes = 0;
  private queue: Pending[] = [];
  private flushing = false;
  private closed = false;
  /** Set by a failed write, cleared by the next successful one. */
  private failure: { error: SlicedError; errno: string | null; since: Date } | null = null;
  /** The log may hold bytes of a failed write after walBytes: heal() before writing again. */
  private unverified = false;
  /** False from a failed write to the next turn of the event loop; see writeFailed(). */
  private accepting = true;
  /** Writes an empty record now and then while writes fail, so health() turns good by itself. */
  private probe: NodeJS.Timeout | null = null;
  /** Key of this store's directory in lockedHere while it holds the lock. */
  private lockKey: string | null = null;

  private constructor(dir: string, options: EmbeddedStoreOptions) {
    this.dir = dir;
    this.compactAfter = options.compactAfter ?? 2000;
  }

  static async open(dir: string, options: EmbeddedStoreOptions = {}): Promise<EmbeddedStore> {
    const store = new EmbeddedStore(dir, options);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      store.takeLock();
    } catch (err) {
      throw store.ioFailure(err, 'cannot open its directory');
    }
    try {
      store.load();
      store.wal = await open(join(dir, WAL), 'a', 0o600);
    } catch (err) {
      store.releaseLock();
      throw store.ioFailure(err, 'cannot open its log');
    }
    return store;
  }

  /** Whether writes succeed now. */
  health(): StoreHealth {
    const f = this.failure;
    return f ? { error: f.error.message, errno: f.errno, since: f.since.toISOString() } : { error: null, errno: null, since: null };
  }

  /** A system error as one sentence naming the directory, the errno and, when full, the space left. */
  private ioFailure(err: unknown, what: string): Error {
    if (err instanceof SlicedError || typeof (err as NodeJS.ErrnoException).code !== 'string') return err as Error;
    const errno = (err as NodeJS.ErrnoException).code!;
    let reason = (err as Error).message;
    if (errno === 'ENOSPC' || errno === 'EDQUOT') {
      const space = fsSpace(this.dir);
      const left = space
        ? `; ${formatSizeApprox(space.freeBytes)} of ${formatSizeApprox(space.totalBytes)} free, ${space.freeInodes} free inodes`
        : '';
      reason = errno === 'ENOSPC' ? `no space left on its filesystem (ENOSPC${left})` : `the disk quota is exhausted (EDQUOT${left})`;
    }
    return new SlicedError('EIO', `state store ${this.dir} ${what}: ${reason}`, { errno });
  }

  private takeLock(): void {
    this.lockKey = lockStoreDir(this.dir);
  }

  private releaseLock(): void {
    unlockStoreDir(this.dir, this.lockKey);
    this.lockKey = null;
  }

  private load(): void {
    const found = readStoreFiles(this.dir);
    // A crash during the last append: that transaction was never acknowledged.
    if (found.fileBytes > found.walBytes) truncateFile(join(this.dir, WAL), found.walBytes);
    for (const [key, value] of found.data) this.data.set(key, value);
    this.walRecords = found.records;
    this.walBytes = found.walBytes;
  }

  private apply(ops: readonly StoreOp[]): void {
    for (const op of ops) {
      if (op.type === 'put') this.data.set(op.key, op.value);
      else this.data.delete(op.key);
    }
  }

  async range(prefix: string): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const [key, value] of this.data) if (key.startsWith(prefix)) found.set(key, value);
    return found;
  }

  async get(key: string): Promise<string | undefined> {
    return this.data.get(key);
  }

  txn(ops: readonly StoreOp[]): Promise<void> {
    if (this.closed) return Promise.reject(new SlicedError('EIO', 'store is closed'));
    if (!this.accepting && this.failure) return Promise.reject(this.failure.error);
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      const bytes = Buffer.from(batch.map((p) => encodeRecord(p.ops)).join(''));
      try {
        if (this.unverified) await this.heal();
        await this.append(bytes);
        await this.wal!.datasync();
      } catch (err) {
        await this.writeFailed(err, batch);
        continue;
      }
      this.walBytes += bytes.length;
      this.failure = null;
      if (this.probe) clearInterval(this.probe);
      this.probe = null;
      for (const pending of batch) {
        this.apply(pending.ops);
        this.walRecords++;
        pending.resolve();
      }
      if (this.walRecords >= this.compactAfter) {
        try {
          await this.compact();
        } catch {
          // The log still holds everything; compaction is retried after the next batch.
        }
      }
    }
    this.flushing = false;
  }

  /** Write all of `bytes`: near a full filesystem write() may take only part of them. */
  private async append(bytes: Buffer): Promise<void> {
    for (let done = 0; done < bytes.length;) {
      const { bytesWritten } = await this.wal!.write(bytes, done, bytes.length - done);
      if (bytesWritten <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      done += bytesWritten;
    }
  }

  /**
   * Heal first (so the failed write's bytes do not hold on to space), then reject the batch
   * and every transaction queued behind it meanwhile: a client that queued writes depending
   * on the failed ones (the agent does) learns of the failure from these rejections, before
   * the store takes a new write at the next turn of the event loop.
   */
  private async writeFailed(err: unknown, batch: Pending[]): Promise<void> {
    const errno = typeof (err as NodeJS.ErrnoException).code === 'string' ? (err as NodeJS.ErrnoException).code! : null;
    const error = this.ioFailure(err, 'cannot write its log');
    const failure =
      error instanceof SlicedError ? error : new SlicedError('EIO', `state store ${this.dir} cannot write its log: ${error.message}`);
    this.failure = { error: failure, errno, since: this.failure?.since ?? new Date() };
    this.unverified = true;
    try {
      await this.heal();
    } catch {
      // Tried again before the next write.
    }
    const rejected = [...batch, ...this.queue];
    this.queue = [];
    this.accepting = false;
    setImmediate(() => (this.accepting = true));
    if (!this.probe) {
      this.probe = setInterval(() => void this.txn([]).catch(() => undefined), PROBE_MS);
      this.probe.unref();
    }
    for (const pending of rejected) pending.reject(failure);
  }

  /**
   * Make the files match what was acknowledged: cut the log back to its last durable record,
   * sync, and read snapshot and log back from disk. If they differ from memory (a failed
   * sync may have dropped pages), the snapshot is rewritten from memory and checked again.
   */
  private async heal(): Promise<void> {
    await this.wal!.truncate(this.walBytes);
    await this.wal!.sync();
    if (!this.verify()) {
      await this.compact();
      if (!this.verify())
        throw new SlicedError(
          'EIO',
          `state store ${this.dir}: the snapshot and log read back from disk differ from the acknowledged state, even after rewriting them`,
        );
    }
    this.unverified = false;
  }

  private verify(): boolean {
    try {
      const found = readStoreFiles(this.dir);
      if (found.fileBytes !== this.walBytes || found.walBytes !== this.walBytes || found.data.size !== this.data.size) return false;
      for (const [key, value] of this.data) if (found.data.get(key) !== value) return false;
      return true;
    } catch {
      return false;
    }
  }

  private async compact(): Promise<void> {
    await writeFileWhole(
      join(this.dir, `${SNAPSHOT}.tmp`),
      join(this.dir, SNAPSHOT),
      JSON.stringify({ data: Object.fromEntries(this.data) }),
    );
    // The snapshot now holds every logged change; replaying the log over it again would be
    // harmless, so a crash before this truncation loses nothing.
    await this.wal!.truncate(0);
    await this.wal!.sync();
    this.walRecords = 0;
    this.walBytes = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.probe) clearInterval(this.probe);
    while (this.flushing) await new Promise((r) => setTimeout(r, 2));
    await this.wal?.close();
    this.releaseLock();
  }
}
