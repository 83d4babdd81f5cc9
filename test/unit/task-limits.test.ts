import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_DOMAIN_PIDS,
  DEFAULT_SLICE_PIDS,
  PIDS_MAX_LIMIT,
  effectivePidsMax,
  mergePids,
  nodePids,
  parsePidsCount,
  parsePidsDefault,
  pidSpace,
} from '../../src/core/task-limits.js';
import { createDomain, createSlice, updateDomain, updateSlice } from '../../src/core/changes.js';
import {
  domainCreateSchema,
  emptyState,
  parseInput,
  sliceCreateSchema,
  sliceUpdateSchema,
  withAllocationDefaults,
  type DomainSpec,
  type SliceSpec,
} from '../../src/core/model.js';
import { isSlicedError } from '../../src/core/errors.js';
import { loadConfig } from '../../src/daemon/config.js';
import { readTaskCount } from '../../src/kernel/node-stats.js';

const node = {
  cpuMillicores: 2000,
  systemReserveMillicores: 100,
  memoryBytes: 8 * 1024 ** 3,
  pids: nodePids({ percent: 15 }, 32768, '15%'),
};

describe('pids: counts and the default', () => {
  test("a count is a whole number from 1 to the kernel's PID_MAX_LIMIT", () => {
    assert.deepEqual(parsePidsCount(1), { ok: true, value: 1 });
    assert.deepEqual(parsePidsCount(' 4915 '), { ok: true, value: 4915 });
    assert.deepEqual(parsePidsCount(PIDS_MAX_LIMIT), { ok: true, value: 4194304 });
    for (const bad of [0, -1, 1.5, '1.5', 'x', '', PIDS_MAX_LIMIT + 1, Number.NaN, null, '0x10']) {
      assert.equal(parsePidsCount(bad).ok, false, String(bad));
    }
  });

  test('the default is 15% of min(pid_max, threads-max), like systemd\'s DefaultTasksMax; a count or "none" may replace it', () => {
    assert.equal(pidSpace(32768, 192735), 32768);
    assert.equal(pidSpace(4194304, 63000), 63000, 'threads-max bounds a small machine');
    assert.equal(nodePids({ percent: 15 }, 32768, '15%').sliceDefault, 4915);
    assert.equal(nodePids({ percent: 15 }, 4194304, '15%').sliceDefault, 629145);
    assert.equal(nodePids({ percent: 0.001 }, 1000, '0.001%').sliceDefault, 1, 'never 0: that would stop every fork');
    assert.equal(nodePids({ count: 2000 }, 32768, '2000').sliceDefault, 2000);
    assert.equal(nodePids(null, 32768, 'none').sliceDefault, null);
    assert.deepEqual(parsePidsDefault('15%'), { ok: true, value: { percent: 15 } });
    assert.deepEqual(parsePidsDefault('2000'), { ok: true, value: { count: 2000 } });
    assert.deepEqual(parsePidsDefault(2000), { ok: true, value: { count: 2000 } });
    assert.deepEqual(parsePidsDefault('none'), { ok: true, value: null });
    for (const bad of ['0%', '101%', 'abc', 0, '15 %x']) {
      const parsed = parsePidsDefault(bad);
      assert.equal(parsed.ok, false, String(bad));
      if (!parsed.ok) assert.match(parsed.reason, /must be a share of the node's PIDs like "15%" .*or "none"/);
    }
  });

  test('"default" resolves to the node\'s default; numbers and null stand for themselves', () => {
    assert.equal(effectivePidsMax({ max: 'default' }, node), 4915);
    assert.equal(effectivePidsMax({ max: 64 }, node), 64);
    assert.equal(effectivePidsMax({ max: null }, node), null);
    assert.equal(effectivePidsMax({ max: 'default' }, {}), null, 'a node without pids information writes no cap');
  });

  test("a cap above the node's PID space is refused, naming both numbers", () => {
    assert.deepEqual(mergePids(DEFAULT_SLICE_PIDS, undefined, node, 'slice a'), DEFAULT_SLICE_PIDS);
    assert.deepEqual(mergePids(DEFAULT_SLICE_PIDS, { max: 32768 }, node, 'slice a'), { max: 32768 });
    assert.throws(
      () => mergePids(DEFAULT_SLICE_PIDS, { max: 32769 }, node, 'slice a'),
      (err: unknown) =>
        isSlicedError(err) &&
        err.code === 'EINVAL' &&
        err.message ===
          'slice a: pids.max 32769 is above the 32768 tasks this node can hold (min of kernel.pid_max and kernel.threads-max); give at most 32768, or "none"',
    );
  });
});

describe('pids in the model', () => {
  test('schemas: a count, "none"/null, and "default" for slices only; errors say what is allowed', () => {
    assert.deepEqual(parseInput(sliceCreateSchema, { name: 'a', pids: { max: '100' } }, 'slice').pids, { max: 100 });
    assert.deepEqual(parseInput(sliceCreateSchema, { name: 'a', pids: { max: 100 } }, 'slice').pids, { max: 100 });
    assert.deepEqual(parseInput(sliceUpdateSchema, { pids: { max: 'none' } }, 'slice').pids, { max: null });
    assert.deepEqual(parseInput(sliceUpdateSchema, { pids: { max: null } }, 'slice').pids, { max: null });
    assert.deepEqual(parseInput(sliceUpdateSchema, { pids: { max: 'default' } }, 'slice').pids, { max: 'default' });
    assert.deepEqual(parseInput(domainCreateSchema, { name: 'd', pids: { max: 20 } }, 'domain').pids, { max: 20 });
    assert.throws(
      () => parseInput(sliceUpdateSchema, { pids: { max: 0 } }, 'slice'),
      (err: unknown) =>
        isSlicedError(err) &&
        err.message ===
          'slice: pids.max 0 must be a whole number of tasks from 1 to 4194304, "none" or "default" (the node\'s default share of its PIDs)',
    );
    assert.throws(
      () => parseInput(domainCreateSchema, { name: 'd', pids: { max: 'default' } }, 'domain'),
      (err: unknown) =>
        isSlicedError(err) && err.message === 'domain: pids.max "default" must be a whole number of tasks from 1 to 4194304, "none"',
    );
    assert.throws(() => parseInput(sliceUpdateSchema, { pids: { limit: 5 } }, 'slice'), /unknown field "limit" in pids/);
  });

  test('a new slice gets "default", a new domain none; updates keep what they do not name', () => {
    let state = createSlice(emptyState(), { name: 's', user: 'sl-s', userCreated: true }, node);
    state = createDomain(state, { name: 'd' }, node);
    assert.deepEqual(state.slices.get('s')!.pids, { max: 'default' });
    assert.deepEqual(state.domains.get('d')!.pids, { max: null });
    state = updateSlice(state, 's', { pids: { max: 64 } }, node);
    state = updateSlice(state, 's', { memory: { limit: 64 * 1024 ** 2 } }, node);
    assert.deepEqual(state.slices.get('s')!.pids, { max: 64 });
    state = updateDomain(state, 'd', { pids: { max: 500 } }, node);
    assert.deepEqual(state.domains.get('d')!.pids, { max: 500 });
    assert.throws(() => updateDomain(state, 'd', { pids: { max: 40000 } }, node), /domain d: pids\.max 40000 is above the 32768 tasks/);
  });

  test('specs stored before pids existed get the defaults on load: slices "default", domains none', () => {
    const slice = {
      name: 's',
      user: 'sl-s',
      userCreated: true,
      cpu: { reservation: 0, limit: null, shares: 100 },
      memory: { limit: null, high: null, swap: null },
      io: { weight: 100, max: [] },
      domain: null,
      net: null,
    };
    const domain = {
      name: 'd',
      cpu: { reservation: 0, limit: null, shares: 100 },
      memory: { limit: null, high: null, swap: null },
      io: { weight: 100, max: [] },
      parent: null,
    };
    assert.deepEqual(withAllocationDefaults(slice as unknown as SliceSpec).pids, DEFAULT_SLICE_PIDS);
    assert.deepEqual(withAllocationDefaults(domain as unknown as DomainSpec).pids, DEFAULT_DOMAIN_PIDS);
    assert.deepEqual(withAllocationDefaults({ ...slice, pids: { max: 7 } } as SliceSpec).pids, { max: 7 });
  });
});

describe('pids in the daemon settings and /proc', () => {
  test('defaultPidsMax defaults to 15% and is validated with one sentence', () => {
    assert.equal(loadConfig(null, {}).defaultPidsMax, '15%');
    assert.equal(loadConfig(null, { defaultPidsMax: 'none' }).defaultPidsMax, 'none');
    assert.throws(
      () => loadConfig(null, { defaultPidsMax: '150%' }),
      /defaultPidsMax \(--default-pids-max\) "150%" on the command line must be a share of the node's PIDs like "15%"/,
    );
  });

  test('tasks on the node come from the total in /proc/loadavg', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sliced-proc-'));
    try {
      writeFileSync(join(dir, 'loadavg'), '0.52 0.58 0.59 3/812 24601\n');
      assert.equal(readTaskCount(dir), 812);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
