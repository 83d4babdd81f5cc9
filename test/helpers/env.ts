/**
 * What the kernel tests need, and a printed reason when it is missing. Tests that need root
 * or cgroups call `requireKernel(t)` and are skipped with that reason (CI runs as root, so
 * nothing skips there).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

/**
 * How much slower than a host this machine runs the tests: inside the cgroup v2 VM
 * (scripts/v2-vm, software emulation) CPU-bound work takes 6-20x as long. Timeouts and
 * waits are multiplied by it; measured ratios never are. SLICED_TEST_SLOW overrides it.
 */
export const SLOW = Number(process.env.SLICED_TEST_SLOW ?? (process.env.SLICED_IN_V2_VM === '1' ? 6 : 1));

/**
 * Why the daemon cannot run here, or null: root, and the controllers it needs where it would
 * find them (read the way sliced picks its backend: the cpu controller bound to a v1
 * hierarchy, or offered in cgroup v2 to this process's own group, where the daemon starts).
 * `procRoot` and `uid` are for the helper's own tests.
 */
export function kernelSkipReason(options: { procRoot?: string; uid?: number } = {}): string | null {
  if ((options.uid ?? process.getuid?.()) !== 0) return 'needs root (creates cgroups and users); run the suite as root';
  const proc = options.procRoot ?? '/proc';
  const mounts = readFileSync(`${proc}/self/mounts`, 'utf8')
    .split('\n')
    .map((line) => line.split(' '));
  const own = readFileSync(`${proc}/self/cgroup`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(':'));
  // cgroup v1: cpu, cpuacct, memory and freezer each mounted as a v1 hierarchy.
  const v1 = ['cpu', 'cpuacct', 'memory', 'freezer'].filter((c) =>
    mounts.some((m) => m[2] === 'cgroup' && (m[3] ?? '').split(',').includes(c)),
  );
  if (v1.includes('cpu')) {
    const missing = ['cpu', 'cpuacct', 'memory', 'freezer'].filter((c) => !v1.includes(c));
    return missing.length === 0
      ? null
      : `the cpu controller is a cgroup v1 hierarchy but ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not mounted (sliced needs cpu, cpuacct, memory and freezer)`;
  }
  // cgroup v2: the cpu and memory controllers offered to this process's own group (the daemon starts in it).
  const unified = mounts.find((m) => m[2] === 'cgroup2')?.[1];
  const path = own
    .find((l) => l[0] === '0')
    ?.slice(2)
    .join(':');
  if (unified === undefined || path === undefined)
    return 'needs a cgroup hierarchy with the cpu controller (neither a cgroup v1 cpu hierarchy nor cgroup2 is mounted)';
  const file = join(unified, path, 'cgroup.controllers');
  const offered = existsSync(file) ? readFileSync(file, 'utf8').trim().split(/\s+/).filter(Boolean) : [];
  const missing = ['cpu', 'memory'].filter((c) => !offered.includes(c));
  if (missing.length > 0)
    return `needs the ${missing.join(' and ')} controller${missing.length > 1 ? 's' : ''} in cgroup v2: ${file} offers ${offered.join(' ') || 'none'} (delegate them, e.g. systemd Delegate=yes)`;
  return null;
}

export function commandSkipReason(command: string, pkg: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
  return found ? null : `needs ${command} (Debian package ${pkg})`;
}

/** Skip the test with a printed reason when the kernel features are missing; returns true if skipped. */
export function skipWithoutKernel(t: TestContext, ...extra: Array<string | null>): boolean {
  const reason = kernelSkipReason() ?? extra.find((r) => r !== null) ?? null;
  if (reason === null) return false;
  skipWith(t, reason);
  return true;
}

/** Skip the test, printing why (a skip never passes silently). */
export function skipWith(t: TestContext, reason: string): void {
  process.stderr.write(`SKIP ${t.name}: ${reason}\n`);
  t.skip(reason);
}

/** Why the config tree cannot be mounted with FUSE here, or null. */
export function fuseSkipReason(): string | null {
  if (!existsSync('/dev/fuse')) return 'needs /dev/fuse';
  const probe = spawnSync(process.execPath, ['-e', "import('@cocalc/fuse-native').then(() => process.exit(0), () => process.exit(1))"], {
    cwd: resolve(import.meta.dirname, '..', '..'),
  });
  if (probe.status !== 0) return 'needs the optional npm package @cocalc/fuse-native (Debian packages fuse3, libfuse-dev)';
  if (spawnSync('sh', ['-c', 'command -v fusermount']).status !== 0) return 'needs fusermount (Debian package fuse3)';
  return null;
}

/** A fuse.sliced mount at exactly `mnt`, from mountinfo (never touching the path, which may be dead). */
export function slicedMounted(mnt: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === mnt && / - fuse\.sliced sliced /.test(line));
}
