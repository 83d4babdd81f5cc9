/**
 * FifoMaker on real FIFOs (root needed: it gives them to another user). A slice is played
 * by the user "nobody" with a 0700 directory of its own under a root-only root, as vsys
 * lays them out.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chownSync,
  closeSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIFO_AREA, FifoMaker } from '../../src/kernel/fifo-maker.js';
import { RefusedFile } from '../../src/kernel/fifo.js';

const skip = process.getuid?.() !== 0 ? 'needs root (gives FIFOs to another user)' : null;
if (skip) process.stderr.write(`SKIP kernel/fifo-maker: ${skip}\n`);
const NOBODY = { uid: 65534, gid: 65534 };

describe('FifoMaker', { skip: skip ?? false }, () => {
  let root: string;
  let maker: FifoMaker;
  let readies = 0;
  const problems: string[] = [];
  const path = (file: string): string => join(root, 's1', file);
  const record = (file: string): string => join(root, FIFO_AREA, 'made', 's1', file);
  const stock = (): string[] => readdirSync(join(root, FIFO_AREA, 'stock'));
  const until = async (what: string, probe: () => boolean): Promise<void> => {
    for (let i = 0; !probe(); i++) {
      assert.ok(i < 250, `timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const newMaker = (): FifoMaker => new FifoMaker(root, { ready: () => readies++, problem: (m) => problems.push(m) });

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'sliced-fa-fifo-'));
    mkdirSync(join(root, 's1'), { mode: 0o700 });
    chownSync(join(root, 's1'), NOBODY.uid, NOBODY.gid);
    // What a crash mid-way leaves in the stock: a FIFO already given away, a stray file.
    mkdirSync(join(root, FIFO_AREA, 'stock'), { recursive: true, mode: 0o755 });
    assert.equal(spawnSync('mkfifo', [join(root, FIFO_AREA, 'stock', 'f1')]).status, 0);
    chownSync(join(root, FIFO_AREA, 'stock', 'f1'), NOBODY.uid, NOBODY.gid);
    writeFileSync(join(root, FIFO_AREA, 'stock', 'junk'), '');
    maker = newMaker();
    maker.start();
    // Nothing in stock before mkfifo is done: asking early is answered by `ready`.
    assert.equal(maker.reserve(1), false);
    assert.equal(maker.make('s1', 'early.in', NOBODY), null);
    await until('the stock filled', () => readies === 1);
    assert.equal(maker.reserve(16), true);
  });

  after(() => {
    maker.close();
    rmSync(root, { recursive: true, force: true });
  });

  test('start leaves a root-only area with a stock of fresh root-owned FIFOs, without what a crash left', () => {
    for (const sub of ['', 'stock', 'made']) {
      const stats = lstatSync(join(root, FIFO_AREA, sub));
      assert.equal(stats.uid, 0);
      assert.equal(stats.mode & 0o7777, 0o700);
    }
    assert.equal(existsSync(join(root, FIFO_AREA, 'stock', 'junk')), false);
    for (const name of stock()) {
      const stats = lstatSync(join(root, FIFO_AREA, 'stock', name));
      assert.ok(stats.isFIFO() && stats.uid === 0, `${name} is a root-owned FIFO`);
    }
    assert.deepEqual(problems, []);
  });

  test("make: the slice's FIFO, 0600, recorded, and a reader of it", () => {
    const made = maker.make('s1', 'a.in', NOBODY);
    assert.ok(made);
    const stats = lstatSync(path('a.in'));
    assert.ok(stats.isFIFO());
    assert.equal(`${stats.uid}:${stats.gid} ${(stats.mode & 0o7777).toString(8)}`, `${NOBODY.uid}:${NOBODY.gid} 600`);
    assert.equal(stats.ino, made.ino);
    assert.equal(lstatSync(record('a.in')).ino, made.ino, 'the record is the same inode');
    assert.equal(spawnSync('sh', ['-c', `printf x > ${path('a.in')}`], { timeout: 5000 }).status, 0, 'a writer finds the reader at once');
    closeSync(made.fd);
  });

  test('make never replaces or follows what is at the name', () => {
    const target = join(root, 'target');
    writeFileSync(target, 'keep', { mode: 0o600 });
    symlinkSync(target, path('b.in'));
    assert.throws(
      () => maker.make('s1', 'b.in', NOBODY),
      (err: unknown) => err instanceof RefusedFile && /b\.in: is a symbolic link .*refused \(never replaced\)/.test(err.message),
    );
    assert.ok(lstatSync(path('b.in')).isSymbolicLink());
    assert.equal(statSync(target).uid, 0);
    assert.equal(existsSync(record('b.in')), false, 'no record of a FIFO that was not placed');
    unlinkSync(path('b.in'));
  });

  test("adopt: the recorded FIFO of the slice's; nothing else is given away or used", () => {
    // Ours, recorded (a.in from above): adopted as it is.
    const ino = lstatSync(path('a.in')).ino;
    const adopted = maker.adopt('s1', 'a.in', NOBODY.uid);
    assert.equal(adopted?.ino, ino);
    closeSync(adopted!.fd);
    // A root-owned FIFO hard-linked in (possible where fs.protected_hardlinks=0): refused, untouched.
    const rootFifo = join(root, 'root-fifo');
    assert.equal(spawnSync('mkfifo', ['-m', '600', rootFifo]).status, 0);
    linkSync(rootFifo, path('c.in'));
    assert.throws(
      () => maker.adopt('s1', 'c.in', NOBODY.uid),
      (err: unknown) => err instanceof RefusedFile && /c\.in: is a FIFO \(owner 0, .*refused/.test(err.message),
    );
    assert.equal(statSync(rootFifo).uid, 0);
    assert.equal(lstatSync(path('c.in')).ino, lstatSync(rootFifo).ino);
    // The recorded inode but at another name is no match either.
    unlinkSync(path('c.in'));
    linkSync(record('a.in'), path('c.in'));
    assert.equal(
      maker.adopt('s1', 'c.in', NOBODY.uid),
      null,
      "the slice's own FIFO not recorded under that name is removed, to be made again",
    );
    assert.equal(existsSync(path('c.in')), false);
    // Nothing there: nothing to adopt, and a stale record is dropped.
    unlinkSync(path('a.in'));
    assert.equal(maker.adopt('s1', 'a.in', NOBODY.uid), null);
    assert.equal(existsSync(record('a.in')), false);
  });

  test('an empty stock: nothing is made at once, ready is called once it is filled again', async () => {
    const before = readies;
    const made: number[] = [];
    for (let i = 0; ; i++) {
      const opened = maker.make('s1', `m${i}.in`, NOBODY);
      if (opened === null) break;
      made.push(opened.fd);
      assert.ok(i < 100);
    }
    for (const fd of made) closeSync(fd);
    assert.equal(maker.reserve(2), false, 'no reservation on an empty stock');
    await until('ready', () => readies > before);
    assert.equal(maker.reserve(2), true);
    const late = maker.make('s1', 'late.in', NOBODY);
    assert.ok(late, 'FIFOs in stock again');
    closeSync(late.fd);
    maker.forget('s1');
    assert.equal(existsSync(join(root, FIFO_AREA, 'made', 's1')), false);
  });

  test('a mkfifo that hangs is killed at the timeout, without ever blocking the event loop', async () => {
    const other = mkdtempSync(join(tmpdir(), 'sliced-fa-hang-'));
    const bin = join(other, 'bin');
    mkdirSync(bin);
    // A mkfifo stuck for good (as on a hung filesystem): the timeout must end it.
    writeFileSync(join(bin, 'mkfifo'), '#!/bin/sh\nexec sleep 600.0517\n', { mode: 0o755 });
    const savedPath = process.env.PATH;
    // Waiting for the child anywhere would stall the event loop for all of HANG_MS.
    const HANG_MS = 1500;
    const seen: string[] = [];
    const hung = new FifoMaker(other, { ready: () => {}, problem: (m) => seen.push(m), timeoutMs: HANG_MS });
    try {
      process.env.PATH = `${bin}:${savedPath}`;
      const started = Date.now();
      hung.start();
      process.env.PATH = savedPath;
      assert.ok(Date.now() - started < HANG_MS / 2, 'start does not wait for mkfifo');
      assert.equal(hung.make('s1', 'x.in', NOBODY), null, 'no FIFO yet, and no waiting for one');
      let stall = 0;
      for (let last = Date.now(); seen.length === 0;) {
        await new Promise((r) => setTimeout(r, 10));
        stall = Math.max(stall, Date.now() - last);
        last = Date.now();
        assert.ok(Date.now() - started < HANG_MS + 5000, 'the problem is reported');
      }
      assert.ok(stall < HANG_MS / 2, `the event loop kept running (longest stall ${stall} ms)`);
      assert.match(seen[0]!, /cannot make FIFOs in .*stock \(mkfifo as root: killed after 1500 ms\); trying again in 5 s/);
      assert.equal(spawnSync('pgrep', ['-f', 'sleep 600.0517']).status, 1, 'the hung mkfifo was killed');
    } finally {
      process.env.PATH = savedPath;
      hung.close();
      rmSync(other, { recursive: true, force: true });
    }
  });
});
