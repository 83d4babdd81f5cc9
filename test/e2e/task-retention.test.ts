/**
 * Finished tasks are forgotten after --task-retention, on the real kernel: an ended task and
 * its output go; a running one and one due to restart stay. A file of its own (its daemon
 * runs with a short retention) apart from test/e2e/tasks.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TestDaemon } from '../helpers/daemon.js';
import { kernelSkipReason } from '../helpers/env.js';
import { until } from '../helpers/tasks.js';
import type { TaskList, TaskView } from '../../src/wire/tasks.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/task-retention: ${skip}\n`);

describe('finished tasks are forgotten after --task-retention', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;

  before(async () => {
    daemon = await TestDaemon.start(['--task-retention', '1500']);
    assert.equal((await daemon.cli(['slice', 'create', 'tg'])).code, 0);
  });

  after(async () => {
    await daemon.destroy();
  });

  test('an ended task and its output go once kept that long; a running one and one due to restart stay', async () => {
    const ended = (await daemon.cliJson<TaskView>(['run', '--slice', 'tg', '-d', '--', 'sh', '-c', 'echo kept'])).id;
    const running = (await daemon.cliJson<TaskView>(['run', '--slice', 'tg', '-d', '--', 'sleep', '30'])).id;
    const restarting = (
      await daemon.cliJson<TaskView>(['run', '--slice', 'tg', '-d', '--restart', 'always', '--', 'sh', '-c', 'sleep 0.5'])
    ).id;
    await until('the short task to end', async () => (await daemon.cliJson<TaskView>(['task', 'show', ended])).state === 'exited');
    assert.equal((await daemon.cli(['task', 'logs', ended])).stdout, 'kept\n', 'kept while young');
    const output = join(daemon.stateDir, 'tasks', ended);
    assert.ok(existsSync(output));
    await until('the ended task to be forgotten', async () => {
      const ids = (await daemon.cliJson<TaskList>(['task', 'list'])).tasks.map((t) => t.id);
      return !ids.includes(ended);
    });
    await until('its output to go', async () => !existsSync(output));
    const left = (await daemon.cliJson<TaskList>(['task', 'list'])).tasks.map((t) => t.id);
    assert.ok(left.includes(running), 'a running task stays');
    assert.ok(left.includes(restarting), 'a task that restarts stays');
    for (const id of [running, restarting]) assert.equal((await daemon.cli(['task', 'stop', id])).code, 0);
  });
});
