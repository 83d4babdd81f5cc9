/**
 * FifoMaker: makes the FIFOs of vsys without ever running anything as a slice's user and
 * without the daemon waiting for a child (see fifo.ts for the layout that makes the path
 * operations race-free). Node has no mkfifo(3), so it keeps a stock of FIFOs made by an
 * asynchronous `mkfifo` run as root (with a timeout) in a root-only area beside the slices'
 * directories, on the same filesystem. A FIFO is given to the slice there (fchown, fchmod: no
 * one else can reach it), kept there as the record of what sliced made, and hard-linked into
 * the slice's directory: link(2) fails on anything already at the name and never follows it,
 * and the FIFO is the slice's, mode 0600, from the moment it appears.
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
import { openFifo, openNoFollow, RefusedFile, removeFifo } from './fifo.js';
import { describeFile } from './root-only.js';

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
