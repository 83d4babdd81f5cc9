import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { BATCH_WINDOW_MS, NftQueue } from '../../src/kernel/net/nft-queue.js';

/** Records each transaction; lines containing "bad" fail, like a script nft rejects. */
function recorder(delayMs = 0) {
  const transactions: string[][] = [];
  const apply = async (lines: readonly string[]): Promise<void> => {
    if (delayMs > 0) await sleep(delayMs);
    if (lines.some((l) => l.includes('bad'))) throw new Error('nft: syntax error');
    transactions.push([...lines]);
  };
  return { transactions, apply };
}

const log = pino({ level: 'silent' });

describe('nft write-behind queue', () => {
  test('lines added within the batch window go to the kernel in one transaction', async () => {
    const r = recorder();
    const queue = new NftQueue(log, r.apply);
    for (let i = 0; i < 10; i++) queue.add([`add counter a${i}`]);
    assert.equal(r.transactions.length, 0, 'written at once instead of behind');
    await sleep(BATCH_WINDOW_MS * 3);
    assert.deepEqual(r.transactions, [Array.from({ length: 10 }, (_, i) => `add counter a${i}`)]);
  });

  test('flush writes at once and resolves only when every line added so far is applied', async () => {
    const r = recorder(5);
    const queue = new NftQueue(log, r.apply);
    queue.add(['one']);
    const flushed = queue.flush();
    queue.add(['two']);
    await flushed;
    assert.ok(r.transactions.flat().includes('one'), 'flush resolved before its line was applied');
    await queue.flush();
    assert.deepEqual(r.transactions.flat(), ['one', 'two']);
  });

  test('flushes that pile up behind a running transaction share the next one', async () => {
    const r = recorder(10);
    const queue = new NftQueue(log, r.apply);
    queue.add(['first']);
    const waits = [queue.flush()];
    await sleep(1); // the first transaction is running now
    for (let i = 0; i < 5; i++) {
      queue.add([`later${i}`]);
      waits.push(queue.flush());
    }
    await Promise.all(waits);
    assert.deepEqual(r.transactions, [['first'], ['later0', 'later1', 'later2', 'later3', 'later4']]);
  });

  test('a bad line does not lose the others of its batch', async () => {
    const r = recorder();
    const queue = new NftQueue(log, r.apply);
    queue.add(['good1', 'bad line', 'good2']);
    await queue.flush();
    assert.deepEqual(r.transactions, [['good1'], ['good2']]);
  });

  test('flushing an empty queue applies nothing', async () => {
    const r = recorder();
    const queue = new NftQueue(log, r.apply);
    await queue.flush();
    assert.equal(r.transactions.length, 0);
  });
});
