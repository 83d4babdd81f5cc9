/**
 * Loaded into every test process (`node --import`, see package.json's test script and
 * scripts/test-v2): lists sliced's objects on the machine when the process starts and again
 * when it has nothing left to do, after every test and hook of its file. Anything new that is
 * still there after a short grace fails the file (exit status 1) with the list. In the test
 * runner's own process the same check covers the whole run.
 */
import { leftoversSince, machineObjects } from './leftovers.js';

const before = machineObjects();
let audited = false;

process.on('beforeExit', () => {
  if (audited) return;
  audited = true;
  void leftoversSince(before).then((left) => {
    if (left.length === 0) return;
    const who = process.argv[1] ?? 'the test run';
    process.stderr.write(
      `LEFTOVERS after ${who}: ${left.length} object(s) of sliced's that were not there before it:\n${left.map((l) => `  ${l}\n`).join('')}`,
    );
    process.exitCode = 1;
  });
});
