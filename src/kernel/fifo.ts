/**
 * FIFOs and directories for vsys, made safe against a slice that controls one of the
 * directories involved.
 *
 * The layout makes path operations race-free: every path touched here is
 * `<root-only directory>/<slice>/<one name>`. The slice cannot rename or replace its own
 * directory (the parent belongs to root), so only the last component can be swapped under
 * us; it is always opened with O_NOFOLLOW and checked with fstat (type, owner, inode)
 * before anything is done with it, and changes (owner, mode) go through that fd. mkfifo
 * never follows a symlink either (it fails with EEXIST). Node has no mkfifo(3), so
 * coreutils' mkfifo runs once per batch with umask 077 (no -m: its chmod step works on a
 * path after the fact), as the slice's own user: a FIFO appears already the slice's, so a
 * slice that opens it the moment it appears never meets a root-owned one (EACCES), and
 * making it needs no privilege in the slice's directory at all.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants as C,
  fchmodSync,
  fchownSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  realpathSync,
  rmSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { SlicedError } from '../core/errors.js';

/** A FIFO or directory that is not what sliced made: refused, never followed or replaced. */
export class RefusedFile extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

function describe(stats: Stats): string {
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  return 'a special file';
}

/**
 * Refuse a directory that anyone but root could change: it and every ancestor must belong
 * to root and not be writable by group or others (ancestors may be sticky, like /tmp).
 */
export function assertRootOnlyDirectory(path: string, what: string): void {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    throw new SlicedError('ENOENT', `${what} ${path} cannot be used: ${(err as Error).message}`);
  }
  for (let dir = real, own = true; ; dir = dirname(dir), own = false) {
    const stats = lstatSync(dir);
    const mode = stats.mode & 0o7777;
    const problem = !stats.isDirectory()
      ? `is ${describe(stats)}, not a directory`
      : stats.uid !== 0
        ? `belongs to uid ${stats.uid}; it must belong to root`
        : (mode & 0o022) !== 0 && (own || (mode & 0o1000) === 0)
          ? `has mode ${mode.toString(8).padStart(4, '0')}; it must not be writable by group or others`
          : null;
    if (problem !== null) {
      const where = own ? `${what} ${path}` : `${what} ${path}: its parent ${dir}`;
      throw new SlicedError('EPERM', `${where} ${problem} (only root may be able to change it)`);
    }
    if (dir === '/') return;
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

function openNoFollow(path: string, flags: number): number {
  try {
    return openSync(path, flags | C.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      let found = 'not what was expected';
      try {
        found = describe(lstatSync(path));
      } catch {
        // Gone again.
      }
      throw new RefusedFile(path, `is ${found}; refused (never followed)`);
    }
    throw err;
  }
}

/** Create FIFOs as uid:gid (mode 0600); existing entries are left alone. */
export function makeFifos(paths: readonly string[], owner: { uid: number; gid: number }): void {
  if (paths.length === 0) return;
  const result = spawnSync('/bin/sh', ['-c', 'umask 077; exec mkfifo -- "$@"', 'mkfifo', ...paths], { encoding: 'utf8', uid: owner.uid, gid: owner.gid });
  if (result.error) throw new SlicedError('EIO', `cannot run mkfifo as uid ${owner.uid}: ${result.error.message}`);
  // Failures (mostly "File exists") surface when the caller adopts each path.
}

export interface FifoCheck {
  uid: number;
  /** The inode recorded when the FIFO was adopted: anything else at the path is refused. */
  ino?: number;
}

/**
 * Open a FIFO without following a symlink and without blocking, and check it is a FIFO
 * owned by `expect.uid` (or root, before adoption) and, if given, the recorded inode.
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
      ? `is ${describe(stats)}, not a FIFO`
      : stats.uid !== expect.uid && stats.uid !== 0
        ? `belongs to uid ${stats.uid}, not the slice's uid ${expect.uid}`
        : expect.ino !== undefined && stats.ino !== expect.ino
          ? `was replaced (inode ${stats.ino}, sliced made ${expect.ino})`
          : null;
    if (problem !== null) throw new RefusedFile(path, `${problem}; refused`);
    return { fd, ino: stats.ino };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * Take a FIFO into use for a slice: open it for reading (never blocks), check it, give it
 * to uid:gid with mode 0600 through the fd. Returns the open fd (the caller may keep it as
 * its reader) and the inode to check later opens against.
 */
export function adoptFifo(path: string, uid: number, gid: number): { fd: number; ino: number } {
  const opened = openFifo(path, 'read', { uid });
  try {
    fchownSync(opened.fd, uid, gid);
    fchmodSync(opened.fd, 0o600);
    return opened;
  } catch (err) {
    closeSync(opened.fd);
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
  return new RefusedFile(path, `is ${describe(stats)} (owner ${stats.uid}, inode ${stats.ino}), not the FIFO sliced made (inode ${ino}); refused`);
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
