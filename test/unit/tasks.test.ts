/** The pure rules of cluster tasks (src/core/tasks.ts): requests, candidates, restarts, failover, views. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertTaskId,
  candidateNodes,
  defaultTaskNode,
  exitStatusOf,
  expired,
  failsOver,
  parseTaskRequest,
  restartDelayMs,
  restartsAfter,
  taskId,
  taskView,
  type TaskRecord,
} from '../../src/core/tasks.js';
import { isSlicedError } from '../../src/core/errors.js';

function refused(pattern: RegExp, code = 'EINVAL') {
  return (err: unknown): boolean => {
    assert.ok(isSlicedError(err), String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

const record = (over: Partial<Omit<TaskRecord, 'spec'>> & { spec?: Partial<TaskRecord['spec']> } = {}): TaskRecord => ({
  desired: 'run',
  node: 'a',
  generation: 1,
  placedAt: 0,
  placedBy: 'test',
  ...over,
  spec: {
    slice: 's',
    name: null,
    command: ['true'],
    restart: 'never',
    migratable: false,
    scheduler: null,
    env: {},
    cwd: null,
    node: null,
    id: '0123456789ab',
    createdAt: 0,
    createdOn: 'a',
    ...over.spec,
  },
});

describe('task requests', () => {
  test('defaults, and a pinned node', () => {
    assert.deepEqual(parseTaskRequest({ slice: 's', command: ['sleep', '1'] }), {
      slice: 's',
      command: ['sleep', '1'],
      restart: 'never',
      migratable: false,
      env: {},
      name: null,
      scheduler: null,
      cwd: null,
      node: null,
    });
    assert.equal(parseTaskRequest({ slice: 's', command: ['true'], node: 'n2' }).node, 'n2');
  });

  test('refusals name what was wrong', () => {
    assert.throws(() => parseTaskRequest({ slice: 's', command: [] }), refused(/give the command/));
    assert.throws(() => parseTaskRequest({ slice: 's', command: ['x'], env: { SLICE: 'x' } }), refused(/SLICE is set by sliced/));
    assert.throws(() => parseTaskRequest({ slice: 's', command: ['x'], cwd: 'rel' }), refused(/absolute path/));
    assert.throws(
      () => parseTaskRequest({ slice: 's', command: ['x'], node: 'n2', migratable: true }),
      refused(/pinned to a node cannot be migratable/),
    );
    assert.throws(() => parseTaskRequest({ slice: 's', command: ['x'], node: '../x' }), refused(/node/));
    assert.throws(() => parseTaskRequest({ slice: 's', command: ['x'], bogus: 1 }), refused(/bogus/));
    assert.throws(() => assertTaskId('xyz'), refused(/12 hexadecimal digits/));
    assert.equal(taskId(new Uint8Array([1, 2, 3, 4, 5, 255])), '0102030405ff');
  });
});

describe('where a task may go', () => {
  const members = [
    { name: 'a', status: 'up' as const, cordoned: false },
    { name: 'b', status: 'down' as const, cordoned: false },
    { name: 'c', status: 'up' as const, cordoned: true },
    { name: 'd', status: 'up' as const, cordoned: false },
  ];

  test('the slice’s nodes that are up and not cordoned; none: each one’s reason', () => {
    assert.deepEqual(candidateNodes('s', ['d', 'b', 'a', 'c'], members), ['a', 'd']);
    assert.throws(
      () => candidateNodes('s', ['b', 'c', 'x'], members),
      refused(/slice s has no node a task can be placed on: b is down; c is cordoned; x is not a member/, 'EBUSY'),
    );
    assert.throws(() => candidateNodes('s', [], members), refused(/it is on no node/, 'EBUSY'));
  });

  test('without an answer: the fewest tasks, this node first on a tie, then by name', () => {
    assert.equal(
      defaultTaskNode(
        ['a', 'b', 'c'],
        new Map([
          ['a', 2],
          ['b', 1],
          ['c', 1],
        ]),
        'x',
      ),
      'b',
    );
    assert.equal(
      defaultTaskNode(
        ['a', 'b', 'c'],
        new Map([
          ['a', 1],
          ['b', 1],
          ['c', 1],
        ]),
        'c',
      ),
      'c',
    );
    assert.equal(defaultTaskNode(['b', 'a'], new Map(), 'x'), 'a');
  });
});

describe('restarts, failover and views', () => {
  test('restart policies, their growing delay, and exit statuses as a shell reports them', () => {
    assert.deepEqual(
      [restartsAfter('never', 1), restartsAfter('on-failure', 0), restartsAfter('on-failure', 2), restartsAfter('always', 0)],
      [false, false, true, true],
    );
    assert.deepEqual([0, 1, 6, 7, 20].map(restartDelayMs), [100, 200, 6400, 10_000, 10_000]);
    assert.equal(exitStatusOf(3, null), 3);
    assert.equal(exitStatusOf(null, 9), 137);
  });

  test('a restartable or moving task fails over; a pinned one and a restart-never one wait for their node', () => {
    assert.equal(failsOver(record({ spec: { restart: 'always' } })), true);
    assert.equal(failsOver(record({ moving: { to: 'b', by: 'x' } })), true);
    assert.equal(failsOver(record()), false);
    assert.equal(failsOver(record({ spec: { restart: 'always', node: 'a' } })), false);
    assert.equal(failsOver(record({ desired: 'stop', spec: { restart: 'always' } })), false);
  });

  test('retention: a finished task expires once kept that long; a restart due, a running task or 0 keeps it', () => {
    const at = Date.parse('2026-12-07T00:00:00Z');
    const view = {
      state: 'exited' as const,
      endedAt: '2026-12-07T00:00:00.000Z',
      desired: 'run' as const,
      restart: 'never' as const,
      exitStatus: 0,
    };
    assert.equal(expired(view, at + 999, 1000), false);
    assert.equal(expired(view, at + 1000, 1000), true);
    assert.equal(expired(view, at + 10_000_000, 0), false, '0 keeps them all');
    assert.equal(expired({ ...view, restart: 'always' }, at + 5000, 1000), false, 'its restart is due');
    assert.equal(expired({ ...view, restart: 'on-failure' }, at + 5000, 1000), true, 'exit 0: no restart');
    assert.equal(expired({ ...view, restart: 'always', desired: 'stop', state: 'stopped' }, at + 5000, 1000), true);
    assert.equal(expired({ ...view, state: 'running', endedAt: null }, at + 5000, 1000), false);
  });

  test('a view: pending until its node reports this placement; unknown while the node is down', () => {
    const r = record({ generation: 2, spec: { node: 'a' } });
    const old = {
      node: 'a',
      generation: 1,
      state: 'running' as const,
      pid: 5,
      pidStartTicks: 1,
      restarts: 0,
      exitStatus: null,
      error: null,
      startedAt: 1,
      endedAt: null,
    };
    assert.equal(taskView(r, old, true).state, 'pending', 'a status of an earlier placement is not this one’s');
    const now = { ...old, generation: 2 };
    assert.deepEqual([taskView(r, now, true).state, taskView(r, now, true).pid, taskView(r, now, true).pinned], ['running', 5, 'a']);
    const down = taskView(r, now, false);
    assert.deepEqual([down.state, down.reason], ['unknown', 'node a is down']);
  });
});
