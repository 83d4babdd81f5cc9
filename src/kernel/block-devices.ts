/**
 * Block devices: naming (path or MAJ:MIN to MAJ:MIN), their I/O schedulers, and loop
 * devices backed by files (for tests and the benchmark). sliced changes a device's
 * scheduler only when an operator asks for it (`slicectl io enable-bfq DEV`).
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseMajMin, type BlockDevice, type WeightConditions } from '../core/io.js';
import { SlicedError } from '../core/errors.js';

export type { BlockDevice } from '../core/io.js';

const SYS = '/sys';

function kind(path: string): string {
  const st = statSync(path);
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a device';
}

/**
 * Resolve a device the operator named, by path ("/dev/vdb") or "MAJ:MIN", to MAJ:MIN.
 * Refuses what does not exist, what is not a block device, and partitions (the kernel's
 * throttling and BFQ weights apply to whole disks).
 */
export function resolveBlockDevice(name: string): { device: string; path: string | null } {
  const allowed = 'name a whole block device by path (like /dev/vdb) or as MAJ:MIN (like 253:16)';
  let device = parseMajMin(name);
  let path: string | null = null;
  if (device === null) {
    if (!name.startsWith('/'))
      throw new SlicedError('EINVAL', `device ${JSON.stringify(name)} is neither an absolute path nor MAJ:MIN; ${allowed}`);
    let rdev: bigint;
    try {
      const st = statSync(name, { bigint: true });
      if (!st.isBlockDevice())
        throw new SlicedError('EINVAL', `device ${JSON.stringify(name)} is ${kind(name)}, not a block device; ${allowed}`);
      rdev = st.rdev;
    } catch (err) {
      if (err instanceof SlicedError) throw err;
      throw new SlicedError('ENOENT', `device ${JSON.stringify(name)} does not exist; ${allowed}`);
    }
    device = majMinOf(rdev);
    path = name;
  }
  const sys = join(SYS, 'dev', 'block', device);
  if (!existsSync(sys)) throw new SlicedError('ENOENT', `block device ${JSON.stringify(name)} does not exist (no ${sys}); ${allowed}`);
  if (existsSync(join(sys, 'partition'))) {
    const disk = basename(join(readlinkSync(sys), '..'));
    throw new SlicedError(
      'EINVAL',
      `device ${JSON.stringify(name)} is a partition of ${disk}; I/O weights and caps apply to whole disks: name /dev/${disk}`,
    );
  }
  return { device, path };
}

/** A dev_t as MAJ:MIN. Linux: major in bits 8..19 and 32..43, minor in bits 0..7 and 20..31. */
function majMinOf(rdev: bigint): string {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return `${major}:${minor}`;
}

/** MAJ:MIN of the block device (whole disk or partition) at `path`, following links; null when there is none. */
export function blockDeviceNumber(path: string): string | null {
  try {
    const st = statSync(path, { bigint: true });
    return st.isBlockDevice() ? majMinOf(st.rdev) : null;
  } catch {
    return null;
  }
}

export function blockDeviceExists(device: string): boolean {
  return existsSync(join(SYS, 'dev', 'block', device));
}

/** The scheduler of a device: the bracketed entry of queue/scheduler. */
export function readScheduler(device: string): { active: string | null; available: string[] } {
  try {
    const text = readFileSync(join(SYS, 'dev', 'block', device, 'queue', 'scheduler'), 'utf8').trim();
    const available = text.split(/\s+/).map((s) => s.replace(/^\[|\]$/g, ''));
    return { active: /\[([^\]]+)\]/.exec(text)?.[1] ?? null, available };
  } catch {
    return { active: null, available: [] };
  }
}

/** Whole block devices of the node (from /sys/block). */
export function listBlockDevices(): BlockDevice[] {
  const out: BlockDevice[] = [];
  for (const name of readdirSync(join(SYS, 'block')).sort()) {
    try {
      const device = readFileSync(join(SYS, 'block', name, 'dev'), 'utf8').trim();
      const { active, available } = readScheduler(device);
      out.push({ device, name, scheduler: active, schedulers: available });
    } catch {
      // Device went away while listing.
    }
  }
  return out;
}

/** True when some block device lists bfq among its schedulers (built in, or its module loaded). */
function bfqOffered(): boolean {
  return listBlockDevices().some((d) => d.schedulers.includes('bfq'));
}

const MODPROBE_TIMEOUT_MS = 10_000;
let bfqLoadFailure: string | null = null;

/**
 * Load the bfq module when no device offers bfq yet: `modprobe bfq`, asynchronous, killed
 * after 10 s. Kernel builds differ: bfq may be built in, a module, or absent, and a host
 * may not even have modprobe. Loading changes no device's scheduler. Returns null when bfq
 * is offered afterwards, else why not (also kept for weightConditions).
 */
