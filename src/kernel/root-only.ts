/**
 * Checks that a directory sliced is going to use (and may have to create) is one only root
 * can change, without creating anything: the start validates every such path before it
 * touches the kernel or the state directory.
 */
import { lstatSync, realpathSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { SlicedError } from '../core/errors.js';

function describe(stats: Stats): string {
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isFile()) return 'a regular file';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  return 'a special file';
}

/**
 * Refuse `path` unless only root can change it: when it exists it must be a directory
 * owned by root and not writable by group or others; every existing ancestor (for a path
 * still to be created, from the one mkdir will create it in) must belong to root and not be
 * writable by group or others unless sticky, like /tmp. The messages match
 * assertRootOnlyDirectory's, which checks the directory again once it is made.
 */
export function assertRootOnlyPath(path: string, what: string): void {
  // The deepest part of the path that exists, and whether that is the path itself.
  let dir = resolve(path);
  let own = true;
  for (;;) {
    try {
      lstatSync(dir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SlicedError('EPERM', `${what} ${path} cannot be checked: ${(err as Error).message}`);
      dir = dirname(dir);
      own = false;
    }
  }
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (err) {
    throw new SlicedError('ENOENT', `${what} ${path} cannot be used: ${(err as Error).message}`);
  }
  for (let at = real; ; at = dirname(at), own = false) {
    const stats = lstatSync(at);
    const mode = stats.mode & 0o7777;
    const problem = !stats.isDirectory()
      ? `is ${describe(stats)}, not a directory`
      : stats.uid !== 0
        ? `belongs to uid ${stats.uid}; it must belong to root`
        : (mode & 0o022) !== 0 && (own || (mode & 0o1000) === 0)
          ? `has mode ${mode.toString(8).padStart(4, '0')}; it must not be writable by group or others`
          : null;
    if (problem !== null) {
      const where = own ? `${what} ${path}` : `${what} ${path}: its parent ${at}`;
      throw new SlicedError('EPERM', `${where} ${problem} (only root may be able to change it)`);
    }
    if (at === '/') return;
  }
}

/** Longest path of a Unix socket (sun_path holds 108 bytes with the terminating NUL). */
export const SOCKET_PATH_MAX = 107;

export function assertSocketPath(path: string, what: string): void {
  const bytes = Buffer.byteLength(resolve(path));
  if (bytes > SOCKET_PATH_MAX) {
    throw new SlicedError('EINVAL', `${what} ${path} is ${bytes} bytes long; a Unix socket path may have at most ${SOCKET_PATH_MAX}`);
  }
}
