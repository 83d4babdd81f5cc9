/**
 * The leftovers audit (test/helpers/leftovers.ts) on this machine: what appeared since a
 * snapshot is listed, and nothing once it is gone. With the kernel tests, not the unit ones:
 * it looks at the whole machine, and the unit tests run beside the soak, whose daemon makes
 * and removes objects all the time (scripts/test-host).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { leftoversSince, machineObjects, since } from '../helpers/leftovers.js';

describe('the leftovers audit', () => {
  test('lists what appeared since a snapshot, and nothing once it is gone', async () => {
    const before = machineObjects();
    const made = mkdtempSync(join('/tmp', 'sliced-audit-'));
    // A script named as sliced's entry point: a process running it counts as sliced's.
    mkdirSync(join(made, 'bin'));
    writeFileSync(join(made, 'bin', 'sliced.js'), 'setTimeout(() => {}, 60000);\n');
    const sleeper = spawn(process.execPath, [join(made, 'bin', 'sliced.js')], { stdio: 'ignore' });
    try {
      // The child is listed once it has exec'd node with the script (its cmdline says so).
      let left = since(before);
      for (let i = 0; i < 50 && !left.some((l) => l.startsWith(`process ${sleeper.pid} `)); i++) {
        await new Promise((r) => setTimeout(r, 50));
        left = since(before);
      }
      assert.ok(left.includes(`path ${made}`), `the new directory is listed: ${left.join('; ')}`);
      assert.ok(
        left.some((l) => l.startsWith(`process ${sleeper.pid} `)),
        `a process running sliced's code is listed: ${left.join('; ')}`,
      );
    } finally {
      rmSync(made, { recursive: true, force: true });
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
    }
    assert.deepEqual(await leftoversSince(before), []);
  });
});
