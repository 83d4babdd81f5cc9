/**
 * A group's I/O knobs read by meaning on either cgroup layout, for the I/O test and the I/O
 * benchmark: caps (v1 `blkio.throttle.*_device`, v2 `io.max`), the BFQ weight (v1
 * `blkio.bfq.weight`, v2 `io.bfq.weight`), byte counters (v1 `blkio.throttle.io_service_bytes_recursive`,
 * v2 `io.stat`), plain groups made without sliced (the benchmark's baseline), and null_blk
 * devices (a disk model for weights: one request at a time, a fixed service time).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IoCaps } from '../../src/core/model.js';
import { IO_CAP_FIELDS } from '../../src/core/io.js';
import { sumReadWrite } from '../../src/kernel/cgroup/v1.js';

const CGROUP = '/sys/fs/cgroup';

/** Where a daemon's I/O files are: its backend and its root group in the hierarchy holding them. */
export interface IoLayout {
  kind: 'v1' | 'v2';
  /** The daemon's root group (v1: in the blkio hierarchy; v2: in the unified one). */
  root: string;
}

/** From the daemon's status (`node.backend`, `node.cgroupRoots`). */
export function ioLayoutOf(node: { backend: string; cgroupRoots: Record<string, string> }): IoLayout {
  const root = node.backend === 'v1' ? node.cgroupRoots.blkio : node.cgroupRoots.unified;
  if (!root) throw new Error(`the daemon reports no I/O hierarchy: ${JSON.stringify(node.cgroupRoots)}`);
  return { kind: node.backend === 'v1' ? 'v1' : 'v2', root };
}

