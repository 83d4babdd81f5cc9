/**
 * The network tools' runner when the process has no file descriptor left (EMFILE): the call
 * is refused with the reason, and the process lives on. A spawn that fails that way has no
 * pipes and emits 'error' on the next tick; unheard, that event ended the daemon (seen once in
 * the exhaustion test, when the periodic accounting refresh ran nft during the exhaustion).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/daemon.js';

const SCRIPT = `
import { openSync } from 'node:fs';
import { runTool } from ${JSON.stringify(join(ROOT, 'src/kernel/net/run.ts'))};
const held = [];
try {
  for (;;) held.push(openSync('/dev/null', 'r'));
} catch (err) {
  if (err.code !== 'EMFILE') throw err;
}
try {
  await runTool('true', []);
  console.log('ran');
} catch (err) {
  console.log('refused: ' + err.message);
}
await new Promise((resolve) => setTimeout(resolve, 200));
console.log('alive');
`;

test('out of file descriptors, a tool call is refused naming EMFILE and the process lives on', () => {
  const result = spawnSync('prlimit', ['--nofile=64', '--', process.execPath, '--import', 'tsx', '--input-type=module', '-e', SCRIPT], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(result.status, 0, `exit ${result.status}: ${result.stderr.slice(-1500)}`);
  assert.match(result.stdout, /refused: cannot run true: .*EMFILE/);
  assert.match(result.stdout, /alive/);
});
