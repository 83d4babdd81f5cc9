/**
 * The test suite's own helpers, on fixtures: the kernel skip check reads the controllers
 * where the daemon would find them (a v2-only host without the cpu controller skips, one
 * with it runs), KernelGroups reads both cgroup layouts by meaning, and fuzz seeds are
 * checked. The e2e tests use these helpers against the real kernel.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelSkipReason } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';
import { givenFuzzSeed, prng } from '../helpers/prng.js';

const scratch = mkdtempSync(join(tmpdir(), 'sliced-helpers-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

let fixtures = 0;
/** A fake /proc (self/mounts, self/cgroup) and the files it points at. */
function host(mounts: string[], cgroup: string[], files: Record<string, string> = {}): string {
  const dir = join(scratch, `host${++fixtures}`);
  mkdirSync(join(dir, 'proc', 'self'), { recursive: true });
  writeFileSync(join(dir, 'proc', 'self', 'mounts'), mounts.map((m) => m.replaceAll('@', dir)).join('\n') + '\n');
  writeFileSync(join(dir, 'proc', 'self', 'cgroup'), cgroup.join('\n') + '\n');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return join(dir, 'proc');
}

describe('kernelSkipReason', () => {
  const v2Mount = 'cgroup2 @/cg cgroup2 rw,nosuid,nodev,noexec,relatime 0 0';

  test('a pure cgroup v2 host whose group offers cpu and memory runs the tests', () => {
    const proc = host([v2Mount], ['0::/sliced.service'], { 'cg/sliced.service/cgroup.controllers': 'cpuset cpu io memory pids\n' });
    assert.equal(kernelSkipReason({ procRoot: proc, uid: 0 }), null);
  });

  test("a pure cgroup v2 host without the cpu controller in the test's group skips, saying where and what is offered", () => {
    // The old check passed whenever cgroup.controllers existed: the tests then failed at the daemon's start.
    const proc = host([v2Mount], ['0::/user.slice/session-1.scope'], {
      'cg/user.slice/session-1.scope/cgroup.controllers': 'memory pids\n',
    });
    const reason = kernelSkipReason({ procRoot: proc, uid: 0 });
    assert.match(
      reason ?? '',
      /needs the cpu controller in cgroup v2: .*\/cg\/user\.slice\/session-1\.scope\/cgroup\.controllers offers memory pids/,
    );
    const none = host([v2Mount], ['0::/'], { 'cg/cgroup.controllers': '\n' });
    assert.match(kernelSkipReason({ procRoot: none, uid: 0 }) ?? '', /needs the cpu and memory controllers in cgroup v2: .* offers none/);
  });

  test('cgroup v1: cpu, cpuacct, memory and freezer hierarchies run the tests; one missing skips naming it', () => {
    const v1 = [
      'cgroup @/v1/cpu cgroup rw,nosuid,cpu 0 0',
      'cgroup @/v1/cpuacct cgroup rw,nosuid,cpuacct 0 0',
      'cgroup @/v1/memory cgroup rw,nosuid,memory 0 0',
      'cgroup @/v1/freezer cgroup rw,nosuid,freezer 0 0',
      'cgroup2 @/v1/unified cgroup2 rw 0 0',
    ];
    assert.equal(kernelSkipReason({ procRoot: host(v1, ['1:cpu:/', '0::/']), uid: 0 }), null);
    assert.match(
      kernelSkipReason({
        procRoot: host(
          v1.filter((m) => !m.includes('freezer')),
          ['1:cpu:/'],
        ),
        uid: 0,
      }) ?? '',
      /freezer is not mounted/,
    );
  });

  test('nothing mounted, or not root: skipped with the reason', () => {
    assert.match(kernelSkipReason({ procRoot: host([], []), uid: 0 }) ?? '', /neither a cgroup v1 cpu hierarchy nor cgroup2 is mounted/);
    assert.match(kernelSkipReason({ procRoot: host([v2Mount], ['0::/']), uid: 1000 }) ?? '', /needs root/);
  });
});

