/**
 * Node-wide figures from /proc for the framework's probes: per-CPU busy time, load
 * averages, memory, pressure stall information, per-process CPU time and sessions, block I/O.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { parseMajMin } from '../core/io.js';
import { blockDeviceNumber } from './block-devices.js';

const TICKS_PER_SECOND = 100;

/** Busy time of each CPU in nanoseconds (idle and iowait excluded), cpu0 first. */
export function readCpuBusyNs(procRoot = '/proc'): number[] {
  const out: number[] = [];
  for (const line of readFileSync(`${procRoot}/stat`, 'utf8').split('\n')) {
    if (!/^cpu\d+ /.test(line)) continue;
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.split(/\s+/).slice(1).map(Number);
    out.push(((user + nice + system + irq + softirq + steal) * 1e9) / TICKS_PER_SECOND);
  }
  return out;
}

export interface LoadAverage {
  load1: number;
  load5: number;
  load15: number;
  runnable: number;
}

export function readLoadAverage(procRoot = '/proc'): LoadAverage {
  const [l1, l5, l15, tasks] = readFileSync(`${procRoot}/loadavg`, 'utf8').trim().split(/\s+/);
  return { load1: Number(l1), load5: Number(l5), load15: Number(l15), runnable: Number((tasks ?? '0/0').split('/')[0]) };
}

/** kernel.pid_max and kernel.threads-max: the node can hold at most the smaller number of tasks. */
export function readPidLimits(procRoot = '/proc'): { pidMax: number; threadsMax: number } {
  const read = (name: string): number => Number(readFileSync(`${procRoot}/sys/kernel/${name}`, 'utf8').trim());
  return { pidMax: read('pid_max'), threadsMax: read('threads-max') };
}

/** Tasks (processes and threads, each holding a PID) on the node now: "running/total" in /proc/loadavg. */
export function readTaskCount(procRoot = '/proc'): number {
  const field = readFileSync(`${procRoot}/loadavg`, 'utf8').trim().split(/\s+/)[3] ?? '0/0';
  return Number(field.split('/')[1] ?? 0);
}

export interface MemoryInfo {
  totalBytes: number;
  availableBytes: number;
  /** MemFree: not used at all (no cache either). */
  freeBytes: number;
}

