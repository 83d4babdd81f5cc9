import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeCapacity } from '../../src/core/admission.js';
import * as changes from '../../src/core/changes.js';
import { planChange, type StateChange } from '../../src/core/change-kinds.js';
import { emptyState, type DesiredState } from '../../src/core/model.js';
import { parseCidr, type NetPool } from '../../src/core/net.js';
import type { SlicedError } from '../../src/core/errors.js';
import { refusalOf } from '../helpers/refusal.js';

const pool: NetPool = { v4: parseCidr('10.213.0.0/24', 4, 'pool4'), v6: parseCidr('fd5c:ed00::/64', 6, 'pool6') };
const node: NodeCapacity = { cpuMillicores: 2000, systemReserveMillicores: 100, memoryBytes: 2 ** 33, net: { pool, capacity: 100e6 } };

/** A state with domain d (holding slice web, networked) and slice db at the node level. */
function state(): DesiredState {
  let s = emptyState();
  s = changes.createDomain(s, { name: 'd' }, node);
  s = changes.createSlice(s, { name: 'web', user: 'sl-web', userCreated: true, domain: 'd', net: {} }, node);
  s = changes.createSlice(s, { name: 'db', user: 'nobody', userCreated: false }, node);
  return changes.reservePort(s, { slice: 'web', address: '10.213.0.200', protocol: 'tcp', port: 80 }, node);
}

/** The error a call throws, as code and message. */
const refusal = (call: () => unknown): SlicedError => refusalOf(call, 'the change');

describe('planChange: every change kind through one entry to changes.ts', () => {
  test('each kind gives the state and result of its function in changes.ts', () => {
    const s = state();
    const cases: Array<[StateChange, DesiredState, unknown]> = [
      (() => {
        const next = changes.createSlice(s, { name: 'new', user: 'sl-new', userCreated: true, cpu: { reservation: 100 } }, node);
        return [
          { kind: 'slice.create', input: { name: 'new', user: 'sl-new', userCreated: true, cpu: { reservation: 100 } } },
          next,
          next.slices.get('new'),
        ] as [StateChange, DesiredState, unknown];
      })(),
      (() => {
        const next = changes.updateSlice(s, 'db', { memory: { limit: 2 ** 30 } }, node);
        return [{ kind: 'slice.update', name: 'db', input: { memory: { limit: 2 ** 30 } } }, next, next.slices.get('db')] as [
          StateChange,
          DesiredState,
          unknown,
        ];
      })(),
      [{ kind: 'slice.delete', name: 'web' }, changes.deleteSlice(s, 'web'), s.slices.get('web')],
      (() => {
        const next = changes.createDomain(s, { name: 'e', parent: 'd' }, node);
        return [{ kind: 'domain.create', input: { name: 'e', parent: 'd' } }, next, next.domains.get('e')] as [
          StateChange,
          DesiredState,
          unknown,
        ];
      })(),
      (() => {
        const next = changes.updateDomain(s, 'd', { pids: { max: 500 } }, node);
        return [{ kind: 'domain.update', name: 'd', input: { pids: { max: 500 } } }, next, next.domains.get('d')] as [
          StateChange,
          DesiredState,
          unknown,
        ];
      })(),
      [{ kind: 'member.move', member: 'db', domain: 'd' }, changes.moveMember(s, 'db', 'd', node), null],
      (() => {
        const input = { slice: 'web', address: '10.213.0.200', protocol: 'udp', port: 53 };
        return [
          { kind: 'port.reserve', input },
          changes.reservePort(s, input, node),
          { address: '10.213.0.200', protocol: 'udp', port: 53, slice: 'web' },
        ] as [StateChange, DesiredState, unknown];
      })(),
      (() => {
        const input = { address: '10.213.0.200', protocol: 'tcp', port: 80 };
        const { next, released } = changes.releasePort(s, input);
        return [{ kind: 'port.release', input }, next, released] as [StateChange, DesiredState, unknown];
      })(),
    ];
    for (const [change, next, result] of cases) {
      const planned = planChange(s, change, node);
      assert.deepEqual(planned.next, next, change.kind);
      assert.deepEqual(planned.result, result, change.kind);
    }
    // A domain is deleted once empty; the result is what was deleted.
    const empty = changes.createDomain(s, { name: 'empty' }, node);
    const planned = planChange(empty, { kind: 'domain.delete', name: 'empty' }, node);
    assert.deepEqual(planned.next, changes.deleteDomain(empty, 'empty'));
    assert.equal(planned.result, empty.domains.get('empty'));
  });

  test('refusals are those of changes.ts, with the same code and message, and leave the state untouched', () => {
    const s = state();
    const before = structuredClone(s);
    const pairs: Array<[StateChange, () => unknown]> = [
      [
        { kind: 'slice.create', input: { name: 'web', user: 'sl-x', userCreated: true } },
        () => changes.createSlice(s, { name: 'web', user: 'sl-x', userCreated: true }, node),
      ],
      [{ kind: 'slice.update', name: 'nope', input: {} }, () => changes.updateSlice(s, 'nope', {}, node)],
      [
        { kind: 'slice.update', name: 'db', input: { cpu: { reservation: 5000 } } },
        () => changes.updateSlice(s, 'db', { cpu: { reservation: 5000 } }, node),
      ],
      [{ kind: 'slice.delete', name: 'nope' }, () => changes.deleteSlice(s, 'nope')],
      [{ kind: 'domain.create', input: { name: 'db' } }, () => changes.createDomain(s, { name: 'db' }, node)],
      [{ kind: 'domain.update', name: 'nope', input: {} }, () => changes.updateDomain(s, 'nope', {}, node)],
      [{ kind: 'domain.delete', name: 'd' }, () => changes.deleteDomain(s, 'd')],
      [{ kind: 'member.move', member: 'web', domain: 'd' }, () => changes.moveMember(s, 'web', 'd', node)],
      [
        { kind: 'port.reserve', input: { slice: 'web', address: '10.213.0.200', protocol: 'tcp', port: 80 } },
        () => changes.reservePort(s, { slice: 'web', address: '10.213.0.200', protocol: 'tcp', port: 80 }, node),
      ],
      [
        { kind: 'port.release', input: { address: '10.213.0.200', protocol: 'udp', port: 9 } },
        () => changes.releasePort(s, { address: '10.213.0.200', protocol: 'udp', port: 9 }),
      ],
    ];
    for (const [change, direct] of pairs) {
      assert.deepEqual(
        refusal(() => planChange(s, change, node)),
        refusal(direct),
        change.kind,
      );
    }
    assert.deepEqual(s, before);
  });
});