/** Why this host cannot run the I/O tests' cgroup parts (no blkio hierarchy on v1, no io controller on v2), or null. */
export function ioControllerSkipReason(): string | null {
  if (existsSync(join(CGROUP, 'cgroup.controllers'))) {
    const offered = readFileSync(join(CGROUP, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    return offered.includes('io')
      ? null
      : `needs the cgroup v2 io controller (${CGROUP}/cgroup.controllers lists: ${offered.join(' ') || 'none'})`;
  }
  return existsSync(join(CGROUP, 'blkio', 'blkio.throttle.read_bps_device'))
    ? null
    : `needs the cgroup v1 blkio hierarchy at ${CGROUP}/blkio (not mounted on this host)`;
}

const V1_FILES: Record<keyof IoCaps, string> = {
  rbps: 'blkio.throttle.read_bps_device',
  wbps: 'blkio.throttle.write_bps_device',
  riops: 'blkio.throttle.read_iops_device',
  wiops: 'blkio.throttle.write_iops_device',
};

/** Caps the kernel holds for a group (relative to the daemon's root), per device; devices without caps are left out. */
export function readCaps(layout: IoLayout, group: string): Map<string, IoCaps> {
  const dir = join(layout.root, group);
  const out = new Map<string, IoCaps>();
  const entry = (device: string): IoCaps => out.get(device) ?? { rbps: null, wbps: null, riops: null, wiops: null };
  if (layout.kind === 'v1') {
    for (const field of IO_CAP_FIELDS) {
      for (const line of readFileSync(join(dir, V1_FILES[field]), 'utf8').split('\n')) {
        const [device, value] = line.trim().split(/\s+/);
        if (device && value) out.set(device, { ...entry(device), [field]: Number(value) });
      }
    }
    return out;
  }
  for (const line of readFileSync(join(dir, 'io.max'), 'utf8').split('\n')) {
    const [device, ...pairs] = line.trim().split(/\s+/);
    if (!device) continue;
    const caps = entry(device);
    for (const pair of pairs) {
      const [key, value] = pair.split('=') as [keyof IoCaps, string];
      if ((IO_CAP_FIELDS as readonly string[]).includes(key)) caps[key] = value === 'max' ? null : Number(value);
    }
    if (IO_CAP_FIELDS.some((f) => caps[f] !== null)) out.set(device, caps);
  }
  return out;
}

/** The caps of one device as "rbps=N,wiops=M" (only those set), or "" when it has none: easy to compare. */
export function capsOn(layout: IoLayout, group: string, device: string): string {
  const caps = readCaps(layout, group).get(device);
  return caps
    ? IO_CAP_FIELDS.filter((f) => caps[f] !== null)
        .map((f) => `${f}=${caps[f]}`)
        .join(',')
    : '';
}

/** The group's BFQ weight (1..1000), or null when the kernel has no BFQ weight file (BFQ not loaded). */
export function readBfqWeight(layout: IoLayout, group: string): number | null {
  const file = join(layout.root, group, layout.kind === 'v1' ? 'blkio.bfq.weight' : 'io.bfq.weight');
  if (!existsSync(file)) return null;
  // v1: "90"; v2: "default 90" (and per-device lines after it).
  const match = /^(?:default\s+)?(\d+)/.exec(readFileSync(file, 'utf8').trim());
  if (!match) throw new Error(`unexpected contents of ${file}`);
  return Number(match[1]);
}

/** Processes in a group (relative to the daemon's root) of the I/O hierarchy. */
export function groupProcs(layout: IoLayout, group: string): number[] {
  return readFileSync(join(layout.root, group, 'cgroup.procs'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

/** Bytes a group read and wrote on one device (v1: every device), from the kernel's counters. */
export function readBytes(kind: 'v1' | 'v2', dir: string, device: string): { read: number; write: number } {
  if (kind === 'v1') return sumReadWrite(readFileSync(join(dir, 'blkio.throttle.io_service_bytes_recursive'), 'utf8'));
  const line =
    readFileSync(join(dir, 'io.stat'), 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${device} `)) ?? '';
  const value = (key: string): number => Number(new RegExp(`\\b${key}=(\\d+)`).exec(line)?.[1] ?? 0);
  return { read: value('rbytes'), write: value('wbytes') };
}

/**
 * Plain I/O groups made without sliced (the benchmark's baseline): `<hierarchy>/<name>/<child>`
 * in the blkio hierarchy (v1) or the unified one with io enabled below `<name>` (v2).
 */
export class PlainIoGroups {
  readonly base: string;
  readonly dirs: string[];

  constructor(
    readonly kind: 'v1' | 'v2',
    name: string,
    children: readonly string[],
  ) {
    this.base = kind === 'v1' ? join(CGROUP, 'blkio', name) : join(CGROUP, name);
    this.dirs = children.map((c) => join(this.base, c));
    mkdirSync(this.base);
    if (kind === 'v2') writeFileSync(join(this.base, 'cgroup.subtree_control'), '+io');
    for (const dir of this.dirs) mkdirSync(dir);
  }

  /** BFQ weight (1..1000) of one child; the file exists only while BFQ is loaded. */
  setBfqWeight(index: number, weight: number): void {
    writeFileSync(join(this.dirs[index]!, this.kind === 'v1' ? 'blkio.bfq.weight' : 'io.bfq.weight'), String(weight));
  }

  bytes(index: number, device: string): { read: number; write: number } {
    return readBytes(this.kind, this.dirs[index]!, device);
  }

  /** Remove the groups (empty by then: their processes have exited). */
  remove(): void {
    for (const dir of [...this.dirs, this.base]) {
      try {
        rmdirSync(dir);
      } catch {
        // not made, or already gone
      }
    }
  }
}

/** A null_blk device the test made: no data behind it, every request served in a fixed time. */
export interface NullBlkDevice {
  /** /dev/NAME */
  path: string;
  /** MAJ:MIN */
  device: string;
  /** Remove the device (and what the helper loaded or mounted for it); safe to call twice. */
  destroy(): void;
}

const CONFIGFS = '/sys/kernel/config';

/**
 * Why a null_blk device cannot be made here (no module, no configfs), or null. Kernel builds
 * differ: stock distribution kernels have null_blk as a module.
 */
export function nullBlkSkipReason(): string | null {
  if (!existsSync('/sys/module/null_blk')) {
    const loaded = spawnSync('modprobe', ['null_blk', 'nr_devices=0'], { encoding: 'utf8', timeout: 30_000 });
    if (loaded.error || loaded.status !== 0) {
      return `needs the null_blk module (a device that serves one request at a time): modprobe null_blk: ${loaded.error ? 'modprobe is not installed' : loaded.stderr.trim() || `exit ${loaded.status}`}`;
    }
  }
  return null;
}

/**
 * A null_blk device made through configfs: `serviceUs` per request, at most `depth` requests
 * in the device at once (1: the scheduler holds the queue, as on a disk without internal
 * queueing), no memory behind it (reads cost no CPU for data). Loads the module and mounts
 * configfs where needed, and undoes both in destroy().
 */
export function createNullBlk(name: string, options: { serviceUs: number; depth: number; sizeMb: number }): NullBlkDevice {
  let loaded = !existsSync('/sys/module/null_blk');
  const reason = nullBlkSkipReason();
  if (reason) throw new Error(reason);
  let mounted = false;
  if (
    !readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[1] === CONFIGFS)
  ) {
    execFileSync('mount', ['-t', 'configfs', 'configfs', CONFIGFS]);
    mounted = true;
  }
  const dir = join(CONFIGFS, 'nullb', name);
  let made = false;
  const destroy = (): void => {
    if (made) {
      made = false;
      try {
        writeFileSync(join(dir, 'power'), '0');
      } finally {
        rmdirSync(dir);
      }
    }
    if (mounted) {
      mounted = false;
      execFileSync('umount', [CONFIGFS]);
    }
    if (loaded) {
      loaded = false;
      spawnSync('modprobe', ['-r', 'null_blk'], { stdio: 'ignore', timeout: 30_000 });
    }
  };
  try {
    mkdirSync(dir);
    made = true;
    const set = (key: string, value: number): void => writeFileSync(join(dir, key), String(value));
    set('irqmode', 2); // completions from a timer: each request takes completion_nsec
    set('completion_nsec', options.serviceUs * 1000);
    set('hw_queue_depth', options.depth);
    set('submit_queues', 1);
    set('size', options.sizeMb);
    set('blocksize', 4096);
    set('memory_backed', 0);
    set('power', 1);
    // The disk is named after the configfs directory on newer kernels, nullb<index> on older ones.
    const index = readFileSync(join(dir, 'index'), 'utf8').trim();
    const disk = [name, `nullb${index}`].find((n) => existsSync(join('/sys/block', n)));
    if (!disk) throw new Error(`null_blk device ${name} (index ${index}) did not appear in /sys/block`);
    const device = readFileSync(join('/sys/block', disk, 'dev'), 'utf8').trim();
    return { path: join('/dev', disk), device, destroy };
  } catch (err) {
    destroy();
    throw err;
  }
}
