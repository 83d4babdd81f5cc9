/**
 * What the kernel tests need, and a printed reason when it is missing. Tests that need root
 * or cgroups call `requireKernel(t)` and are skipped with that reason (CI runs as root, so
 * nothing skips there).
 */
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export function kernelSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (creates cgroups and users); run the suite as root';
  if (!existsSync('/sys/fs/cgroup/cpu/cpu.shares') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    return 'needs a cgroup hierarchy with the cpu controller mounted';
  }
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
  process.stderr.write(`SKIP ${t.name}: ${reason}\n`);
  t.skip(reason);
  return true;
}
