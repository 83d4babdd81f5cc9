/**
 * Tasks on one node, on the real kernel: `slicectl run` starts the command as the slice's user
 * in the slice's groups, streams its output and returns its status; -d returns the id; the
 * output is kept and read back; restart policies restart it with a growing delay; stop ends
 * its process group; a task outlives a restart of sliced and is taken back; bad input is
 * refused naming the cause.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon } from '../helpers/daemon.js';
import { kernelSkipReason } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';
import { processAlive, readProcStat } from '../../src/kernel/procfs.js';
import { rawCall } from '../helpers/raw-api.js';
import { taskProcesses, until } from '../helpers/tasks.js';
import type { SliceView } from '../../src/wire/slices.js';
import type { TaskList, TaskView } from '../../src/wire/tasks.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/tasks: ${skip}\n`);

describe('tasks on one node', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let groups: KernelGroups;
  const show = (id: string): Promise<TaskView> => daemon.cliJson<TaskView>(['task', 'show', id]);

  before(async () => {
    daemon = await TestDaemon.start();
    groups = await KernelGroups.of(daemon);
    assert.equal((await daemon.cli(['slice', 'create', 'tk'])).code, 0);
  });

  after(async () => {
    await daemon.destroy();
  });

  test('run starts the command as the slice user in its groups, streams stdout and stderr apart and returns its status', async () => {
    const slice = await daemon.cliJson<SliceView>(['slice', 'show', 'tk']);
    const result = await daemon.cli([
      'run',
      '--slice',
      'tk',
      '--name',
      'first',
      '-e',
      'GREETING=hi',
      '--',
      'sh',
      '-c',
      'id -u; cat /proc/self/cgroup; echo "$GREETING $SLICE"; echo oops >&2; exit 3',
    ]);
    assert.equal(result.code, 3, result.stderr);
    const lines = result.stdout.split('\n');
    assert.equal(Number(lines[0]), slice.uid);
    const cgroupText = lines.filter((l) => /^\d+:[^:]*:\//.test(l)).join('\n');
    assert.deepEqual(groups.misplaced(cgroupText, slice.cgroup), [], `task not in ${slice.cgroup} everywhere:\n${cgroupText}`);
    assert.ok(lines.includes('hi tk'), result.stdout);
    assert.equal(result.stderr, 'oops\n');

    const list = await daemon.cliJson<TaskList>(['task', 'list']);
    const task = list.tasks.find((t) => t.name === 'first');
    assert.ok(task, JSON.stringify(list));
    assert.equal(task.state, 'exited');
    assert.equal(task.exitStatus, 3);
    assert.equal(task.node, task.createdOn);
    assert.ok(task.startedAt && task.endedAt && task.startedAt <= task.endedAt);
    // The output is kept on the node and read back, both streams.
    const logs = await daemon.cli(['task', 'logs', task.id]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.ok(logs.stdout.includes('hi tk'));
    assert.equal(logs.stderr, 'oops\n');
    const text = await daemon.cli(['task', 'show', task.id]);
    assert.match(text.stdout, /State: +exited/);
    assert.match(text.stdout, /Exit status: +3/);

    const killed = await daemon.cli(['run', '--slice', 'tk', '--', 'sh', '-c', 'kill -9 $$']);
    assert.equal(killed.code, 137);
  });

  test('-d prints the id; on-failure restarts with a delay; stop ends the process group and stops the restarts', async () => {
    const detached = await daemon.cli([
      'run',
      '--slice',
      'tk',
      '-d',
      '--restart',
      'on-failure',
      '--',
      'sh',
      '-c',
      'echo run; sleep 0.2; exit 1',
    ]);
    assert.equal(detached.code, 0, detached.stderr);
    const id = detached.stdout.trim();
    assert.match(id, /^[0-9a-f]{12}$/);
    const restarted = await until('two restarts', async () => ((await show(id)).restarts >= 2 ? show(id) : null));
    assert.equal(restarted.restart, 'on-failure');
    const out = await daemon.cli(['task', 'logs', id]);
    assert.ok(out.stdout.split('\n').filter((l) => l === 'run').length >= 3, out.stdout);

    // A task with a child: stop ends the whole group, and no restart follows.
    const sleeper = (
      await daemon.cli(['run', '--slice', 'tk', '-d', '--restart', 'always', '--', 'sh', '-c', 'sleep 300 & wait'])
    ).stdout.trim();
    const running = await until('the sleeper to run', async () => {
      const v = await show(sleeper);
      return v.state === 'running' && v.pid !== null ? v : null;
    });
    const child = await until('its child', async () => groups.procs('tk.slice').find((p) => p !== running.pid) ?? null);
    const refused = await daemon.cli(['task', 'rm', sleeper]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is running .*stop it first/, 'a running task is not removed');
    const stopped = await daemon.cliJson<TaskView>(['task', 'stop', sleeper]);
    assert.equal(stopped.state, 'stopped');
    assert.equal(processAlive(running.pid!), false);
    await until('its child to end', async () => !processAlive(child));
    await sleep(300);
    assert.equal((await show(sleeper)).state, 'stopped', 'no restart after a stop');
    assert.equal((await daemon.cli(['task', 'stop', id])).code, 0);

    const output = join(daemon.stateDir, 'tasks', sleeper);
    assert.ok(existsSync(output), `its output is kept in ${output}`);
    const removed = await daemon.cli(['task', 'rm', sleeper]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((await daemon.cli(['task', 'show', sleeper])).code, 3);
    await until('its output to go with it', async () => !existsSync(output));
  });

  test('a running task outlives a restart of sliced and is taken back; its output goes on', async () => {
    const id = (
      await daemon.cli(['run', '--slice', 'tk', '-d', '--', 'sh', '-c', 'echo before; read line < /dev/null; sleep 2; echo after'])
    ).stdout.trim();
    const running = await until('it to run', async () => {
      const v = await show(id);
      return v.state === 'running' ? v : null;
    });
    await daemon.restart();
    const back = await show(id);
    assert.equal(back.state, 'running');
    assert.equal(back.pid, running.pid, 'the same process, taken back');
    const ended = await until('it to end', async () => {
      const v = await show(id);
      return v.state === 'exited' ? v : null;
    });
    assert.equal(ended.exitStatus, null, 'its exit status is unknown: it was not our child any more');
    assert.match(ended.reason ?? '', /exit status is unknown/);
    const logs = await daemon.cli(['task', 'logs', id]);
    assert.equal(logs.stdout, 'before\nafter\n');
  });

  test('a task stopped while its process is being started does not keep running', async () => {
    // The stop follows the submission at once, so it often lands between the start of the
    // process and the moment its pid is known (the spawn helper's round trip).
    const ids: string[] = [];
    for (let round = 0; round < 20; round++) {
      const submitted = await rawCall(daemon.socket, {
        method: 'POST',
        path: '/v1/tasks',
        body: { slice: 'tk', command: ['sleep', '300'] },
      });
      assert.ok(submitted.kind === 'answer' && submitted.status === 201, JSON.stringify(submitted));
      const id = (submitted.json as TaskView).id;
      ids.push(id);
      const stopped = await rawCall(daemon.socket, { method: 'POST', path: `/v1/tasks/${id}/stop` });
      assert.ok(stopped.kind === 'answer' && stopped.status === 200, JSON.stringify(stopped));
    }
    const left = await until(
      'every stopped task to have no process',
      async () => {
        const running = taskProcesses(new Set(ids));
        return running.size === 0 ? 'none' : null;
      },
      5000,
    ).catch(() => [...taskProcesses(new Set(ids)).keys()].join(', '));
    assert.equal(left, 'none', `stopped tasks still running: ${left}`);
    for (const id of ids) assert.notEqual((await show(id)).state, 'running', id);
  });

  test('a process started just before sliced was killed, never reported, is found again and stopped with its task', async () => {
    const id = (await daemon.cli(['run', '--slice', 'tk', '-d', '--', 'sleep', '300'])).stdout.trim();
    const reported = await until('it to run', async () => {
      const v = await show(id);
      return v.state === 'running' ? v : null;
    });
    await daemon.stop('SIGKILL');
    // As if sliced had died between the start of a process and its report: the status names
    // a process that is gone, the spawn helper's file names the one that runs.
    process.kill(-reported.pid!, 'SIGKILL');
    const unreported = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
    unreported.unref();
    const pid = unreported.pid!;
    try {
      writeFileSync(join(daemon.stateDir, 'tasks', id, 'process'), `${reported.generation} ${pid} ${readProcStat(pid)!.startTicks}\n`);
      await daemon.restart();
      const found = await show(id);
      assert.equal(found.state, 'running');
      assert.equal(found.pid, pid, 'the process of the file is taken back and reported');
      const stopped = await daemon.cliJson<TaskView>(['task', 'stop', id]);
      assert.equal(stopped.state, 'stopped');
      await until('the process to end', async () => !processAlive(pid));
      assert.equal(existsSync(join(daemon.stateDir, 'tasks', id, 'process')), false, 'the file goes with the process');
    } finally {
      if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  test('a restart pending when sliced was killed happens once it is back', async () => {
    const id = (await daemon.cli(['run', '--slice', 'tk', '-d', '--restart', 'on-failure', '--', 'sh', '-c', 'exit 1'])).stdout.trim();
    // From the fourth restart on, the delay (1.6 s, growing) leaves time to kill sliced during it.
    const waiting = await until('a restart to be pending', async () => {
      const v = await show(id);
      return v.state === 'exited' && v.restarts >= 4 ? v : null;
    });
    await daemon.stop('SIGKILL');
    await daemon.restart();
    const again = await until('the restart to happen', async () => {
      const v = await show(id);
      return v.restarts > waiting.restarts ? v : null;
    });
    assert.equal(again.generation, waiting.generation);
    assert.equal((await daemon.cli(['task', 'stop', id])).code, 0);
  });

  test('bad input is refused naming the cause, and nothing is placed', async () => {
    const before = (await daemon.cliJson<TaskList>(['task', 'list'])).tasks.length;
    const cases: Array<[string[], number, RegExp]> = [
      [['run', '--slice', 'nope', '--', 'true'], 3, /no slice nope/],
      [['run', '--slice', 'tk', '--scheduler', 'nosuch', '--', 'true'], 3, /no scheduler "nosuch"/],
      [['run', '--slice', 'tk', '--restart', 'sometimes', '--', 'true'], 2, /sometimes/],
      [['run', '--slice', 'tk', '-e', 'SLICE=x', '--', 'true'], 1, /SLICE is set by sliced/],
      [['run', '--slice', 'tk', '--chdir', 'relative', '--', 'true'], 1, /absolute path/],
      [['task', 'show', 'xyz'], 1, /task id "xyz" is not one/],
      [['task', 'show', '0123456789ab'], 3, /no task 0123456789ab/],
      [['task', 'signal', '0123456789ab', 'SIGBOGUS'], 2, /not one of/],
    ];
    for (const [args, code, message] of cases) {
      const result = await daemon.cli(args);
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
    }
    assert.equal((await daemon.cliJson<TaskList>(['task', 'list'])).tasks.length, before);
  });
});
