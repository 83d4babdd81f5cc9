/**
 * The fence watchdog on real processes: it kills the process groups its file lists once the
 * deadline has passed, and only those whose start time matches (a reused pid is left alone);
 * it leaves them while the deadline is ahead; it exits when its file goes.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFenceWatchdog, writeFence } from '../../src/kernel/fence.js';
import { processAlive, readProcStat } from '../../src/kernel/procfs.js';

const dir = mkdtempSync(join(tmpdir(), 'sliced-fence-'));
const started: ChildProcess[] = [];
after(() => {
  for (const c of started) if (c.pid && processAlive(c.pid)) process.kill(-c.pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A process group of a shell and its sleeping child, as a task is. */
function group(): { pid: number; startTicks: number; child: () => number | undefined } {
  const c = spawn('sh', ['-c', 'sleep 60 & wait'], { detached: true, stdio: 'ignore' });
  started.push(c);
  const pid = c.pid!;
  return { pid, startTicks: readProcStat(pid)!.startTicks, child: () => childOf(pid) };
}

function childOf(pid: number): number | undefined {
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('the watchdog kills listed groups past the deadline, leaves them before it and spares a pid of another start time', async () => {
  const file = join(dir, 'tasks.fence');
  const listed = group();
  const reused = group();
  await until('the children', () => listed.child() !== undefined);
  const child = listed.child()!;
  writeFence(file, Date.now() + 60_000, [
    { pgid: listed.pid, startTicks: listed.startTicks },
    { pgid: reused.pid, startTicks: reused.startTicks + 1 },
  ]);
  const watchdog = startFenceWatchdog(file);
  assert.equal(startFenceWatchdog(file), watchdog, 'one watchdog per file');
  await sleep(600);
  assert.ok(processAlive(listed.pid) && processAlive(child), 'the deadline is ahead: nothing is killed');

  writeFence(file, Date.now() - 1, [
    { pgid: listed.pid, startTicks: listed.startTicks },
    { pgid: reused.pid, startTicks: reused.startTicks + 1 },
  ]);
  await until('the listed group to die', () => !processAlive(listed.pid) && !processAlive(child));
  await sleep(400);
  assert.ok(processAlive(reused.pid), 'a pid whose start time differs is another process: spared');

  rmSync(file);
  await until('the watchdog to exit with its file', () => !processAlive(watchdog));
});
