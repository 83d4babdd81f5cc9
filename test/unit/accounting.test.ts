import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fold, summary, type ColumnState, type Count } from '../../src/core/accounting.js';

describe('accounting fold', () => {
  test('growth of the same object is added; a new object or a reset starts from zero', () => {
    let c = fold(undefined, { packets: 10, bytes: 1000 }, 'bridge:1');
    c = fold(c, { packets: 15, bytes: 1500 }, 'bridge:1');
    assert.deepEqual(c.total, { packets: 15, bytes: 1500 });
    c = fold(c, { packets: 3, bytes: 300 }, 'bridge:2'); // counter made anew
    assert.deepEqual(c.total, { packets: 18, bytes: 1800 });
    c = fold(c, { packets: 1, bytes: 100 }, 'bridge:2'); // went backwards: reset
    assert.deepEqual(c.total, { packets: 19, bytes: 1900 });
  });

  test('totals equal the traffic exactly, whatever is persisted, re-read or restarted in between (property)', () => {
    // A kernel counter's life: traffic, reads at random moments, persists, daemon restarts
    // from the last persisted state, and re-creations of the counter, which the daemon does
    // itself after reading and persisting (as SliceNetworks does before removing objects).
    const step = fc.oneof(
      fc.record({ kind: fc.constant('traffic' as const), packets: fc.integer({ min: 0, max: 1000 }) }),
      fc.record({ kind: fc.constant('recreate' as const) }),
      fc.record({ kind: fc.constant('read' as const) }),
      fc.record({ kind: fc.constant('persist' as const) }),
      fc.record({ kind: fc.constant('restart' as const) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 80 }), (steps) => {
        let raw: Count = { packets: 0, bytes: 0 };
        let handle = 1;
        let traffic = 0;
        let memory: ColumnState | undefined;
        let persisted: ColumnState | undefined;
        for (const s of steps) {
          if (s.kind === 'traffic') {
            raw = { packets: raw.packets + s.packets, bytes: raw.bytes + s.packets * 100 };
            traffic += s.packets;
          } else if (s.kind === 'recreate') {
            memory = fold(memory, raw, `h${handle}`);
            persisted = memory;
            raw = { packets: 0, bytes: 0 };
            handle++;
          } else if (s.kind === 'read') {
            memory = fold(memory, raw, `h${handle}`);
          } else if (s.kind === 'persist') {
            persisted = memory;
          } else {
            memory = persisted;
          }
        }
        memory = fold(memory, raw, `h${handle}`);
        assert.equal(memory.total.packets, traffic);
        assert.equal(memory.total.bytes, traffic * 100);
      }),
    );
  });

  test('the node summary leaves loopback out', () => {
    const col = (packets: number): ColumnState => ({
      total: { packets, bytes: packets * 10 },
      last: { packets, bytes: packets * 10 },
      identity: 'x',
    });
    const s = summary([
      {
        slice: 'a',
        deleted: false,
        columns: { 'sent/bridge': col(1), 'received/bridge': col(2), 'loopbackSent/lo': col(100), 'loopbackReceived/lo': col(100) },
      },
      // A slice that had its own network and then the host's: both sources add up.
      { slice: 'b', deleted: true, columns: { 'sent/bridge': col(3), 'sent/inet': col(5) } },
    ]);
    assert.deepEqual(s, { sent: { packets: 9, bytes: 90 }, received: { packets: 2, bytes: 20 } });
  });
});
