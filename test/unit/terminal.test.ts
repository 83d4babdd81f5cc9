import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { restoreStreams, shellQuote, terminalPlan } from '../../src/core/terminal.js';

describe('terminalPlan', () => {
  test('no terminal: plain streams, no pseudo-terminal', () => {
    assert.equal(terminalPlan([false, false, false]), null);
  });

  test('every terminal stream is replaced; the others pass through', () => {
    assert.deepEqual(terminalPlan([true, true, true]), { input: true, output: 'stdout', passThrough: [] });
    assert.deepEqual(terminalPlan([true, false, true]), { input: true, output: 'stderr', passThrough: [1] });
    assert.deepEqual(terminalPlan([false, true, false]), { input: false, output: 'stdout', passThrough: [0, 2] });
    assert.deepEqual(terminalPlan([false, false, true]), { input: false, output: 'stderr', passThrough: [0, 1] });
  });

  test('only stdin a terminal: the echo is shown on that terminal', () => {
    assert.deepEqual(terminalPlan([true, false, false]), { input: true, output: 'stdin', passThrough: [1, 2] });
  });
});

describe('restoreStreams', () => {
  test('stream N comes back from descriptor 3+N, which is closed', () => {
    assert.equal(restoreStreams([]), '');
    assert.equal(restoreStreams([0, 2]), 'exec 0<&3 3>&-\nexec 2>&5 5>&-');
  });
});

describe('shellQuote', () => {
  test('plain words stay as they are', () => {
    assert.equal(shellQuote('ls'), 'ls');
    assert.equal(shellQuote('/usr/bin/env'), '/usr/bin/env');
    assert.equal(shellQuote('a=b,c:d'), 'a=b,c:d');
  });

  test('anything else is quoted so that the shell gives back the same word', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: 'binary' }).map((s) => s.replace(/\0/g, '')),
          { minLength: 1, maxLength: 5 },
        ),
        (words) => {
          const line = `printf '%s\\0' ${words.map(shellQuote).join(' ')}`;
          const result = spawnSync('/bin/sh', ['-c', line], { encoding: 'utf8' });
          assert.equal(result.status, 0, result.stderr);
          assert.deepEqual(result.stdout.split('\0').slice(0, -1), words);
        },
      ),
      { numRuns: 200 },
    );
  });
});
