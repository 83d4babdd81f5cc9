/**
 * Embedded store for a single node: a snapshot plus a write-ahead log, both fsync'd.
 *
 * Each transaction is one line "<crc32> <json>" appended to wal.log and made durable with
 * fdatasync before it is acknowledged; transactions that arrive while a sync is in flight
 * are committed together (group commit). A torn last line (crash during a write) is dropped
 * at load; damage anywhere else stops the daemon rather than silently losing state. When
 * the log grows, the whole map is written to snapshot.json by write-fsync-rename and the log
 * starts over. Only one process may open a store directory at a time (lock file with pid).
 */
import { closeSync, constants, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, realpathSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Store, StoreOp } from './store.js';
import { SlicedError } from '../core/errors.js';

const SNAPSHOT = 'snapshot.json';
const WAL = 'wal.log';
const LOCK = 'lock';

/**
 * Directories locked by this process. The lock file holds a pid, and a lock holding our own
 * pid is normally stale (left by an earlier process that had the same pid, as happens in
 * containers); only this set tells it apart from a store that is open here right now.
 */
const lockedHere = new Set<string>();

export interface EmbeddedStoreOptions {
  /** Compact once the log holds this many transactions. */
  compactAfter?: number;
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
  private queue: Pending[] = [];
  private flushing = false;
  private closed = false;
  /** Key of this store's directory in lockedHere while it holds the lock. */
  private lockKey: string | null = null;

  private constructor(dir: string, options: EmbeddedStoreOptions) {
    this.dir = dir;
    this.compactAfter = options.compactAfter ?? 2000;
  }

  static async open(dir: string, options: EmbeddedStoreOptions = {}): Promise<EmbeddedStore> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const store = new EmbeddedStore(dir, options);
    store.takeLock();
    try {
      store.load();
      store.wal = await open(join(dir, WAL), 'a', 0o600);
    } catch (err) {
      store.releaseLock();
      throw err;
    }
    return store;
  }

  private takeLock(): void {
    const path = join(this.dir, LOCK);
    const key = realpathSync(this.dir);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        lockedHere.add(key);
        this.lockKey = key;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = Number(readFileSync(path, 'utf8').trim());
        if (holder === process.pid && lockedHere.has(key)) {
          throw new SlicedError('EBUSY', `state directory ${this.dir} is already open in this process`);
        }
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
          throw new SlicedError('EBUSY', `state directory ${this.dir} is in use by process ${holder} (another sliced?)`);
        }
        unlinkSync(path); // stale lock from a process that is gone
      }
    }
    throw new SlicedError('EBUSY', `cannot lock state directory ${this.dir}`);
  }

  private releaseLock(): void {
    if (this.lockKey !== null) lockedHere.delete(this.lockKey);
    this.lockKey = null;
    try {
      unlinkSync(join(this.dir, LOCK));
    } catch {
      // Already gone.
    }
  }

  private load(): void {
    const snapshotPath = join(this.dir, SNAPSHOT);
    if (existsSync(snapshotPath)) {
      let parsed: { data: Record<string, string> };
      try {
        parsed = JSON.parse(readFileSync(snapshotPath, 'utf8')) as { data: Record<string, string> };
        if (typeof parsed?.data !== 'object' || parsed.data === null) throw new Error('no "data" mapping');
      } catch (err) {
        // Snapshots are written to a temporary file, fsync'd and renamed: damage here is not a crash.
        throw new SlicedError('EIO', `state snapshot ${snapshotPath} is damaged (${(err as Error).message}); refusing to start with partial state: restore it from a backup`);
      }
      for (const [key, value] of Object.entries(parsed.data)) this.data.set(key, value);
    }
    const walPath = join(this.dir, WAL);
    if (!existsSync(walPath)) return;
    const text = readFileSync(walPath, 'utf8');
    const lines = text.split('\n');
    // A complete log ends with "\n", so the last element is normally empty.
    if (lines[lines.length - 1] === '') lines.pop();
    let goodBytes = 0;
    for (let i = 0; i < lines.length; i++) {
      const ops = decodeRecord(lines[i]!);
      if (ops === null) {
        if (i === lines.length - 1) {
          // A crash during the last append: that transaction was never acknowledged.
          truncateFile(walPath, goodBytes);
          break;
        }
        throw new SlicedError('EIO', `state log ${walPath} is damaged at line ${i + 1}; refusing to start with partial state`);
      }
      this.apply(ops);
      this.walRecords++;
      goodBytes += Buffer.byteLength(lines[i]!) + 1;
    }
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
      const text = batch.map((p) => encodeRecord(p.ops)).join('');
      try {
        await this.wal!.write(text);
        await this.wal!.datasync();
      } catch (err) {
        const failure = new SlicedError('EIO', `cannot write state log: ${(err as Error).message}`);
        for (const pending of batch) pending.reject(failure);
        continue;
      }
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

  private async compact(): Promise<void> {
    const tmp = join(this.dir, `${SNAPSHOT}.tmp`);
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.write(JSON.stringify({ data: Object.fromEntries(this.data) }));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, join(this.dir, SNAPSHOT));
    syncDir(this.dir);
    // The snapshot now holds every logged change; replaying the log over it again would be
    // harmless, so a crash before this truncation loses nothing.
    await this.wal!.truncate(0);
    await this.wal!.sync();
    this.walRecords = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing) await new Promise((r) => setTimeout(r, 2));
    await this.wal?.close();
    this.releaseLock();
  }
}

function encodeRecord(ops: readonly StoreOp[]): string {
  const json = JSON.stringify(ops);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

function decodeRecord(line: string): StoreOp[] | null {
  const space = line.indexOf(' ');
  if (space !== 8) return null;
  const json = line.slice(space + 1);
  if (crc32(json).toString(16).padStart(8, '0') !== line.slice(0, space)) return null;
  try {
    return JSON.parse(json) as StoreOp[];
  } catch {
    return null;
  }
}

function truncateFile(path: string, bytes: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
