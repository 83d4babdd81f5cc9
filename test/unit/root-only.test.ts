import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertRootOnlyPaths } from '../../src/kernel/root-only.js';

const skip = process.getuid?.() !== 0 ? 'needs root (the directories must belong to root)' : false;

describe('assertRootOnlyPaths: checked before anything is created', { skip }, () => {
  function withDir(body: (dir: string) => void): void {
    const dir = mkdtempSync(join(tmpdir(), 'sliced-root-only-'));
    chmodSync(dir, 0o755);
    try {
      body(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const refused = (paths: Array<[string, string]>, message: RegExp): void =>
    assert.throws(
      () => assertRootOnlyPaths(paths),
      (err: Error) => (assert.match(err.message, message), true),
    );

  test('a missing path is judged by the directory it will be made in, without making it', () => {
    withDir((dir) => {
      assertRootOnlyPaths([[join(dir, 'a', 'b'), 'state directory']]);
      const sticky = join(dir, 'tmp');
      mkdirSync(sticky);
      chmodSync(sticky, 0o1777);
      assertRootOnlyPaths([[join(sticky, 'state'), 'state directory']]); // like /tmp/x
      const open = join(dir, 'open');
      mkdirSync(open);
      chmodSync(open, 0o777);
      refused(
        [[join(open, 'state'), 'state directory']],
        new RegExp(`^state directory ${open}/state: its parent ${open} has mode 0777; it must not be writable by group or others`),
      );
    });
  });

  test('an existing path must itself be root-only (sticky does not help), and be a directory', () => {
    withDir((dir) => {
      const own = join(dir, 'state');
      mkdirSync(own);
      chmodSync(own, 0o1770);
      refused([[own, 'state directory']], /state directory .*state has mode 1770/);
      const file = join(dir, 'file');
      writeFileSync(file, '');
      refused([[file, 'run directory']], /run directory .*file is a regular file, not a directory/);
    });
  });

  test('a path unsafe itself is named before one unsafe only through it', () => {
    withDir((dir) => {
      chmodSync(dir, 0o777);
      refused(
        [
          [join(dir, 'state'), 'state directory'],
          [dir, 'vsys services directory'],
        ],
        new RegExp(`^vsys services directory ${dir} has mode 0777`),
      );
    });
  });
});