export async function loadBfq(): Promise<string | null> {
  if (bfqOffered()) return (bfqLoadFailure = null);
  const problem = await new Promise<string | null>((resolve) => {
    execFile('modprobe', ['bfq'], { timeout: MODPROBE_TIMEOUT_MS, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, _stdout, stderr) => {
      if (!err) return resolve(null);
      const e = err as NodeJS.ErrnoException & { killed?: boolean };
      if (e.code === 'ENOENT') return resolve('modprobe is not installed (Debian package kmod)');
      if (e.killed) return resolve(`modprobe bfq gave no answer within ${MODPROBE_TIMEOUT_MS} ms and was killed`);
      resolve(stderr.trim().split('\n')[0] || `modprobe bfq failed: ${e.message}`);
    });
  });
  bfqLoadFailure = problem ?? (bfqOffered() ? null : 'modprobe bfq succeeded, yet no block device offers bfq');
  return bfqLoadFailure;
}

/**
 * Switch a device the operator named to BFQ, loading the bfq module first when the kernel
 * does not offer it yet; returns the scheduler it had before.
 */
export async function enableBfq(name: string): Promise<{ device: string; path: string | null; previous: string | null }> {
  const { device, path } = resolveBlockDevice(name);
  let { active, available } = readScheduler(device);
  if (active === 'bfq') return { device, path, previous: active };
  if (!available.includes('bfq') && available.length > 0) {
    await loadBfq();
    ({ active, available } = readScheduler(device));
  }
  if (!available.includes('bfq')) {
    const why =
      available.length === 0
        ? 'it has no scheduler of its own (a stacked device): name the disks below it'
        : `loading the bfq module failed: ${bfqLoadFailure ?? 'the module is loaded, yet this device does not offer bfq'}`;
    throw new SlicedError(
      'EINVAL',
      `device ${JSON.stringify(name)} (${device}) offers the schedulers ${available.join(', ') || 'none'}, not bfq; ${why}`,
    );
  }
  try {
    writeFileSync(join(SYS, 'dev', 'block', device, 'queue', 'scheduler'), 'bfq');
  } catch (err) {
    throw new SlicedError('EIO', `kernel refused switching ${name} (${device}) to bfq: ${(err as Error).message}`);
  }
  return { device, path, previous: active };
}

/** The node-wide conditions for io.weight: the backend's answer for sliced's groups and the last bfq load. */
export function weightConditions(groups: string | null): WeightConditions {
  return { groups, bfqLoadFailure };
}

// ---- loop devices (tests and benchmarks) ------------------------------------------------------

export interface LoopDevice {
  /** /dev/loopN */
  path: string;
  /** MAJ:MIN */
  device: string;
  backingFile: string;
  /** Detach the loop device and delete the backing file; safe to call twice. */
  destroy(): void;
}

/**
 * A loop device over a new sparse file `<dir>/<prefix>-<random>.img` with direct I/O (so
 * reads reach the queue instead of the page cache of the backing file).
 */
export function createLoopDevice(options: { prefix: string; sizeMb: number; dir?: string }): LoopDevice {
  // Where loop is a module (a stock kernel, the v2 VM) nothing has loaded it yet.
  if (!existsSync('/dev/loop-control')) spawnSync('modprobe', ['loop'], { stdio: 'ignore', timeout: MODPROBE_TIMEOUT_MS });
  const backingFile = join(options.dir ?? '/tmp', `${options.prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}.img`);
  execFileSync('truncate', ['-s', `${options.sizeMb}M`, backingFile]);
  let path: string;
  try {
    path = execFileSync('losetup', ['--find', '--show', '--direct-io=on', backingFile], { encoding: 'utf8' }).trim();
  } catch (err) {
    rmSync(backingFile, { force: true });
    throw err;
  }
  let destroyed = false;
  return {
    path,
    device: resolveBlockDevice(path).device,
    backingFile,
    destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        execFileSync('losetup', ['-d', path]);
      } finally {
        rmSync(backingFile, { force: true });
      }
    },
  };
}

/**
 * BFQ's strict mode on a device of a test or benchmark: `strict_guarantees` on (always
 * idle for the queue in service, one request in the device at a time) and `low_latency`
 * off (no weight raising), or both back to BFQ's defaults. With the defaults, shares on a
 * loop device drift far from the weights (docs/BENCHMARKS.md, I/O). Not an operator
 * feature: the benchmark measured it starving a group under a mixed load.
 */
export function setBfqStrict(device: string, strict: boolean): void {
  const iosched = join(SYS, 'dev', 'block', device, 'queue', 'iosched');
  writeFileSync(join(iosched, 'strict_guarantees'), strict ? '1' : '0');
  writeFileSync(join(iosched, 'low_latency'), strict ? '0' : '1');
}
