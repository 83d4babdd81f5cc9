import assert from 'node:assert/strict';
import { isSlicedError, type SlicedError } from '../../src/core/errors.js';

/** The SlicedError `call` throws; fails the test when it throws anything else or nothing. */
export function refusalOf(call: () => unknown, what = 'the call'): SlicedError {
  try {
    call();
  } catch (err) {
    assert.ok(isSlicedError(err), `expected a SlicedError, got ${String(err)}`);
    return err;
  }
  assert.fail(`${what} was accepted`);
}
