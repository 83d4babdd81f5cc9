/**
 * The workload traces of ../shared/traces (SLICED_TRACES elsewhere), for tests and benchmarks:
 * read where they are, never copied into the repo, and used only when their sha256 is the one
 * SOURCES.md there gives (the published file, unchanged).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const TRACES = process.env.SLICED_TRACES ?? resolve(import.meta.dirname, '..', '..', '..', 'shared', 'traces');

/** The trace `name`'s path once its sha256 matches SOURCES.md's, or why it cannot be used. */
export function publishedTrace(name: string): { path: string } | { skipped: string } {
  const path = join(TRACES, name);
  if (!existsSync(path)) return { skipped: `needs the trace ${path} (../shared/traces, or set SLICED_TRACES)` };
  const sourcesPath = join(TRACES, 'SOURCES.md');
  if (!existsSync(sourcesPath)) return { skipped: `needs ${sourcesPath} to check ${name} against` };
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const expected = new RegExp(`\\| ${escaped} \\|.*\\| ([0-9a-f]{64}) \\|`).exec(readFileSync(sourcesPath, 'utf8'))?.[1];
  if (expected === undefined) return { skipped: `SOURCES.md gives no sha256 for ${name}` };
  const actual = createHash('sha256').update(readFileSync(path)).digest('hex');
  if (actual !== expected) return { skipped: `${path} has sha256 ${actual}, SOURCES.md says ${expected}: not the published trace` };
  return { path };
}
