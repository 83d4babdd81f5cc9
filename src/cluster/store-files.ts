/**
 * The embedded store's files on disk (see embedded-store.ts for the contract): the snapshot
 * (snapshot.json, the whole map) and the write-ahead log (wal.log, one line "<crc32> <json>"
 * per transaction), how records are encoded and checked, and reading both back.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { StoreOp } from './store.js';
import { SlicedError } from '../core/errors.js';

export const SNAPSHOT = 'snapshot.json';
export const WAL = 'wal.log';

export interface StoreFiles {
  data: Map<string, string>;
  /** Records in the log and the bytes they take, up to the last good one. */
  records: number;
  walBytes: number;
  /** Size of the log file: more than walBytes when its last record is torn. */
  fileBytes: number;
}

/**
 * Read snapshot and log as they are on disk. A torn last record is left out (the caller
 * decides whether to cut it off); damage anywhere else is an EIO naming the file.
 */
export function readStoreFiles(dir: string): StoreFiles {
  const data = new Map<string, string>();
  const snapshotPath = join(dir, SNAPSHOT);
  if (existsSync(snapshotPath)) {
    let parsed: { data: Record<string, string> };
    try {
      parsed = JSON.parse(readFileSync(snapshotPath, 'utf8')) as { data: Record<string, string> };
      if (typeof parsed?.data !== 'object' || parsed.data === null) throw new Error('no "data" mapping');
    } catch (err) {
      // Snapshots are written to a temporary file, fsync'd and renamed: damage here is not a crash.
      throw new SlicedError(
        'EIO',
        `state snapshot ${snapshotPath} is damaged (${(err as Error).message}); refusing to start with partial state: restore it ` +
          `from a backup`,
      );
    }
    for (const [key, value] of Object.entries(parsed.data)) data.set(key, value);
  }
  const walPath = join(dir, WAL);
  if (!existsSync(walPath)) return { data, records: 0, walBytes: 0, fileBytes: 0 };
  const raw = readFileSync(walPath);
  const lines = raw.toString('utf8').split('\n');
  // A complete log ends with "\n", so the last element is normally empty.
  if (lines[lines.length - 1] === '') lines.pop();
  const complete = raw.length === 0 || raw[raw.length - 1] === 0x0a;
  let records = 0;
  let walBytes = 0;
  for (let i = 0; i < lines.length; i++) {
    const last = i === lines.length - 1;
    const ops = decodeRecord(lines[i]!);
    // A record is written with its newline; one without it was cut short like any torn one.
    if (ops === null || (last && !complete)) {
      // A crash during the last append: that transaction was never acknowledged.
      if (last) break;
      throw new SlicedError('EIO', `state log ${walPath} is damaged at line ${i + 1}; refusing to start with partial state`);
    }
    for (const op of ops) {
      if (op.type === 'put') data.set(op.key, op.value);
      else data.delete(op.key);
    }
    records++;
    walBytes += Buffer.byteLength(lines[i]!) + 1;
  }
  return { data, records, walBytes, fileBytes: raw.length };
}

/** One log line: the crc32 of the JSON, a space, the JSON, a newline. */
export function encodeRecord(ops: readonly StoreOp[]): string {
  const json = JSON.stringify(ops);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

/** The operations of one log line, or null when it is torn or damaged (length, checksum, JSON). */
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

/** Cut a file to `bytes` and make that durable. */
export function truncateFile(path: string, bytes: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Make a directory's entries (a rename into it) durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replace `file` with `text` whole or not at all: written to `temporary` (mode 0600), fsync'd,
 * renamed over `file`, and the rename made durable. A partial temporary file (no space left)
 * is removed, so it does not hold on to the space that is short.
 */
export async function writeFileWhole(temporary: string, file: string, text: string): Promise<void> {
  try {
    const handle = await open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    await unlink(temporary).catch(() => undefined);
    throw err;
  }
  await rename(temporary, file);
  syncDir(dirname(file));
}
