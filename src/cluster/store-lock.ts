/**
 * The lock of a store directory: only one process may open it at a time. The lock file holds
 * the pid of its holder; a lock whose holder is gone is stale and taken over.
 */
import { closeSync, constants, openSync, readFileSync, realpathSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SlicedError } from '../core/errors.js';
import { processExists } from '../kernel/procfs.js';

const LOCK = 'lock';

/**
 * Directories locked by this process. The lock file holds a pid, and a lock holding our own
 * pid is normally stale (left by an earlier process that had the same pid, as happens in
 * containers); only this set tells it apart from a store that is open here right now.
 */
const lockedHere = new Set<string>();

/** Take the lock of `dir` (which exists); returns the key that releases it (unlockStoreDir). */
export function lockStoreDir(dir: string): string {
  const path = join(dir, LOCK);
  const key = realpathSync(dir);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } catch (err) {
        // A full filesystem: an empty lock would read as stale and let a second daemon in.
        closeSync(fd);
        unlinkSync(path);
        throw err;
      }
      closeSync(fd);
      lockedHere.add(key);
      return key;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(path, 'utf8').trim());
      if (holder === process.pid && lockedHere.has(key)) {
        throw new SlicedError('EBUSY', `state directory ${dir} is already open in this process`);
      }
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processExists(holder)) {
        throw new SlicedError('EBUSY', `state directory ${dir} is in use by process ${holder} (another sliced?)`);
      }
      unlinkSync(path); // stale lock from a process that is gone
    }
  }
  throw new SlicedError('EBUSY', `cannot lock state directory ${dir}`);
}

/** Remove the lock file of `dir`, and forget `key` (null: this process did not take it). */
export function unlockStoreDir(dir: string, key: string | null): void {
  if (key !== null) lockedHere.delete(key);
  try {
    unlinkSync(join(dir, LOCK));
  } catch {
    // Already gone.
  }
}
