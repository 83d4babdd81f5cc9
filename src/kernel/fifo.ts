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
 * it, or taken over with ptrace), and the daemon never waits for a child. Node has no
 * mkfifo(3), so `FifoMaker` keeps a stock of FIFOs made by an asynchronous `mkfifo` run as
 * root (with a timeout) in a root-only area beside the slices' directories, on the same
 * filesystem. A FIFO is given to the slice there (fchown, fchmod: no one else can reach it),
 * kept there as the record of what sliced made, and hard-linked into the slice's directory:
 * link(2) fails on anything already at the name and never follows it, and the FIFO is the
 * slice's, mode 0600, from the moment it appears.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  constants as C,
  fchmodSync,
  fchownSync,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { dirname, join } from 'node:path';
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

function openNoFollow(path: string, flags: number): number {
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

/**
 * The root-only area in the slices' root where FIFOs are made and recorded. Not a valid
 * slice name (those start with a letter or digit), so no slice's directory can be it.
 */
export const FIFO_AREA = '.sliced';
/** Fresh FIFOs kept ready, so that remaking a removed one never waits for mkfifo. */
const SPARE = 16;
/** The most FIFOs one mkfifo run makes. */
const MAX_BATCH = 256;
const MKFIFO_TIMEOUT_MS = 10_000;
const RETRY_MS = 5000;

export interface OpenedFifo {
  /** A reader (O_RDONLY|O_NONBLOCK) of the FIFO; the caller keeps or closes it. */
  fd: number;
  ino: number;
}

export interface FifoMakerOptions {
  /** Fresh FIFOs are in stock again after `reserve` or `make` found too few: ask again. */
  ready(): void;
  problem(message: string): void;
  /** A mkfifo running longer than this is killed (SIGKILL) and tried again later. */
  timeoutMs?: number;
}

/**
 * Makes FIFOs in slices' directories (`<sliceRoot>/<slice>/<file>`) and adopts the ones it
 * made before a restart. Its area `<sliceRoot>/.sliced/` (root, 0700) holds `stock/`, fresh
 * root-owned FIFOs, and `made/<slice>/<file>`, a hard link to each FIFO it put into a
 * slice's directory: the record of what sliced made, which survives a restart and keeps the
 * inode from being reused while recorded.
 */
export class FifoMaker {
  private readonly area: string;
  private readonly stockDir: string;
  private readonly madeDir: string;
  private stock: string[] = [];
  /** FIFOs `make` could not give since the last refill started. */
  private wanted = 0;
  private short = false;
  private child: ChildProcess | null = null;
  private retry: NodeJS.Timeout | null = null;
  private lastProblem: string | null = null;
  private serial = 0;
  private closed = false;

  constructor(
    private readonly sliceRoot: string,
    private readonly opts: FifoMakerOptions,
  ) {
    this.area = join(sliceRoot, FIFO_AREA);
    this.stockDir = join(this.area, 'stock');
    this.madeDir = join(this.area, 'made');
  }

  /** Make the area (the slices' root must be root-only already), empty the stock a crash may have left, fill it. */
  start(): void {
    for (const dir of [this.area, this.madeDir]) privateDirectory(dir);
    rmSync(this.stockDir, { recursive: true, force: true });
    privateDirectory(this.stockDir);
    this.refill();
  }

  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.child?.kill('SIGKILL');
  }

  /**
   * Whether `count` FIFOs can be made now. If not, none should be: `ready` says when, so
   * FIFOs asked for together appear together, and in the order asked for.
   */
  reserve(count: number): boolean {
    if (count === 0 || (!this.short && this.stock.length >= count)) return true;
    this.wanted += count;
    this.short = true;
    this.refill();
    return false;
  }

  /**
   * A fresh FIFO at `<slice>/<file>`, the owner's with mode 0600 from the moment it appears,
   * recorded. Null when the stock is empty (`ready` is called once it is filled again).
   * Throws RefusedFile when anything is at the name already: it is never replaced.
   */
  make(slice: string, file: string, owner: { uid: number; gid: number }): OpenedFifo | null {
    const dest = join(this.sliceRoot, slice, file);
    for (;;) {
      const staged = this.stock.pop();
      if (staged === undefined) {
        this.wanted++;
        this.short = true;
        this.refill();
        return null;
      }
      if (this.stock.length < SPARE / 2) this.refill();
      // The stock directory is root's alone: the path is what mkfifo made.
      const fd = openSync(staged, C.O_RDONLY | C.O_NONBLOCK | C.O_NOFOLLOW);
      try {
        const stats = fstatSync(fd);
        fchownSync(fd, owner.uid, owner.gid);
        fchmodSync(fd, 0o600);
        const record = join(this.madeDir, slice, file);
        privateDirectory(dirname(record));
        renameSync(staged, record);
        try {
          linkSync(record, dest);
        } catch (err) {
          unlinkQuietly(record);
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          throw new RefusedFile(dest, `${found(dest)}, not a FIFO sliced made; refused (never replaced)`);
        }
        return { fd, ino: stats.ino };
      } catch (err) {
        closeSync(fd);
        throw err;
      }
    }
  }

  /**
   * The FIFO sliced made at `<slice>/<file>` before (e.g. before a restart), opened and
   * checked: it must be the recorded inode and the slice's. Null when there is none to adopt
   * (then `make` one): nothing there, or a FIFO of the slice's that sliced did not record
   * (from a crash mid-way or an older sliced), which is removed. Anything else is refused,
   * never given to the slice nor used.
   */
  adopt(slice: string, file: string, uid: number): OpenedFifo | null {
    const dest = join(this.sliceRoot, slice, file);
    const record = join(this.madeDir, slice, file);
    const recorded = lstatOrNull(record);
    const stats = lstatOrNull(dest);
    if (recorded && stats && recorded.isFIFO() && stats.ino === recorded.ino && stats.dev === recorded.dev) {
      // Checked again through the fd: the slice may swap the entry meanwhile.
      if (stats.uid === uid) return openFifo(dest, 'read', { uid, ino: recorded.ino });
      unlinkQuietly(dest); // ours, made for an earlier user of the slice
      unlinkQuietly(record);
      return null;
    }
    if (recorded) unlinkQuietly(record);
    if (stats === null) return null;
    if (stats.isFIFO() && stats.uid === uid) {
      unlinkQuietly(dest); // in the slice's own directory, of its own: removing it gives nothing away
      return null;
    }
    throw new RefusedFile(dest, `${found(dest)}, not a FIFO sliced made; refused`);
  }

  /** Remove our FIFO at `<slice>/<file>` (anything else there is left alone) and its record. */
  remove(slice: string, file: string, uid: number, ino: number): void {
    removeFifo(join(this.sliceRoot, slice, file), uid, ino);
    unlinkQuietly(join(this.madeDir, slice, file));
  }

  /** Forget the records of a slice's FIFOs, except those of `keep`. */
  forget(slice: string, keep: ReadonlySet<string> = new Set()): void {
    const dir = join(this.madeDir, slice);
    if (keep.size === 0) return rmSync(dir, { recursive: true, force: true });
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      return;
    }
    for (const file of files) if (!keep.has(file)) unlinkQuietly(join(dir, file));
  }

  /** Forget the records of slices that no longer exist. */
  prune(slices: ReadonlySet<string>): void {
    for (const slice of readdirSync(this.madeDir)) if (!slices.has(slice)) this.forget(slice);
  }

  /** Top the stock up with an asynchronous mkfifo run as root; never waits for it. */
  private refill(): void {
    if (this.closed || this.child !== null || this.retry !== null) return;
    const count = Math.min(MAX_BATCH, SPARE + this.wanted - this.stock.length);
    if (count <= 0) return;
    this.wanted = 0;
    const paths = Array.from({ length: count }, () => join(this.stockDir, `f${++this.serial}`));
    const timeout = this.opts.timeoutMs ?? MKFIFO_TIMEOUT_MS;
    const child = execFile(
      'mkfifo',
      ['-m', '0600', '--', ...paths],
      { timeout, killSignal: 'SIGKILL', encoding: 'utf8' },
      (err, _stdout, stderr) => {
        this.child = null;
        if (this.closed) return;
        let made = 0;
        for (const path of paths) {
          const stats = lstatOrNull(path);
          if (stats?.isFIFO() && stats.uid === 0) {
            this.stock.push(path);
            made++;
          } else if (stats) unlinkQuietly(path);
        }
        if (err) {
          const why = err.killed ? `killed after ${timeout} ms` : stderr.trim() || err.message;
          const message = `cannot make FIFOs in ${this.stockDir} (mkfifo as root: ${why}); trying again in ${RETRY_MS / 1000} s`;
          if (message !== this.lastProblem) this.opts.problem(message);
          this.lastProblem = message;
          this.retry = setTimeout(() => {
            this.retry = null;
            this.refill();
          }, RETRY_MS);
          this.retry.unref();
        } else this.lastProblem = null;
        if (this.short && made > 0) {
          this.short = false;
          this.opts.ready();
        }
        this.refill();
      },
    );
    this.child = child;
  }
}

/** A directory of root's alone, in a directory only root can change. */
function privateDirectory(path: string): void {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const fd = openNoFollow(path, C.O_RDONLY | C.O_DIRECTORY);
  try {
    if (fstatSync(fd).uid !== 0) throw new RefusedFile(path, 'does not belong to root; refused');
    fchmodSync(fd, 0o700);
  } finally {
    closeSync(fd);
  }
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

/** What is at `path`, for a refusal. */
function found(path: string): string {
  const stats = lstatOrNull(path);
  return stats ? `is ${describeFile(stats)} (owner ${stats.uid}, inode ${stats.ino})` : 'was in the way';
}
