import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  SUPERVISOR_GROUP,
  delegatedGroups,
  delegationRecordSchema,
  mergeRecord,
  sortMembers,
  strangersMessage,
} from '../../src/core/delegation.js';

describe('delegated groups: where the daemon and its root group go', () => {
  test('under systemd the service group is managed and the daemon moves into its supervisor leaf', () => {
    assert.equal(SUPERVISOR_GROUP, 'supervisor');
    assert.deepEqual(delegatedGroups('/system.slice/sliced.service', false), {
      managed: '/system.slice/sliced.service',
      supervisor: '/system.slice/sliced.service/supervisor',
      inSupervisor: false,
    });
  });

  test('a daemon already in the leaf (a restart; DelegateSubgroup=supervisor) manages the parent', () => {
    assert.deepEqual(delegatedGroups('/system.slice/sliced.service/supervisor', false), {
      managed: '/system.slice/sliced.service',
      supervisor: '/system.slice/sliced.service/supervisor',
      inSupervisor: true,
    });
    assert.deepEqual(delegatedGroups('/supervisor', false), { managed: '/', supervisor: '/supervisor', inSupervisor: true });
  });

  test('the real root group is exempt: no move; the root of a cgroup namespace is not', () => {
    assert.deepEqual(delegatedGroups('/', true), { managed: '/', supervisor: null, inSupervisor: false });
    assert.deepEqual(delegatedGroups('/', false), { managed: '/', supervisor: '/supervisor', inSupervisor: false });
  });

  test('paths are normalised; relative paths and ".." are refused', () => {
    assert.equal(delegatedGroups('/a//b/', false).managed, '/a/b');
    assert.throws(() => delegatedGroups('a/b', false), /must be absolute/);
    assert.throws(() => delegatedGroups('/a/../b', false), /must not contain "\.\."/);
  });

  test('property: the leaf is always a child of the managed group, never the group itself', () => {
    const segment = fc.stringMatching(/^[a-z@.-]{1,12}$/).filter((s) => s !== '.' && s !== '..');
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 5 }), fc.boolean(), (parts, exempt) => {
        const own = `/${parts.join('/')}`;
        const g = delegatedGroups(own, exempt);
        if (g.supervisor === null) {
          assert.equal(own, '/');
          return;
        }
        assert.equal(g.supervisor, g.managed === '/' ? `/${SUPERVISOR_GROUP}` : `${g.managed}/${SUPERVISOR_GROUP}`);
        assert.equal(g.inSupervisor, own === g.supervisor);
      }),
    );
  });
});

describe('members of the managed group: ours or strangers', () => {
  // 100 is the daemon. 101 its helper, 102 the helper's child; 50 the shell that started
  // the daemon (its parent), 51 a sleep that shell started (a sibling), 60 unrelated.
  const parents = new Map<number, number>([
    [100, 50],
    [101, 100],
    [102, 101],
    [50, 1],
    [51, 50],
    [60, 1],
    [1, 0],
  ]);
  const parentOf = (pid: number): number | null => parents.get(pid) ?? null;

  test('the daemon and its descendants are ours; its parent, siblings and others are strangers', () => {
    assert.deepEqual(sortMembers([50, 51, 100, 101, 102, 60], 100, parentOf), { ours: [100, 101, 102], strangers: [50, 51, 60] });
  });

  test('a process gone meanwhile is left out; the daemon alone is ours', () => {
    assert.deepEqual(sortMembers([100, 999], 100, parentOf), { ours: [100], strangers: [] });
    assert.deepEqual(sortMembers([], 100, parentOf), { ours: [], strangers: [] });
  });

  test('a chain that loops or runs deeper than 64 parents is a stranger, not an endless walk', () => {
    const loop = (pid: number): number => (pid === 7 ? 8 : 7);
    assert.deepEqual(sortMembers([7], 100, loop), { ours: [], strangers: [7] });
    assert.deepEqual(
      sortMembers([1000], 1, (pid) => (pid > 1 ? pid - 1 : 0)),
      { ours: [], strangers: [1000] },
    );
  });

  test('the refusal names the group, each stranger with its command, and how to fix it', () => {
    const message = strangersMessage('/sys/fs/cgroup/x', [
      { pid: 50, command: 'bash' },
      { pid: 51, command: null },
    ]);
    assert.match(message, /^cgroup \/sys\/fs\/cgroup\/x holds processes sliced did not start: 50 \(bash\), 51 \(\?\)\. /);
    assert.match(message, /supervisor\//);
    assert.match(message, /Delegate=yes/);
  });
});

describe('the delegation record', () => {
  const record = { managed: '/sys/fs/cgroup/s', supervisorMade: true, controllersAdded: ['cpu', 'memory'] };

  test('what earlier starts made in the same group stays listed; another group starts afresh', () => {
    const restart = { managed: '/sys/fs/cgroup/s', supervisorMade: false, controllersAdded: ['pids'] };
    assert.deepEqual(mergeRecord(record, restart), {
      managed: '/sys/fs/cgroup/s',
      supervisorMade: true,
      controllersAdded: ['cpu', 'memory', 'pids'],
    });
    assert.deepEqual(mergeRecord(null, restart), restart);
    const moved = { managed: '/sys/fs/cgroup/t', supervisorMade: false, controllersAdded: [] };
    assert.deepEqual(mergeRecord(record, moved), moved);
  });

  test('the schema takes exactly that shape', () => {
    assert.equal(delegationRecordSchema.safeParse(record).success, true);
    assert.equal(delegationRecordSchema.safeParse({ ...record, managed: 'relative' }).success, false);
    assert.equal(delegationRecordSchema.safeParse({ ...record, controllersAdded: ['cpu memory'] }).success, false);
    assert.equal(delegationRecordSchema.safeParse({ ...record, extra: 1 }).success, false);
  });
});