export function readMemoryInfo(procRoot = '/proc'): MemoryInfo {
  const text = readFileSync(`${procRoot}/meminfo`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { totalBytes: field('MemTotal'), availableBytes: field('MemAvailable'), freeBytes: field('MemFree') };
}

let pageBytes: number | null = null;

/** The kernel's page size (statm counts pages), read once from this process's own mappings. */
function pageSize(procRoot: string): number {
  if (pageBytes === null) {
    const kb = /KernelPageSize:\s+(\d+) kB/.exec(readFileSync(`${procRoot}/self/smaps`, 'utf8'))?.[1];
    pageBytes = kb ? Number(kb) * 1024 : 4096;
  }
  return pageBytes;
}

/** Resident memory of every process with any (kernel threads have none), from /proc/<pid>/statm. */
export function readProcessRss(procRoot = '/proc'): Array<{ pid: number; rssBytes: number }> {
  const out: Array<{ pid: number; rssBytes: number }> = [];
  const page = pageSize(procRoot);
  for (const entry of readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const pages = Number(readFileSync(`${procRoot}/${entry}/statm`, 'utf8').split(' ')[1]);
      if (pages > 0) out.push({ pid: Number(entry), rssBytes: pages * page });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

export type PressureResource = 'cpu' | 'memory' | 'io';

/** avg10 of "some" and "full" stalls in percent, or null where the kernel has no PSI. */
export function readPressure(resource: PressureResource, procRoot = '/proc'): { some: number; full: number } | null {
  const file = `${procRoot}/pressure/${resource}`;
  if (!existsSync(file)) return null;
  return parsePressure(readFileSync(file, 'utf8'));
}

/** avg10 of "some" and "full" from a pressure file's text (/proc/pressure/* or <group>/*.pressure). */
export function parsePressure(text: string): { some: number; full: number } {
  const avg10 = (kind: string): number => Number(new RegExp(`^${kind} avg10=([\\d.]+)`, 'm').exec(text)?.[1] ?? 0);
  return { some: avg10('some'), full: avg10('full') };
}

export interface ProcessTimes {
  pid: number;
  /** utime + stime in nanoseconds. */
  cpuNs: number;
  session: number;
}

/** CPU time and session of every process (kernel threads excluded). */
export function readAllProcessTimes(procRoot = '/proc'): ProcessTimes[] {
  const out: ProcessTimes[] = [];
  for (const entry of readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = readFileSync(`${procRoot}/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[N-3] is field N: 6 session, 9 flags, 14 utime, 15 stime.
    if ((Number(rest[6]) & 0x00200000) !== 0) continue; // PF_KTHREAD
    out.push({ pid: Number(entry), cpuNs: ((Number(rest[11]) + Number(rest[12])) * 1e9) / TICKS_PER_SECOND, session: Number(rest[3]) });
  }
  return out;
}

/** Session id of a process, or null when it is gone. */
export function readSessionOf(pid: number, procRoot = '/proc'): number | null {
  try {
    const text = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
    return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[3]);
  } catch {
    return null;
  }
}

/** Cumulative block I/O of a device: bytes and operations (completed) read and written. */
export interface DiskIo {
  readBytes: number;
  writeBytes: number;
  readOps: number;
  writeOps: number;
}

/**
 * /proc/diskstats as MAJ:MIN → name and counters. Fields after the name: reads completed,
 * merged, sectors read, ms reading, writes completed, merged, sectors written (512 bytes each
 * whatever the device's block size).
 */
export function parseDiskstats(text: string): Map<string, { name: string; io: DiskIo }> {
  const out = new Map<string, { name: string; io: DiskIo }>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const n = f.map(Number);
    out.set(`${f[0]}:${f[1]}`, { name: f[2]!, io: { readOps: n[3]!, readBytes: n[5]! * 512, writeOps: n[7]!, writeBytes: n[9]! * 512 } });
  }
  return out;
}

/**
 * Block I/O of one device (MAJ:MIN, or the path of a block device, links followed), or of
 * every physical whole disk (null: the ones with a `device` link in /sys/block; loop,
 * device-mapper and md devices sit on top of them and would count their I/O twice). Null when
 * the device is not in /proc/diskstats.
 */
export function readDiskIo(device: string | null, procRoot = '/proc', sysRoot = '/sys'): DiskIo | null {
  const stats = parseDiskstats(readFileSync(`${procRoot}/diskstats`, 'utf8'));
  if (device !== null) {
    const number = parseMajMin(device) ?? blockDeviceNumber(device);
    return number === null ? null : (stats.get(number)?.io ?? null);
  }
  const sum: DiskIo = { readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 };
  for (const { name, io } of stats.values()) {
    if (!existsSync(`${sysRoot}/block/${name}/device`)) continue;
    sum.readBytes += io.readBytes;
    sum.writeBytes += io.writeBytes;
    sum.readOps += io.readOps;
    sum.writeOps += io.writeOps;
  }
  return sum;
}

/** The readings above as one object: the framework's NodeStats service (src/framework/handle.ts). */
export function procNodeStats(procRoot = '/proc') {
  return {
    cpuBusyNs: () => readCpuBusyNs(procRoot),
    loadAverage: () => readLoadAverage(procRoot),
    memoryInfo: () => readMemoryInfo(procRoot),
    pressure: (resource: PressureResource) => readPressure(resource, procRoot),
    processTimes: () => readAllProcessTimes(procRoot),
    processRss: () => readProcessRss(procRoot),
    diskIo: (device: string | null) => readDiskIo(device, procRoot),
  };
}
