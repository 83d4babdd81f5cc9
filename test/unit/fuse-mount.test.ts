/**
 * Issue 11, item 7, without FUSE: the write bound is checked before anything is allocated,
 * and a guarded operation never lets an error escape to the native caller (the e2e test
 * tree-mount-apply.test.ts does the same through a real mount).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlicedError } from '../../src/core/errors.js';
import { MAX_ATTRIBUTE_BYTES, guardOperations, spliceWrite } from '../../src/daemon/fuse-mount.js';

const EFBIG = -27;
const EINVAL = -22;

test('spliceWrite: past MAX_ATTRIBUTE_BYTES is EFBIG, checked before allocating; inside it, bytes land where written', () => {
  const one = Buffer.from('5');
  assert.equal(spliceWrite(Buffer.alloc(0), one, 1, 600_000_000), EFBIG);
  assert.equal(spliceWrite(Buffer.alloc(0), one, 1, Number.MAX_SAFE_INTEGER), EFBIG);
  assert.equal(spliceWrite(Buffer.alloc(0), one, 1, MAX_ATTRIBUTE_BYTES), EFBIG);
  assert.equal(spliceWrite(Buffer.alloc(0), Buffer.alloc(MAX_ATTRIBUTE_BYTES + 1), MAX_ATTRIBUTE_BYTES + 1, 0), EFBIG);
  assert.equal((spliceWrite(Buffer.alloc(0), one, 1, MAX_ATTRIBUTE_BYTES - 1) as Buffer).length, MAX_ATTRIBUTE_BYTES);
  assert.equal(spliceWrite(Buffer.alloc(0), one, 1, -1), EINVAL);
  assert.equal(spliceWrite(Buffer.alloc(0), one, 1, Number.NaN), EINVAL);
  assert.equal(spliceWrite(Buffer.alloc(0), one, 2, 0), EINVAL, 'a length beyond the buffer');
  assert.equal((spliceWrite(Buffer.from('100\n'), Buffer.from('25'), 2, 1) as Buffer).toString(), '125\n');
  assert.equal((spliceWrite(Buffer.from('1'), Buffer.from('0\n'), 2, 1) as Buffer).toString(), '10\n');
});

test('guardOperations: a throwing operation is answered with its errno (EIO when unexpected) and logged; a callback answers once', () => {
  const logged: unknown[] = [];
  const log = { error: (obj: unknown) => logged.push(obj) } as never;
  const ops = guardOperations(
    {
      crash(_path: string, _cb: (n: number) => void) {
        throw new RangeError('Invalid string length'); // as ERR_STRING_TOO_LONG did
      },
      missing(path: string, _cb: (n: number) => void) {
        throw new SlicedError('ENOENT', `${path} does not exist`);
      },
      twice(_path: string, cb: (n: number, v?: unknown) => void) {
        cb(0, 'first');
        cb(0, 'second');
      },
      fine(_path: string, cb: (n: number, v?: unknown) => void) {
        cb(0, 'value');
      },
      notAFunction: 42,
    },
    log,
  ) as Record<string, (path: string, cb: (...reply: unknown[]) => void) => void>;
  const replies: unknown[][] = [];
  const cb = (...reply: unknown[]): void => void replies.push(reply);
  assert.doesNotThrow(() => ops.crash!('/probes/cpu/probe_period', cb));
  assert.deepEqual(replies.pop(), [-5]);
  assert.equal(logged.length, 1);
  assert.match(JSON.stringify(logged[0]), /"op":"crash".*Invalid string length/);
  ops.missing!('/nope', cb);
  assert.deepEqual(replies.pop(), [-2]);
  ops.twice!('/x', cb);
  assert.deepEqual(replies, [[0, 'first']]);
  replies.length = 0;
  ops.fine!('/x', cb);
  assert.deepEqual(replies, [[0, 'value']]);
  assert.equal('notAFunction' in ops, false);
});
