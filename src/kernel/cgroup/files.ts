/** Small, synchronous helpers for cgroup control files (pseudo-files: reads and writes are cheap). */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SlicedError } from '../../core/errors.js';
import { parsePressure } from '../node-stats.js';
import { readProcCgroups, type ProcCgroupLine } from '../procfs.js';

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw kernelError('reading', path, err);
  }
}

export function readNumber(path: string): number {
  return Number(readText(path).trim());
}

/** Parse "key value" lines (cpu.stat, memory.events, memory.oom_control). */
export function readKeyValues(path: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of readText(path).split('\n')) {
    const space = line.indexOf(' ');
    if (space > 0) values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

export function writeText(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (err) {
    throw kernelError(`writing ${JSON.stringify(value)} to`, path, err);
  }
}

export function readIds(path: string): number[] {
  const text = readText(path);
  const ids: number[] = [];
  for (const line of text.split('\n')) if (line) ids.push(Number(line));
  return ids;
}

export function makeDir(path: string): void {
  try {
    mkdirSync(path, { recursive: true });
  } catch (err) {
    throw kernelError('creating', path, err);
  }
}

export function removeDir(path: string): void {
  if (!existsSync(path)) return;
  try {
    rmdirSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw kernelError('removing', path, err);
  }
}

export function childDirs(path: string): string[] {
  try {
    return readdirSync(path, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw kernelError('listing', path, err);
  }
}

/**
 * The directory of process `pid`'s group under `mount`, in the hierarchy whose /proc/PID/cgroup
 * line `inHierarchy` picks; null when the process is gone or has no such line.
 */
export function processGroupDirectory(pid: number, mount: string, inHierarchy: (line: ProcCgroupLine) => boolean): string | null {
  try {
    const line = readProcCgroups(pid).find(inHierarchy);
    // Relative, so the root group ("/") gives the mount itself, not "<mount>/", which the
    // agent's prefix check would not recognise as containing sliced's groups.
    return line ? join(mount, line.path.replace(/^\/+/, '')) : null;
  } catch {
    return null;
  }
}

/** SIGKILL each process; one already gone is not an error. */
export function killEach(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

function kernelError(action: string, path: string, err: unknown): SlicedError {
  const errno = (err as NodeJS.ErrnoException).code ?? 'error';
  const message = (err as Error).message ?? String(err);
  const code = errno === 'ESRCH' ? 'ESRCH' : errno === 'ENOENT' ? 'ENOENT' : 'EIO';
  return new SlicedError(code, `kernel refused ${action} ${path}: ${message}`, { errno, path });
}

/**
 * Reads small control files the control loop polls every period through descriptors kept
 * open (pread at offset 0 regenerates a cgroup file), about three times cheaper than
 * open+read+close. Descriptors are closed when their group is removed.
 */
export class PolledFiles {
  private readonly fds = new Map<string, number>();
  private readonly buffer = Buffer.alloc(4096);

  read(path: string): string {
    let fd = this.fds.get(path);
    if (fd === undefined) {
      try {
        fd = openSync(path, 'r');
      } catch (err) {
        throw kernelError('reading', path, err);
      }
      this.fds.set(path, fd);
    }
    try {
      const length = readSync(fd, this.buffer, 0, this.buffer.length, 0);
      return this.buffer.toString('latin1', 0, length);
    } catch (err) {
      // The group was removed and made again behind our back: reopen once.
      this.close(path);
      if ((err as NodeJS.ErrnoException).code === 'ENODEV') return this.read(path);
      throw kernelError('reading', path, err);
    }
  }

  /** Close descriptors of files in `dir` and below. */
  forget(dir: string): void {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    for (const path of [...this.fds.keys()]) if (path.startsWith(prefix)) this.close(path);
  }

  private close(path: string): void {
    const fd = this.fds.get(path);
    if (fd === undefined) return;
    this.fds.delete(path);
    try {
      closeSync(fd);
    } catch {
      // Already closed.
    }
  }
}

/** A group's pressure file, or null where the kernel has none (no PSI, or no such group). */
export function readPressureFile(path: string): { some: number; full: number } | null {
  try {
    return parsePressure(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

/** Devices listed in a per-device control file ("MAJ:MIN ..." lines). */
export function listedDevices(path: string): string[] {
  return readText(path)
    .split('\n')
    .map((line) => /^(\d+:\d+)\s/.exec(line)?.[1])
    .filter((device): device is string => device !== undefined);
}

/** pids.current, pids.max, pids.peak and pids.events of a group directory (same files on v1 and v2). */
export function readPidsFiles(dir: string): { current: number; max: number | null; peak: number | null; refused: number } {
  const max = readText(join(dir, 'pids.max')).trim();
  let peak: number | null = null;
  try {
    peak = Number(readFileSync(join(dir, 'pids.peak'), 'utf8').trim());
  } catch {
    // Older kernels have no pids.peak.
  }
  return {
    current: readNumber(join(dir, 'pids.current')),
    max: max === 'max' ? null : Number(max),
    peak,
    refused: readKeyValues(join(dir, 'pids.events')).get('max') ?? 0,
  };
}

/** Write pids.max: a count, or "max" for none. */
export function writePidsMax(dir: string, max: number | null): void {
  writeText(join(dir, 'pids.max'), max === null ? 'max' : String(max));
}