describe('KernelGroups reads both layouts by meaning', () => {
  const files = (root: string, entries: Record<string, string>): void => {
    for (const [path, text] of Object.entries(entries)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), text);
    }
  };

  test('cgroup v1: shares, quota, cpuacct, limit_in_bytes, oom_control, freezer.state, pids, procs per hierarchy', () => {
    const base = join(scratch, 'v1');
    const roots = Object.fromEntries(['cpu', 'cpuacct', 'memory', 'freezer', 'pids', 'unified'].map((h) => [h, join(base, h, 'sliced-x')]));
    const g = 'd.domain/s.slice';
    files(base, {
      [`cpu/sliced-x/${g}/cpu.shares`]: '3072\n',
      [`cpu/sliced-x/${g}/cpu.cfs_quota_us`]: '150000\n',
      [`cpu/sliced-x/${g}/cpu.cfs_period_us`]: '100000\n',
      [`cpu/sliced-x/${g}/cgroup.procs`]: '12\n34\n',
      'cpu/sliced-x/other.slice/cpu.cfs_quota_us': '-1\n',
      'cpu/sliced-x/other.slice/cpu.cfs_period_us': '100000\n',
      [`cpuacct/sliced-x/${g}/cpuacct.usage`]: '123456789\n',
      [`cpuacct/sliced-x/${g}/cgroup.procs`]: '12\n34\n',
      [`memory/sliced-x/${g}/memory.limit_in_bytes`]: '268435456\n',
      [`memory/sliced-x/${g}/memory.oom_control`]: 'oom_kill_disable 0\nunder_oom 0\noom_kill 3\n',
      [`memory/sliced-x/${g}/cgroup.procs`]: '12\n34\n',
      'memory/sliced-x/other.slice/memory.limit_in_bytes': '9223372036854771712\n',
      [`freezer/sliced-x/${g}/freezer.state`]: 'FROZEN\n',
      [`freezer/sliced-x/${g}/cgroup.procs`]: '12\n',
      [`pids/sliced-x/${g}/pids.max`]: 'max\n',
      [`pids/sliced-x/${g}/cgroup.procs`]: '12\n34\n',
      [`unified/sliced-x/${g}/cgroup.procs`]: '12\n34\n',
    });
    const groups = KernelGroups.fromNode({ backend: 'v1', cgroupRoots: roots });
    assert.equal(groups.cpuWeight(g), 300, 'cpu.shares 3072 is weight 300 (x 1024 / 100)');
    assert.equal(groups.cpuLimit(g), 1500);
    assert.equal(groups.cpuLimit('other.slice'), null);
    assert.equal(groups.cpuUsageNs(g), 123456789);
    assert.equal(groups.memoryLimit(g), 256 * 1024 * 1024);
    assert.equal(groups.memoryLimit('other.slice'), null, 'page-rounded LONG_MAX is no limit');
    assert.equal(groups.oomKills(g), 3);
    assert.equal(groups.freezer(g), 'frozen');
    assert.equal(groups.pidsMax(g), null);
    assert.deepEqual(groups.procs(g), [12, 34]);
    assert.deepEqual(groups.missingFrom(g, 34), ['freezer'], 'a process missing from one hierarchy is named');
    assert.equal(groups.realtimeGroupsReason()?.includes('CONFIG_RT_GROUP_SCHED'), true);
    const text =
      '12:pids:/x/sliced-x/d.domain/s.slice\n5:cpu:/x/sliced-x/d.domain/s.slice\n4:cpuacct:/x/sliced-x/d.domain/s.slice\n3:memory:/x/sliced-x/d.domain/s.slice\n2:freezer:/x/sliced-x\n0::/x/sliced-x/d.domain/s.slice\n';
    assert.deepEqual(groups.misplaced(text, g), ['freezer: /x/sliced-x']);
  });

  test('cgroup v2: cpu.weight, cpu.max, cpu.stat, memory.max, memory.events, cgroup.events, pids.max', () => {
    const base = join(scratch, 'v2');
    const root = join(base, 'sliced-y');
    const g = 'a.slice';
    files(root, {
      [`${g}/cpu.weight`]: '250\n',
      [`${g}/cpu.max`]: '60000 100000\n',
      [`${g}/cpu.stat`]: 'usage_usec 4200\nuser_usec 4000\nsystem_usec 200\n',
      [`${g}/memory.max`]: 'max\n',
      [`${g}/memory.events`]: 'low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\n',
      [`${g}/cgroup.events`]: 'populated 1\nfrozen 0\n',
      [`${g}/cgroup.freeze`]: '1\n',
      [`${g}/pids.max`]: '64\n',
      [`${g}/cgroup.procs`]: '99\n',
      'b.slice/cpu.max': 'max 100000\n',
    });
    const groups = KernelGroups.fromNode({ backend: 'v2', cgroupRoots: { unified: root } });
    assert.equal(groups.cpuWeight(g), 250);
    assert.equal(groups.cpuLimit(g), 600);
    assert.equal(groups.cpuLimit('b.slice'), null);
    assert.equal(groups.cpuUsageNs(g), 4_200_000);
    assert.equal(groups.memoryLimit(g), null);
    assert.equal(groups.oomKills(g), 2);
    assert.equal(groups.freezer(g), 'freezing', 'asked to freeze, not frozen yet');
    assert.equal(groups.pidsMax(g), 64);
    assert.deepEqual(groups.procsByHierarchy(g), { unified: [99] });
    assert.deepEqual(groups.misplaced('0::/sliced-y/a.slice\n', g), []);
    assert.deepEqual(groups.misplaced('0::/sliced-y/b.slice\n', g), ['unified: /sliced-y/b.slice']);
    assert.match(groups.realtimeGroupsReason() ?? '', /cgroup v2 has no RT group scheduling/);
    assert.throws(() => groups.dir('cpuacct'), /has no cpuacct hierarchy; it has: unified/);
  });
});

describe('fuzz seeds', () => {
  test('SLICED_FUZZ_SEED is a whole number from 0 to 4294967295; the same seed gives the same sequence', () => {
    assert.equal(givenFuzzSeed({}), null);
    assert.equal(givenFuzzSeed({ SLICED_FUZZ_SEED: '4294967295' }), 4294967295);
    for (const bad of ['-1', '1.5', 'abc', '4294967296', ' 7']) {
      assert.throws(() => givenFuzzSeed({ SLICED_FUZZ_SEED: bad }), /SLICED_FUZZ_SEED .* must be a whole number from 0 to 4294967295/, bad);
    }
    const a = prng(42);
    const b = prng(42);
    for (let i = 0; i < 10; i++) assert.equal(a(), b());
  });
});
