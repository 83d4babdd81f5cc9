import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  bfqWeight,
  effectiveIoCaps,
  splitCap,
  ioMaxArguments,
  ioWeightNotes,
  mergeIo,
  parseIoMaxArgument,
  parseMajMin,
  resolveIoInput,
  weightNoEffect,
  type DeviceSchedulers,
} from '../../src/core/io.js';
import { createDomain, createSlice, moveMember, updateSlice } from '../../src/core/changes.js';
import {
  DEFAULT_IO,
  emptyState,
  parseInput,
  sliceUpdateSchema,
  withAllocationDefaults,
  type DesiredState,
  type IoDeviceLimit,
  type SliceSpec,
} from '../../src/core/model.js';
import { parseRate } from '../../src/core/units.js';
import { isSlicedError } from '../../src/core/errors.js';

const M = 1024 ** 2;
const node = { cpuMillicores: 2000, systemReserveMillicores: 0, memoryBytes: 8 * 1024 ** 3 };
const fakeResolve = (name: string): { device: string; path: string | null } => {
  const majMin = parseMajMin(name);
  if (majMin) return { device: majMin, path: null };
  if (name === '/dev/loop7') return { device: '7:7', path: name };
  throw new Error(`no such device ${name}`);
};
const cap = (device: string, caps: Partial<IoDeviceLimit>): IoDeviceLimit => ({
  device,
  path: null,
  rbps: null,
  wbps: null,
  riops: null,
  wiops: null,
  ...caps,
});

function refusedMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isSlicedError(err), `expected a SlicedError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('was accepted');
}

describe('BFQ weight mapping', () => {
  test('io.weight/10 keeps sibling ratios and stays in 1..1000', () => {
    assert.equal(bfqWeight(100), 10);
    assert.equal(bfqWeight(900), 90);
    assert.equal(bfqWeight(10000), 1000);
    assert.equal(bfqWeight(1), 1);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10000 }), (w) => {
        const b = bfqWeight(w);
        return b >= 1 && b <= 1000 && (w < 10 || Math.abs(b * 10 - w) <= 5);
      }),
    );
  });
});

describe('--io-max arguments', () => {
  test('path or MAJ:MIN, caps or none', () => {
    assert.deepEqual(parseIoMaxArgument('/dev/vdb:rbps=10M,wbps=5M'), { device: '/dev/vdb', caps: { rbps: '10M', wbps: '5M' } });
    assert.deepEqual(parseIoMaxArgument('253:16:riops=100,wiops=50'), { device: '253:16', caps: { riops: '100', wiops: '50' } });
    assert.deepEqual(parseIoMaxArgument('7:0:none'), { device: '7:0', caps: 'none' });
    assert.deepEqual(ioMaxArguments(['7:0:rbps=1M', '/dev/x:none']), { '7:0': { rbps: '1M' }, '/dev/x': 'none' });
  });

  test('malformed arguments are refused with the syntax', () => {
    assert.match(
      refusedMessage(() => parseIoMaxArgument('/dev/vdb')),
      /must look like DEV:rbps=10M/,
    );
    assert.match(
      refusedMessage(() => parseIoMaxArgument('/dev/vdb:speed=1M')),
      /"speed=1M".*keys are rbps, wbps, riops, wiops/,
    );
    assert.match(
      refusedMessage(() => parseIoMaxArgument('/dev/vdb:rbps=')),
      /"rbps="/,
    );
    assert.match(
      refusedMessage(() => parseIoMaxArgument('/dev/vdb:rbps=1M,rbps=2M')),
      /sets rbps twice/,
    );
  });
});

describe('io input schema', () => {
  test('weights, rates and IOPS in canonical numbers', () => {
    const parsed = parseInput(
      sliceUpdateSchema,
      { io: { weight: '300', max: { '/dev/vdb': { rbps: '10M', wbps: '5M/s', riops: '100', wiops: 'none' }, '7:0': 'none' } } },
      'slice',
    );
    assert.deepEqual(parsed.io, { weight: 300, max: { '/dev/vdb': { rbps: 10 * M, wbps: 5 * M, riops: 100, wiops: null }, '7:0': null } });
    assert.equal(parseRate('10M').ok && parseRate('10M/s').ok, true);
  });

  test('bad values name the field, the value and what is allowed', () => {
    const bad = (body: unknown): string => refusedMessage(() => parseInput(sliceUpdateSchema, body, 'slice'));
    assert.match(bad({ io: { weight: 0 } }), /io\.weight 0 must be a whole number from 1 to 10000/);
    assert.match(bad({ io: { weight: 10001 } }), /io\.weight 10001 must be a whole number from 1 to 10000/);
    assert.match(bad({ io: { max: { '/dev/vdb': { rbps: 0 } } } }), /io\.max\.\/dev\/vdb\.rbps 0 must be at least 1 byte per second/);
    assert.match(bad({ io: { max: { '/dev/vdb': { riops: '1.5' } } } }), /riops "1\.5" must be a whole number of operations per second/);
    assert.match(bad({ io: { max: { '/dev/vdb': { rbps: 'fast' } } } }), /rbps "fast" must be bytes per second/);
    assert.match(bad({ io: { max: { '/dev/vdb': { burst: 1 } } } }), /unknown field "burst"/);
    assert.match(bad({ memory: { high: 'lots' } }), /memory\.high "lots"/);
  });
});

describe('merging io updates', () => {
  test('a spec stored before I/O existed gets the default I/O allocation and no high or swap cap', () => {
    const old = {
      name: 'a',
      user: 'sl-a',
      userCreated: true,
      cpu: { reservation: 0, limit: null, shares: 100 },
      memory: { limit: 5 * M },
      domain: null,
    } as unknown as SliceSpec;
    const loaded = withAllocationDefaults(old);
    assert.deepEqual(loaded.memory, { limit: 5 * M, high: null, swap: null });
    assert.deepEqual(loaded.io, DEFAULT_IO);
  });

  test('given fields replace, none clears one cap or the device, others stay', () => {
    let io = mergeIo(DEFAULT_IO, resolveIoInput({ weight: 300, max: { '/dev/loop7': { rbps: 10 * M, wbps: 5 * M } } }, fakeResolve));
    assert.deepEqual(io, { weight: 300, max: [cap('7:7', { path: '/dev/loop7', rbps: 10 * M, wbps: 5 * M })] });
    io = mergeIo(io, resolveIoInput({ max: { '7:7': { wbps: null, riops: 50 } } }, fakeResolve));
    assert.deepEqual(io, { weight: 300, max: [cap('7:7', { path: '/dev/loop7', rbps: 10 * M, riops: 50 })] });
    io = mergeIo(io, resolveIoInput({ max: { '8:0': { rbps: M }, '7:7': null } }, fakeResolve));
    assert.deepEqual(io, { weight: 300, max: [cap('8:0', { rbps: M })] });
  });

  test('an unknown device is refused by the resolver before anything changes', () => {
    const state = createSlice(emptyState(), { name: 'a', user: 'sl-a', userCreated: true }, node);
    assert.throws(
      () => updateSlice(state, 'a', { io: resolveIoInput({ max: { '/dev/nope': { rbps: M } } }, fakeResolve) }, node),
      /no such device/,
    );
    assert.deepEqual(state.slices.get('a')!.io, DEFAULT_IO);
  });

  test('memory.high above memory.limit is refused', () => {
    const state = createSlice(emptyState(), { name: 'a', user: 'sl-a', userCreated: true, memory: { limit: 64 * M } }, node);
    assert.match(
      refusedMessage(() => updateSlice(state, 'a', { memory: { high: 128 * M } }, node)),
      /memory\.high 128M is above memory\.limit 64M/,
    );
  });
});

describe('effective caps', () => {
  test('splitCap: proportional, at least 1 each, never more than the whole', () => {
    assert.deepEqual(splitCap(1000, [100, 300]), [250, 750]);
    assert.deepEqual(splitCap(1000, [1998, 1, 1]), [998, 1, 1]);
    assert.deepEqual(splitCap(10, [1, 1, 1]), [3, 3, 3]);
  });

  function setup(): DesiredState {
    let s = emptyState();
    s = createDomain(s, { name: 'd', io: { max: [{ device: '7:0', path: null, caps: { rbps: 10 * M, wiops: 300 } }] } }, node);
    s = createSlice(s, { name: 'a', user: 'sl-a', userCreated: true, domain: 'd', io: { weight: 100 } }, node);
    s = createSlice(
      s,
      {
        name: 'b',
        user: 'sl-b',
        userCreated: true,
        domain: 'd',
        io: { weight: 300, max: [{ device: '7:0', path: null, caps: { rbps: M } }] },
      },
      node,
    );
    return s;
  }

  test('v2: every group gets its own caps (the kernel nests them)', () => {
    const caps = effectiveIoCaps(setup(), true);
    assert.deepEqual(caps.get('domain/d'), [cap('7:0', { rbps: 10 * M, wiops: 300 })]);
    assert.deepEqual(caps.get('slice/a'), []);
    assert.deepEqual(caps.get('slice/b'), [cap('7:0', { rbps: M })]);
  });

  test('v1: a domain cap is split among members by io.weight, bounded by own caps', () => {
    const caps = effectiveIoCaps(setup(), false);
    assert.deepEqual(caps.get('slice/a'), [cap('7:0', { rbps: 10 * M * 0.25, wiops: 75 })]);
    assert.deepEqual(caps.get('slice/b'), [cap('7:0', { rbps: M, wiops: 225 })]);
  });

  test('v1: nested domains split their part again; a move recomputes', () => {
    let s = setup();
    s = createDomain(s, { name: 'inner', parent: 'd', io: { weight: 100 } }, node);
    s = createSlice(s, { name: 'c', user: 'sl-c', userCreated: true, domain: 'inner' }, node);
    const caps = effectiveIoCaps(s, false);
    // d's members: a (100), b (300), inner (100): inner gets 1/5, and c all of inner's part.
    assert.equal(caps.get('slice/c')![0]!.rbps, 2 * M);
    assert.equal(caps.get('slice/a')![0]!.rbps, 2 * M);
    const moved = effectiveIoCaps(moveMember(s, 'c', null, node), false);
    assert.deepEqual(moved.get('slice/c'), []);
  });

  test('v1: the parts of a domain cap never add up to more than the cap (when it allows 1 per member)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 12, max: 1e9 }),
        fc.array(fc.integer({ min: 1, max: 10000 }), { minLength: 1, maxLength: 12 }),
        (limit, weights) => {
          let s = createDomain(emptyState(), { name: 'd', io: { max: [{ device: '8:0', path: null, caps: { rbps: limit } }] } }, node);
          weights.forEach((weight, i) => {
            s = createSlice(s, { name: `s${i}`, user: `sl-s${i}`, userCreated: true, domain: 'd', io: { weight } }, node);
          });
          const caps = effectiveIoCaps(s, false);
          const total = weights.reduce((sum, _w, i) => sum + caps.get(`slice/s${i}`)![0]!.rbps!, 0);
          return total <= limit;
        },
      ),
    );
  });
});

describe('where io.weight has no effect, and why (kernel builds differ)', () => {
  const noBfq: DeviceSchedulers = { device: '7:3', scheduler: 'none', schedulers: ['none', 'mq-deadline', 'kyber'] };
  const offered: DeviceSchedulers = { device: '7:4', scheduler: 'mq-deadline', schedulers: ['mq-deadline', 'bfq', 'none'] };
  const bfq: DeviceSchedulers = { device: '7:5', scheduler: 'bfq', schedulers: ['mq-deadline', 'bfq', 'none'] };
  const stacked: DeviceSchedulers = { device: '253:0', scheduler: null, schedulers: [] };
  const fine = { groups: null, bfqLoadFailure: null };
  const failed = { groups: null, bfqLoadFailure: 'modprobe: FATAL: Module bfq not found in directory /lib/modules/6.18.44' };

  test('a device: acts only with bfq active and weight files in the groups; otherwise the remedy or the reason', () => {
    assert.equal(weightNoEffect(bfq, fine, 'DEV'), null);
    assert.equal(weightNoEffect(bfq, { groups: 'no blkio', bfqLoadFailure: null }, 'DEV'), 'no blkio');
    assert.equal(
      weightNoEffect(offered, fine, '/dev/loop4'),
      'it uses the mq-deadline I/O scheduler, not bfq; slicectl io enable-bfq /dev/loop4 switches it',
    );
    assert.equal(
      weightNoEffect(noBfq, fine, 'DEV'),
      'it uses the none I/O scheduler, not bfq, and the kernel offers only none, mq-deadline, kyber there: bfq is not built in and its module is not loaded; slicectl io enable-bfq DEV tries to load it',
    );
    assert.match(
      weightNoEffect(noBfq, failed, 'DEV')!,
      /offers only none, mq-deadline, kyber there: bfq is not built in and loading its module failed \(modprobe: FATAL: Module bfq not found/,
    );
    assert.match(weightNoEffect(stacked, fine, 'DEV')!, /no I\/O scheduler of its own/);
  });

  test('a slice capped on devices: one note per capped device without bfq', () => {
    assert.deepEqual(ioWeightNotes(['7:5'], [noBfq, bfq], fine), []);
    const notes = ioWeightNotes(['7:3', '7:5', '7:4'], [noBfq, offered, bfq], failed);
    assert.equal(notes.length, 2);
    assert.match(
      notes[0]!,
      /^io\.weight has no effect on device 7:3, only caps apply: it uses the none I\/O scheduler, not bfq, and the kernel offers only/,
    );
    assert.equal(
      notes[1],
      'io.weight has no effect on device 7:4, only caps apply: it uses the mq-deadline I/O scheduler, not bfq; slicectl io enable-bfq 7:4 switches it',
    );
  });

  test('a slice without caps: nothing while one device carries weights, else one node-wide reason', () => {
    assert.deepEqual(ioWeightNotes([], [noBfq, bfq], fine), []);
    assert.deepEqual(ioWeightNotes([], [noBfq, offered], fine), [
      'io.weight has no effect on any block device of this node, only caps apply: no device uses the bfq I/O scheduler; slicectl io enable-bfq DEV switches one',
    ]);
    assert.deepEqual(ioWeightNotes([], [noBfq, stacked], failed), [
      'io.weight has no effect on any block device of this node, only caps apply: the kernel offers only the I/O schedulers none, mq-deadline, kyber: bfq is not built in and loading its module failed (modprobe: FATAL: Module bfq not found in directory /lib/modules/6.18.44)',
    ]);
    assert.deepEqual(ioWeightNotes([], [bfq], { groups: 'the io controller is not offered', bfqLoadFailure: null }), [
      'io.weight has no effect on any block device of this node, only caps apply: the io controller is not offered',
    ]);
  });
});
