/**
 * A task's output on the node that runs it: `<dir>/<id>/stdout` and `stderr`, which the
 * task's process writes itself (opened O_APPEND, so the task keeps writing while sliced
 * restarts). Each is bounded: past `maxBytes` it is copied to `<name>.1` (replacing the
 * older copy) and truncated, so a task keeps at most twice `maxBytes` per stream. Readers
 * follow a stream by offset and notice a truncation by the file getting shorter than their
 * offset; what they had not read yet is then in `<name>.1`. The directory is root's.
 */
import {
  closeSync,
  constants as C,
  copyFileSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { TASK_ID_PATTERN, type LogLine, type StreamName } from '../core/tasks.js';

export const STREAMS: readonly StreamName[] = ['stdout', 'stderr'];

/** Per stream, before rotation. */
export const TASK_LOG_MAX_BYTES = 1024 * 1024;

export function taskLogDir(root: string, id: string): string {
  return join(root, id);
}

/** Where a new process of the task writes (spawn-server.ts opens them append-only, never through a symlink). */
export function taskStreamPaths(root: string, id: string): { dir: string; stdout: string; stderr: string } {
  const dir = taskLogDir(root, id);
  return { dir, stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr') };
}

/** Rotate a stream that grew past `maxBytes` (copy, then truncate in place: the writer's descriptor stays valid). */
export function rotateIfLarge(root: string, id: string, maxBytes = TASK_LOG_MAX_BYTES): void {
  for (const name of STREAMS) {
    const path = join(taskLogDir(root, id), name);
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      continue;
    }
    if (size <= maxBytes) continue;
    copyFileSync(path, `${path}.1`);
    const fd = openSync(path, C.O_WRONLY | C.O_NOFOLLOW);
    try {
      ftruncateSync(fd, 0);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * `<dir>/<id>/process`: the generation, pid and start time of the process this node last
 * started for the task, written by the spawn helper before the agent hears of it.
 */
export function taskProcessFile(root: string, id: string): string {
  return join(taskLogDir(root, id), 'process');
}

export interface StartedProcess {
  generation: number;
  pid: number;
  startTicks: number;
  /** When the file was written (ms since the epoch). */
  at: number;
}

/** The process last started for the task on this node, as its file says (null without a valid one). */
export function readStartedProcess(root: string, id: string): StartedProcess | null {
  let text: string;
  let at: number;
  try {
    const file = taskProcessFile(root, id);
    text = readFileSync(file, 'utf8');
    at = statSync(file).mtimeMs;
  } catch {
    return null;
  }
  const [generation, pid, startTicks] = text.trim().split(' ').map(Number);
  if (![generation, pid, startTicks].every((n) => Number.isSafeInteger(n) && n! > 0)) return null;
  return { generation: generation!, pid: pid!, startTicks: startTicks!, at: Math.round(at) };
}

export function forgetStartedProcess(root: string, id: string): void {
  rmSync(taskProcessFile(root, id), { force: true });
}

export function removeTaskLogs(root: string, id: string): void {
  rmSync(taskLogDir(root, id), { recursive: true, force: true });
}

/** The tasks whose output is kept under `root` (folders named by task id). */
export function taskLogIds(root: string): string[] {
  try {
    return readdirSync(root).filter((name) => TASK_ID_PATTERN.test(name));
  } catch {
    return []; // no task ran here yet
  }
}

/** A reader of one stream from its beginning (the rotated part first), then as it grows. */
export class StreamReader {
  private offset = 0;
  private startedOnRotated = false;

  constructor(
    private readonly path: string,
    private readonly limit = 4 * TASK_LOG_MAX_BYTES,
  ) {}

  /** What was written since the last call (the whole kept history on the first). */
  read(): Buffer {
    const parts: Buffer[] = [];
    if (!this.startedOnRotated) {
      this.startedOnRotated = true;
      parts.push(readFrom(`${this.path}.1`, 0, this.limit));
    }
    const size = sizeOf(this.path);
    if (size < this.offset) {
      // Truncated by a rotation since our last read: the rest of what we had is in .1.
      parts.push(readFrom(`${this.path}.1`, this.offset, this.limit));
      this.offset = 0;
    }
    const now = readFrom(this.path, this.offset, this.limit);
    this.offset += now.length;
    parts.push(now);
    return Buffer.concat(parts);
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function readFrom(path: string, offset: number, limit: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW);
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.max(0, Math.min(size - offset, limit));
    if (length === 0) return Buffer.alloc(0);
    const buffer = Buffer.alloc(length);
    const n = readSync(fd, buffer, 0, length, offset);
    return buffer.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

const FOLLOW_POLL_MS = 100;

/**
 * A task's kept output as NDJSON lines, stdout's and stderr's chunks as they are found (the
 * order between the two streams is only as fine as the poll). With `follow`, goes on while
 * `active()` says the task runs here, then sends what was written last and ends.
 */
export async function* logLines(
  root: string,
  id: string,
  follow: boolean,
  active: () => boolean,
  aborted: AbortSignal,
): AsyncGenerator<string> {
  const dir = taskLogDir(root, id);
  const readers = STREAMS.map((stream) => [stream, new StreamReader(join(dir, stream))] as const);
  const drain = function* (): Generator<string> {
    for (const [stream, reader] of readers) {
      const data = reader.read();
      if (data.length > 0) yield `${JSON.stringify({ stream, data: data.toString('base64') } satisfies LogLine)}\n`;
    }
  };
  for (;;) {
    const running = follow && active();
    yield* drain();
    if (!running || aborted.aborted) return;
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
  }
}
