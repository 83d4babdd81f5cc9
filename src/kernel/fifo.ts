/**
 * FIFOs and directories for vsys, made safe against a slice that controls one of the
 * directories involved.
 *
 * The layout makes path operations race-free: every path touched in a slice's directory is
 * `<root-only directory>/<slice>/<one name>`. The slice cannot rename or replace its own
 * directory (the parent belongs to root), so only the last component can be swapped under
 * us; it is always opened with O_NOFOLLOW and checked with fstat (type, owner, inode)
 * before anything is done with it.
 *
 * Nothing ever runs as a slice's user to make its FIFOs (such a helper, outside the slice's
 * cgroups and network namespace, could be stopped by the slice, freezing whoever waits for
 * it, or taken over with ptrace), and the daemon never waits for a child: `FifoMaker`
 * (fifo-maker.ts) makes them as root, ahead of need, and hands them over.
 */
import {
  closeSync,
  constants as C,
  fchmodSync,
  fchownSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  rmSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { assertRootOnlyDirectory, describeFile } from './root-only.js';

/** A FIFO or directory that is not what sliced made: refused, never followed or replaced. */
export class RefusedFile extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

/** Create a root-owned directory (and parents) if missing, then check it is root-only. */
export function ensureRootDirectory(path: string, mode: number, what: string): void {
  mkdirSync(path, { recursive: true, mode });
  assertRootOnlyDirectory(path, what);
}

/** `<root>/<name>` as a directory owned by uid:gid with `mode`, changed only through an O_NOFOLLOW fd. */
export function ensureOwnedDirectory(root: string, name: string, uid: number, gid: number, mode: number): string {
  const path = join(root, name);
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const fd = openNoFollow(path, C.O_RDONLY | C.O_DIRECTORY | C.O_NONBLOCK);
  try {
    fchownSync(fd, uid, gid);
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Open `path` without following a symlink; a symlink (or a non-directory on the way) is refused. */
export function openNoFollow(path: string, flags: number): number {
  try {
    return openSync(path, flags | C.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      let found = 'not what was expected';
      try {
        found = describeFile(lstatSync(path));
      } catch {
        // Gone again.
      }
      throw new RefusedFile(path, `is ${found}; refused (never followed)`);
    }
    throw err;
  }
}

export interface FifoCheck {
  uid: number;
  /** The inode of the FIFO sliced made: anything else at the path is refused. */
  ino: number;
}

/**
 * Open a FIFO without following a symlink and without blocking, and check it is the FIFO
 * sliced made: a FIFO owned by `expect.uid` with the recorded inode (never root's or
 * another user's: nothing found at a slice's path is ever given to the slice).
 * Throws RefusedFile for anything else, or the errno error (ENXIO: no reader yet).
 *
 * 'read' and 'write' give non-blocking fds for the event loop. 'both' (O_RDWR, which never
 * waits for the other end on Linux) gives a blocking fd to hand to a script as its stdin or
 * stdout: a script reading a non-blocking stdin would stop at the first EAGAIN.
 */
export function openFifo(path: string, access: 'read' | 'write' | 'both', expect: FifoCheck): { fd: number; ino: number } {
  const fd = openNoFollow(path, access === 'read' ? C.O_RDONLY | C.O_NONBLOCK : access === 'write' ? C.O_WRONLY | C.O_NONBLOCK : C.O_RDWR);
  try {
    const stats = fstatSync(fd);
    const problem = !stats.isFIFO()
      ? `is ${describeFile(stats)}, not a FIFO`
      : stats.uid !== expect.uid
        ? `belongs to uid ${stats.uid}, not the slice's uid ${expect.uid}`
        : stats.ino !== expect.ino
          ? `was replaced (inode ${stats.ino}, sliced made ${expect.ino})`
          : null;
    if (problem !== null) throw new RefusedFile(path, `${problem}; refused`);
    return { fd, ino: stats.ino };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** What is at `path` now, without following it: 'ok' (our FIFO), 'missing', or the refusal. */
export function checkFifo(path: string, uid: number, ino: number): 'ok' | 'missing' | RefusedFile {
  let stats: Stats;
  try {
    stats = lstatSync(path);
  } catch {
    return 'missing';
  }
  if (stats.isFIFO() && stats.uid === uid && stats.ino === ino) return 'ok';
  return new RefusedFile(
    path,
    `is ${describeFile(stats)} (owner ${stats.uid}, inode ${stats.ino}), not the FIFO sliced made (inode ${ino}); refused`,
  );
}

/** Remove our FIFO; anything else the slice put there is left alone. */
export function removeFifo(path: string, uid: number, ino: number): void {
  if (checkFifo(path, uid, ino) !== 'ok') return;
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

/** Remove a slice's directory once the slice is gone (its processes have been stopped). */
export function removeDirectory(root: string, name: string): void {
  rmSync(join(root, name), { recursive: true, force: true });
}
