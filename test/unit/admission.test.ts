import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MIN_MEMORY_LIMIT, assertAdmissible, membersOf, type NodeCapacity } from '../../src/core/admission.js';
import {
  createDomain,
  createSlice,
  deleteDomain,
  deleteSlice,
  getDomain,
  getSlice,
  mergeCpu,
  mergeMemory,
  moveMember,
  updateDomain,
  updateSlice,
  type NewSlice,
} from '../../src/core/changes.js';
import { emptyState, type DesiredState, type DomainSpec } from '../../src/core/model.js';
import { domainChain, domainPath, MAX_DOMAIN_DEPTH } from '../../src/core/domains.js';
import { isSlicedError, type ErrorCode, type SlicedError } from '../../src/core/errors.js';

const GiB = 1024 ** 3;
const node: NodeCapacity = { cpuMillicores: 2000, systemReserveMillicores: 100, memoryBytes: 8 * GiB };

function slice(name: string, extra: Partial<NewSlice> = {}): NewSlice {
  return { name, user: `sl-${name.toLowerCase()}`, userCreated: true, ...extra };
}

/** Run a change that must be refused; check the code, that the state was untouched, and return the error. */
function refused(state: DesiredState, code: ErrorCode, change: (s: DesiredState) => unknown): SlicedError {
  const before = structuredClone(state);
  let error: unknown;
  try {
    change(state);
  } catch (err) {
    error = err;
  }
  assert.ok(error !== undefined, 'the change was accepted');
  assert.ok(isSlicedError(error), `expected a SlicedError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  assert.deepEqual(state, before, 'a refused change must leave the input state as it was');
  return error;
}

/** A state built through the change functions, so every step is admitted. */
function build(...steps: ((s: DesiredState) => DesiredState)[]): DesiredState {
  return steps.reduce((s, step) => step(s), emptyState());
}

describe('createSlice', () => {
  test('fills in defaults and canonical values', () => {
    const state = createSlice(emptyState(), slice('web'), node);
    assert.deepEqual(state.slices.get('web'), {
      name: 'web',
      user: 'sl-web',
      userCreated: true,
      cpu: { reservation: 0, limit: null, shares: 100 },
      memory: { limit: null, high: null, swap: null },
      io: { weight: 100, max: [] },
      pids: { max: 'default' },
      domain: null,
      net: null,
    });
    assert.equal(state.domains.size, 0);
  });

  test('returns a new state and leaves the old one alone', () => {
    const before = emptyState();
    const after = createSlice(before, slice('web', { cpu: { reservation: 500 } }), node);
    assert.notEqual(after, before);
    assert.deepEqual(before, emptyState());
    assert.equal(after.slices.get('web')?.cpu.reservation, 500);
  });

  test('reservations may use the whole budget (capacity minus system reserve)', () => {
    const state = build(
      (s) => createSlice(s, slice('a', { cpu: { reservation: 1000 } }), node),
      (s) => createSlice(s, slice('b', { cpu: { reservation: 900 } }), node),
    );
    assert.equal(state.slices.size, 2);
  });

  test('over-commit at the node level is refused with ENOSPC and the numbers', () => {
    const state = build(
      (s) => createSlice(s, slice('a', { cpu: { reservation: 1000 } }), node),
      (s) => createSlice(s, slice('b', { cpu: { reservation: 600 } }), node),
    );
    const err = refused(state, 'ENOSPC', (s) => createSlice(s, slice('c', { cpu: { reservation: 600 } }), node));
    assert.match(err.message, /over-commit at node/);
    assert.match(err.message, /2200m/);
    assert.match(err.message, /1900m/);
    assert.match(err.message, /2000m/);
    assert.match(err.message, /100m/);
    assert.match(err.message, /slice a 1000m, slice b 600m, slice c 600m/);
    assert.deepEqual(err.details, { level: 'node', total: 2200, budget: 1900 });
  });

  test('a single reservation over the budget is refused', () => {
    refused(emptyState(), 'ENOSPC', (s) => createSlice(s, slice('a', { cpu: { reservation: 1901 } }), node));
  });

  test('duplicate slice name is refused with EEXIST', () => {
    const state = createSlice(emptyState(), slice('web'), node);
    const err = refused(state, 'EEXIST', (s) => createSlice(s, slice('web'), node));
    assert.match(err.message, /web already exists/);
  });

  test('slice and domain names share one namespace', () => {
    const state = createDomain(emptyState(), { name: 'shared' }, node);
    const err = refused(state, 'EEXIST', (s) => createSlice(s, slice('shared'), node));
    assert.match(err.message, /share one namespace/);
    const withSlice = createSlice(emptyState(), slice('shared'), node);
    refused(withSlice, 'EEXIST', (s) => createDomain(s, { name: 'shared' }, node));
  });

  test('unknown domain is refused with ENOENT', () => {
    const err = refused(emptyState(), 'ENOENT', (s) => createSlice(s, slice('a', { domain: 'nowhere' }), node));
    assert.match(err.message, /"nowhere"/);
  });

  test('a limit below the reservation is refused with EINVAL', () => {
    const err = refused(emptyState(), 'EINVAL', (s) => createSlice(s, slice('a', { cpu: { reservation: 500, limit: 400 } }), node));
    assert.match(err.message, /slice a: cpu\.limit 400m is below cpu\.reservation 500m/);
    // Equal is fine.
    const ok = createSlice(emptyState(), slice('a', { cpu: { reservation: 500, limit: 500 } }), node);
    assert.equal(ok.slices.get('a')?.cpu.limit, 500);
  });

  test('a limit above the node capacity is refused', () => {
    const err = refused(emptyState(), 'EINVAL', (s) => createSlice(s, slice('a', { cpu: { limit: 2001 } }), node));
    assert.match(err.message, /2001m exceeds the node's capacity of 2000m/);
    // The full node capacity (above the reservable budget) is a valid limit.
    assert.equal(createSlice(emptyState(), slice('a', { cpu: { limit: 2000 } }), node).slices.get('a')?.cpu.limit, 2000);
  });

  test('a limit of 0 is refused', () => {
    const err = refused(emptyState(), 'EINVAL', (s) => createSlice(s, slice('a', { cpu: { limit: 0 } }), node));
    assert.match(err.message, /cpu\.limit 0m/);
  });

  test('a memory limit under 4M is refused; 4M itself is fine', () => {
    assert.equal(MIN_MEMORY_LIMIT, 4 * 1024 * 1024);
    const err = refused(emptyState(), 'EINVAL', (s) => createSlice(s, slice('a', { memory: { limit: MIN_MEMORY_LIMIT - 1 } }), node));
    assert.match(err.message, /memory\.limit 4194303 bytes is below the minimum of 4194304 bytes/);
    const ok = createSlice(emptyState(), slice('a', { memory: { limit: MIN_MEMORY_LIMIT } }), node);
    assert.equal(ok.slices.get('a')?.memory.limit, MIN_MEMORY_LIMIT);
  });
});

describe('domains', () => {
  test('members of a domain must fit the domain’s own reservation', () => {
    const state = build(
      (s) => createDomain(s, { name: 'team', cpu: { reservation: 1000 } }, node),
      (s) => createSlice(s, slice('a', { domain: 'team', cpu: { reservation: 600 } }), node),
      (s) => createSlice(s, slice('b', { domain: 'team', cpu: { reservation: 400 } }), node),
    );
    assert.deepEqual(
      membersOf(state, 'team').map((m) => m.name),
      ['a', 'b'],
    );
    const err = refused(state, 'ENOSPC', (s) => createSlice(s, slice('c', { domain: 'team', cpu: { reservation: 1 } }), node));
    assert.match(err.message, /over-commit at domain team/);
    assert.match(err.message, /1001m/);
    assert.match(err.message, /domain team's own reservation of 1000m/);
    assert.deepEqual(err.details, { level: 'domain team', total: 1001, budget: 1000 });
  });

  test('a domain without a reservation can hold members without reservations only', () => {
    const state = createDomain(emptyState(), { name: 'team' }, node);
    const withMember = createSlice(state, slice('a', { domain: 'team' }), node);
    assert.equal(withMember.slices.get('a')?.domain, 'team');
    refused(state, 'ENOSPC', (s) => createSlice(s, slice('a', { domain: 'team', cpu: { reservation: 1 } }), node));
  });

  test('a domain’s reservation counts at its parent’s level, not its members’', () => {
    // team reserves 1500m of the 1900m budget; its members share those 1500m.
    const state = build(
      (s) => createDomain(s, { name: 'team', cpu: { reservation: 1500 } }, node),
      (s) => createSlice(s, slice('a', { domain: 'team', cpu: { reservation: 1500 } }), node),
      (s) => createSlice(s, slice('b', { cpu: { reservation: 400 } }), node),
    );
    assert.equal(state.slices.size, 2);
    const err = refused(state, 'ENOSPC', (s) => createSlice(s, slice('c', { cpu: { reservation: 1 } }), node));
    assert.match(err.message, /domain team 1500m, slice b 400m, slice c 1m/);
  });

  test('nested domains: each level must fit its own parent', () => {
    const state = build(
      (s) => createDomain(s, { name: 'org', cpu: { reservation: 1000 } }, node),
      (s) => createDomain(s, { name: 'team', parent: 'org', cpu: { reservation: 800 } }, node),
      (s) => createSlice(s, slice('a', { domain: 'team', cpu: { reservation: 800 } }), node),
    );
    assert.deepEqual(domainPath(state, 'team'), ['org', 'team']);
    refused(state, 'ENOSPC', (s) => createDomain(s, { name: 'team2', parent: 'org', cpu: { reservation: 201 } }, node));
    refused(state, 'ENOSPC', (s) => updateDomain(s, 'team', { cpu: { reservation: 700 } }, node));
    const grown = updateDomain(state, 'team', { cpu: { reservation: 1000 } }, node);
    assert.equal(grown.domains.get('team')?.cpu.reservation, 1000);
  });

  test('unknown parent is refused with ENOENT', () => {
    refused(emptyState(), 'ENOENT', (s) => createDomain(s, { name: 'd', parent: 'nope' }, node));
  });

  test('duplicate domain name is refused with EEXIST', () => {
    const state = createDomain(emptyState(), { name: 'd' }, node);
    refused(state, 'EEXIST', (s) => createDomain(s, { name: 'd' }, node));
  });

  test('domain allocations are checked like slice allocations', () => {
    refused(emptyState(), 'EINVAL', (s) => createDomain(s, { name: 'd', cpu: { reservation: 600, limit: 500 } }, node));
    refused(emptyState(), 'EINVAL', (s) => createDomain(s, { name: 'd', cpu: { limit: 3000 } }, node));
    refused(emptyState(), 'EINVAL', (s) => createDomain(s, { name: 'd', memory: { limit: 1024 } }, node));
    refused(emptyState(), 'ENOSPC', (s) => createDomain(s, { name: 'd', cpu: { reservation: 2000 } }, node));
  });

  test('deleting a domain with members is refused with ENOTEMPTY, naming them', () => {
    const state = build(
      (s) => createDomain(s, { name: 'org' }, node),
      (s) => createDomain(s, { name: 'team', parent: 'org' }, node),
      (s) => createSlice(s, slice('a', { domain: 'org' }), node),
    );
    const err = refused(state, 'ENOTEMPTY', (s) => deleteDomain(s, 'org'));
    assert.match(err.message, /domain team/);
    assert.match(err.message, /slice a/);
    const emptied = deleteSlice(deleteDomain(state, 'team'), 'a');
    const gone = deleteDomain(emptied, 'org');
    assert.deepEqual(gone, emptyState());
  });

  test('deleting an unknown domain or slice is refused with ENOENT', () => {
    refused(emptyState(), 'ENOENT', (s) => deleteDomain(s, 'nope'));
    refused(emptyState(), 'ENOENT', (s) => deleteSlice(s, 'nope'));
  });

  test('nesting deeper than the maximum is refused', () => {
    let state = emptyState();
    let parent: string | undefined;
    for (let depth = 1; depth <= MAX_DOMAIN_DEPTH; depth++) {
      state = createDomain(state, { name: `d${depth}`, parent }, node);
      parent = `d${depth}`;
    }
    assert.equal(domainPath(state, parent ?? null).length, MAX_DOMAIN_DEPTH);
    const err = refused(state, 'EINVAL', (s) => createDomain(s, { name: 'too-deep', parent }, node));
    assert.match(err.message, /at most 8 levels/);
  });
});

describe('updateSlice and updateDomain', () => {
  test('merge only the given fields', () => {
    const state = createSlice(
      emptyState(),
      slice('a', { cpu: { reservation: 100, limit: 1000, shares: 50 }, memory: { limit: 64 * 1024 ** 2 } }),
      node,
    );
    const next = updateSlice(state, 'a', { cpu: { shares: 200 } }, node);
    assert.deepEqual(next.slices.get('a')?.cpu, { reservation: 100, limit: 1000, shares: 200 });
    assert.equal(next.slices.get('a')?.memory.limit, 64 * 1024 ** 2);
    const cleared = updateSlice(next, 'a', { cpu: { limit: null }, memory: { limit: null } }, node);
    assert.equal(cleared.slices.get('a')?.cpu.limit, null);
    assert.equal(cleared.slices.get('a')?.memory.limit, null);
    assert.equal(state.slices.get('a')?.cpu.shares, 50, 'the old state keeps its values');
  });

  test('an update that over-commits is refused and leaves the state alone', () => {
    const state = build(
      (s) => createSlice(s, slice('a', { cpu: { reservation: 1000 } }), node),
      (s) => createSlice(s, slice('b', { cpu: { reservation: 800 } }), node),
    );
    const err = refused(state, 'ENOSPC', (s) => updateSlice(s, 'b', { cpu: { reservation: 1200 } }, node));
    assert.match(err.message, /2200m/);
    assert.match(err.message, /1900m/);
  });

  test('lowering a limit below the reservation is refused', () => {
    const state = createSlice(emptyState(), slice('a', { cpu: { reservation: 500 } }), node);
    refused(state, 'EINVAL', (s) => updateSlice(s, 'a', { cpu: { limit: 499 } }, node));
  });

  test('shrinking a domain below its members’ reservations is refused', () => {
    const state = build(
      (s) => createDomain(s, { name: 'team', cpu: { reservation: 1000 } }, node),
      (s) => createSlice(s, slice('a', { domain: 'team', cpu: { reservation: 700 } }), node),
    );
    const err = refused(state, 'ENOSPC', (s) => updateDomain(s, 'team', { cpu: { reservation: 600 } }, node));
    assert.match(err.message, /700m/);
    assert.match(err.message, /600m/);
  });

  test('updating an unknown slice or domain is refused with ENOENT', () => {
    refused(emptyState(), 'ENOENT', (s) => updateSlice(s, 'nope', {}, node));
    refused(emptyState(), 'ENOENT', (s) => updateDomain(s, 'nope', {}, node));
  });
});

describe('moveMember', () => {
  const base = (): DesiredState =>
    build(
      (s) => createDomain(s, { name: 'a', cpu: { reservation: 1000 } }, node),
      (s) => createDomain(s, { name: 'b', parent: 'a', cpu: { reservation: 500 } }, node),
      (s) => createSlice(s, slice('web', { cpu: { reservation: 300 } }), node),
    );

  test('moves a slice into a domain and back', () => {
    const inside = moveMember(base(), 'web', 'b', node);
    assert.equal(inside.slices.get('web')?.domain, 'b');
    const back = moveMember(inside, 'web', null, node);
    assert.equal(back.slices.get('web')?.domain, null);
  });

  test('moving into a domain too small for the reservation is refused with ENOSPC', () => {
    const state = updateSlice(base(), 'web', { cpu: { reservation: 600 } }, node);
    refused(state, 'ENOSPC', (s) => moveMember(s, 'web', 'b', node));
  });

  test('moving to where it already is is refused', () => {
    const state = base();
    const err = refused(state, 'EEXIST', (s) => moveMember(s, 'web', null, node));
    assert.match(err.message, /slice web is already at the node level/);
    const domErr = refused(state, 'EEXIST', (s) => moveMember(s, 'b', 'a', node));
    assert.match(domErr.message, /domain b is already in domain a/);
  });

  test('a domain cycle is refused with ELOOP', () => {
    const state = base();
    const err = refused(state, 'ELOOP', (s) => moveMember(s, 'a', 'b', node));
    assert.match(err.message, /domain cycle/);
    assert.match(err.message, /a -> b -> a|b -> a -> b/);
    refused(state, 'ELOOP', (s) => moveMember(s, 'a', 'a', node));
  });

  test('a cycle is ELOOP even when a domain hanging below it is checked first', () => {
    // "x" was created first, so admission looks at it before "a" and "b"; it hangs below the
    // cycle a -> b -> a without being part of it.
    const state = build(
      (s) => createDomain(s, { name: 'x' }, node),
      (s) => createDomain(s, { name: 'a' }, node),
      (s) => createDomain(s, { name: 'b', parent: 'a' }, node),
      (s) => moveMember(s, 'x', 'b', node),
    );
    assert.deepEqual(domainPath(state, 'x'), ['a', 'b', 'x']);
    const err = refused(state, 'ELOOP', (s) => moveMember(s, 'a', 'b', node));
    assert.match(err.message, /b -> a -> b/);
  });

  test('unknown member or target is refused with ENOENT', () => {
    refused(base(), 'ENOENT', (s) => moveMember(s, 'ghost', null, node));
    refused(base(), 'ENOENT', (s) => moveMember(s, 'web', 'ghost', node));
  });

  test('moving a domain moves its reservation to the new level', () => {
    const state = build(
      (s) => createDomain(s, { name: 'big', cpu: { reservation: 1000 } }, node),
      (s) => createDomain(s, { name: 'small', cpu: { reservation: 500 } }, node),
    );
    refused(state, 'ENOSPC', (s) => moveMember(s, 'big', 'small', node));
    const moved = moveMember(state, 'small', 'big', node);
    assert.equal(moved.domains.get('small')?.parent, 'big');
    assert.deepEqual(
      membersOf(moved, null).map((m) => m.name),
      ['big'],
    );
  });
});

describe('helpers', () => {
  test('getSlice and getDomain', () => {
    const state = build(
      (s) => createDomain(s, { name: 'd' }, node),
      (s) => createSlice(s, slice('s'), node),
    );
    assert.equal(getSlice(state, 's').name, 's');
    assert.equal(getDomain(state, 'd').name, 'd');
    assert.throws(
      () => getSlice(state, 'd'),
      (err: unknown) => isSlicedError(err) && err.code === 'ENOENT',
    );
    assert.throws(
      () => getDomain(state, 's'),
      (err: unknown) => isSlicedError(err) && err.code === 'ENOENT',
    );
  });

  test('mergeCpu and mergeMemory keep what is not given', () => {
    const cpu = { reservation: 100, limit: 500, shares: 10 };
    assert.equal(mergeCpu(cpu, undefined), cpu);
    assert.deepEqual(mergeCpu(cpu, { limit: null }), { reservation: 100, limit: null, shares: 10 });
    assert.deepEqual(mergeCpu(cpu, { reservation: 0 }), { reservation: 0, limit: 500, shares: 10 });
    const memory = { limit: 5, high: 4, swap: null };
    assert.deepEqual(mergeMemory(memory, {}), memory);
    assert.deepEqual(mergeMemory(memory, { limit: null }), { limit: null, high: 4, swap: null });
    assert.deepEqual(mergeMemory(memory, { swap: 3, high: null }), { limit: 5, high: null, swap: 3 });
  });

  test('domainPath lists the chain from the node level down', () => {
    const state = build(
      (s) => createDomain(s, { name: 'a' }, node),
      (s) => createDomain(s, { name: 'b', parent: 'a' }, node),
      (s) => createDomain(s, { name: 'c', parent: 'b' }, node),
    );
    assert.deepEqual(domainPath(state, 'c'), ['a', 'b', 'c']);
    assert.deepEqual(domainPath(state, 'a'), ['a']);
    assert.deepEqual(domainPath(state, null), []);
  });

  test('assertAdmissible catches a dangling domain reference in a hand-made state', () => {
    const state = createSlice(emptyState(), slice('a'), node);
    const broken: DesiredState = { ...state, slices: new Map([['a', { ...state.slices.get('a')!, domain: 'gone' }]]) };
    assert.throws(
      () => assertAdmissible(broken, node),
      (err: unknown) => isSlicedError(err) && err.code === 'ENOENT',
    );
  });
});

describe('properties', () => {
  type Op =
    | { kind: 'slice'; name: string; reservation: number; limit: number | null; domain: string | null }
    | { kind: 'domain'; name: string; reservation: number; limit: number | null; parent: string | null }
    | { kind: 'move'; name: string; to: string | null }
    | { kind: 'update'; name: string; reservation: number }
    | { kind: 'delete'; name: string };
  const names = ['a', 'b', 'c', 'd', 'e', 'f'];
  const nameArb = fc.constantFrom(...names);
  const where = fc.option(nameArb, { nil: null });
  const res = fc.integer({ min: 0, max: 2200 });
  const lim = fc.option(fc.integer({ min: 0, max: 2200 }), { nil: null });
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('slice' as const), name: nameArb, reservation: res, limit: lim, domain: where }),
    fc.record({ kind: fc.constant('domain' as const), name: nameArb, reservation: res, limit: lim, parent: where }),
    fc.record({ kind: fc.constant('move' as const), name: nameArb, to: where }),
    fc.record({ kind: fc.constant('update' as const), name: nameArb, reservation: res }),
    fc.record({ kind: fc.constant('delete' as const), name: nameArb }),
  );

  function apply(state: DesiredState, op: Op): DesiredState {
    switch (op.kind) {
      case 'slice':
        return createSlice(
          state,
          slice(op.name, { cpu: { reservation: op.reservation, limit: op.limit }, domain: op.domain ?? undefined }),
          node,
        );
      case 'domain':
        return createDomain(
          state,
          { name: op.name, cpu: { reservation: op.reservation, limit: op.limit }, parent: op.parent ?? undefined },
          node,
        );
      case 'move':
        return moveMember(state, op.name, op.to, node);
      case 'update':
        return state.slices.get(op.name)
          ? updateSlice(state, op.name, { cpu: { reservation: op.reservation } }, node)
          : updateDomain(state, op.name, { cpu: { reservation: op.reservation } }, node);
      case 'delete':
        return state.slices.get(op.name) ? deleteSlice(state, op.name) : deleteDomain(state, op.name);
    }
  }

  test('any sequence of changes keeps the state admissible, and refusals change nothing', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 25 }), (ops) => {
        let state = emptyState();
        for (const op of ops) {
          const before = structuredClone(state);
          try {
            state = apply(state, op);
          } catch (err) {
            assert.ok(isSlicedError(err), `unexpected error ${String(err)}`);
            assert.deepEqual(state, before);
            continue;
          }
          assertAdmissible(state, node);
          // Names stay unique across slices and domains.
          for (const name of state.slices.keys()) assert.equal(state.domains.get(name), undefined);
          // Node level fits the budget; every domain fits its reservation.
          const sumAt = (domain: string | null) => membersOf(state, domain).reduce((t, m) => t + m.cpu.reservation, 0);
          assert.ok(sumAt(null) <= node.cpuMillicores - node.systemReserveMillicores);
          for (const d of state.domains.values()) assert.ok(sumAt(d.name) <= d.cpu.reservation);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('domainChain: the one walk up the domain tree', () => {
  /** A state with only parent links, as a corrupt or hand-made state could hold them. */
  const linked = (parents: Record<string, string | null>): DesiredState => {
    const state = emptyState();
    for (const [name, parent] of Object.entries(parents)) state.domains.set(name, { parent } as DomainSpec);
    return state;
  };

  test('goes from the domain to the top; a missing domain ends it; null has none', () => {
    const state = linked({ org: null, team: 'org', lost: 'gone' });
    assert.deepEqual(domainChain(state, 'team'), ['team', 'org']);
    assert.deepEqual(domainChain(state, 'lost'), ['lost', 'gone']);
    assert.deepEqual(domainChain(state, null), []);
  });

  test('ends at the first repeated name, so that the loop can be named', () => {
    assert.deepEqual(domainChain(linked({ a: 'b', b: 'c', c: 'b' }), 'a'), ['a', 'b', 'c', 'b']);
  });

  test('stops one past the depth limit, so that a chain too deep shows', () => {
    const parents: Record<string, string | null> = { d0: null };
    for (let i = 1; i < 20; i++) parents[`d${i}`] = `d${i - 1}`;
    assert.equal(domainChain(linked(parents), 'd19').length, MAX_DOMAIN_DEPTH + 1);
  });
});
