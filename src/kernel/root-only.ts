/**
 * Checks that a directory sliced is going to use (and may have to create) is one only root
 * can change, without creating anything: the start validates every such path before it
 * touches the kernel or the state directory.
 */
import { lstatSync, realpathSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { SlicedError } from '../core/errors.js';

/** What a file is, for messages that refuse it. */
export function describeFile(stats: Stats): string {
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  return 'a special file';
}

/**
 * Refuse any of `paths` that someone but root could change: one that exists must be a
 * directory owned by root and not writable by group or others; every existing ancestor (for
 * a path still to be created, from the one mkdir will create it in) must belong to root and
 * not be writable by group or others unless sticky, like /tmp. A path unsafe itself is named
 * before one unsafe through a parent, so the message names the directory the operator gave
 * (a vsys directory 0777 rather than the state directory inside it). assertRootOnlyDirectory
 * checks each directory again once it is made.
 */
export function assertRootOnlyPaths(paths: ReadonlyArray<readonly [path: string, what: string]>): void {
  const problems = paths.map(([path, what]) => rootOnlyProblem(path, what)).filter((p) => p !== null);
  const first = problems.find((p) => p.own) ?? problems[0];
  if (first) throw first.error;
}

/**
 * Refuse a directory that exists now and that anyone but root could change: it and every
 * ancestor must belong to root and not be writable by group or others (ancestors may be
 * sticky, like /tmp).
 */
export function assertRootOnlyDirectory(path: string, what: string): void {
  try {
    realpathSync(path);
  } catch (err) {
    throw new SlicedError('ENOENT', `${what} ${path} cannot be used: ${(err as Error).message}`);
  }
  const problem = rootOnlyProblem(path, what);
  if (problem) throw problem.error;
}

/** The first problem of `path`, and whether it is the path itself rather than a parent. */
function rootOnlyProblem(path: string, what: string): { own: boolean; error: SlicedError } | null {
  // The deepest part of the path that exists, and whether that is the path itself.
  let dir = resolve(path);
  let own = true;
  for (;;) {
    try {
      lstatSync(dir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        return { own: true, error: new SlicedError('EPERM', `${what} ${path} cannot be checked: ${(err as Error).message}`) };
      dir = dirname(dir);
      own = false;
    }
  }
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (err) {
    return { own: true, error: new SlicedError('ENOENT', `${what} ${path} cannot be used: ${(err as Error).message}`) };
  }
  for (let at = real; ; at = dirname(at), own = false) {
    const stats = lstatSync(at);
    const mode = stats.mode & 0o7777;
    const problem = !stats.isDirectory()
      ? `is ${describeFile(stats)}, not a directory`
      : stats.uid !== 0
        ? `belongs to uid ${stats.uid}; it must belong to root`
        : (mode & 0o022) !== 0 && (own || (mode & 0o1000) === 0)
          ? `has mode ${mode.toString(8).padStart(4, '0')}; it must not be writable by group or others`
          : null;
    if (problem !== null) {
      const where = own ? `${what} ${path}` : `${what} ${path}: its parent ${at}`;
      return { own, error: new SlicedError('EPERM', `${where} ${problem} (only root may be able to change it)`) };
    }
    if (at === '/') return null;
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
