import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { EmbeddedStore, type EmbeddedStoreOptions } from '../../src/cluster/embedded-store.js';
import { isSlicedError, type ErrorCode } from '../../src/core/errors.js';

let dir = '';
const opened: EmbeddedStore[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sliced-store-test-'));
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function openStore(options?: EmbeddedStoreOptions, where = dir): Promise<EmbeddedStore> {
  const store = await EmbeddedStore.open(where, options);
  opened.push(store);
  return store;
}

async function reopen(store: EmbeddedStore, options?: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  await store.close();
  return openStore(options);
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isSlicedError(err), `expected a SlicedError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

const walPath = () => join(dir, 'wal.log');
const lockPath = () => join(dir, 'lock');
const walLines = () =>
  readFileSync(walPath(), 'utf8')
    .split('\n')
    .filter((l) => l !== '');

/** A pid that belonged to a process which has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.ok(child.pid && child.pid > 0);
  return child.pid;
}

describe('EmbeddedStore: basic operations', () => {
  test('put, get, range and delete survive close and reopen', async () => {
    let store = await openStore();
    await store.txn([
      { type: 'put', key: '/slices/a', value: '{"name":"a"}' },
      { type: 'put', key: '/slices/b', value: '{"name":"b"}' },
      { type: 'put', key: '/domains/d', value: '{"name":"d"}' },
    ]);
    await store.txn([{ type: 'delete', key: '/slices/b' }]);
    await store.txn([{ type: 'put', key: '/slices/a', value: '{"name":"a","v":2}' }]);

    assert.equal(await store.get('/slices/a'), '{"name":"a","v":2}');
    assert.equal(await store.get('/slices/b'), undefined);

    store = await reopen(store);
    assert.equal(await store.get('/slices/a'), '{"name":"a","v":2}');
    assert.equal(await store.get('/slices/b'), undefined);
    assert.equal(await store.get('/domains/d'), '{"name":"d"}');
    assert.deepEqual(await store.range('/slices/'), new Map([['/slices/a', '{"name":"a","v":2}']]));
    assert.deepEqual([...(await store.range('/')).keys()].sort(), ['/domains/d', '/slices/a']);
    assert.deepEqual(await store.range('/nothing/'), new Map());
    assert.equal((await store.range('')).size, 2);
  });

  test('a new store is empty and creates its directory', async () => {
    const nested = join(dir, 'a', 'b');
    const store = await openStore({}, nested);
    assert.equal((await store.range('')).size, 0);
    assert.ok(statSync(nested).isDirectory());
    assert.ok(existsSync(join(nested, 'lock')));
  });

  test('range returns a copy that later writes do not change', async () => {
    const store = await openStore();
    await store.txn([{ type: 'put', key: 'k', value: '1' }]);
    const snapshot = await store.range('');
    await store.txn([{ type: 'put', key: 'k', value: '2' }]);
    assert.equal(snapshot.get('k'), '1');
  });

  test('operations in one transaction apply in order', async () => {
    let store = await openStore();
    await store.txn([
      { type: 'put', key: 'k', value: 'first' },
      { type: 'delete', key: 'k' },
      { type: 'put', key: 'j', value: 'x' },
      { type: 'put', key: 'j', value: 'y' },
    ]);
    assert.equal(await store.get('k'), undefined);
    assert.equal(await store.get('j'), 'y');
    store = await reopen(store);
    assert.equal(await store.get('k'), undefined);
    assert.equal(await store.get('j'), 'y');
  });

  test('values with newlines, quotes and non-ASCII text are kept exactly', async () => {
    let store = await openStore();
    const value = 'line 1\nline 2\r\n"quoted" \\ tab\t ünïcödé ✓ 🚀';
    await store.txn([{ type: 'put', key: 'key with spaces/ü', value }]);
    store = await reopen(store);
    assert.equal(await store.get('key with spaces/ü'), value);
    assert.equal(walLines().length, 1, 'one transaction is one line');
  });

  test('each transaction is one line "<crc32> <json>"', async () => {
    const store = await openStore();
    await store.txn([{ type: 'put', key: 'a', value: '1' }]);
    await store.txn([{ type: 'delete', key: 'a' }]);
    const lines = walLines();
    assert.equal(lines.length, 2);
    for (const line of lines) assert.match(line, /^[0-9a-f]{8} \[.*\]$/);
    assert.deepEqual(JSON.parse(lines[0]!.slice(9)), [{ type: 'put', key: 'a', value: '1' }]);
  });

  test('txn after close is refused with EIO; close twice is harmless and removes the lock', async () => {
    const store = await openStore();
    await store.close();
    await store.close();
    assert.equal(existsSync(lockPath()), false);
    await rejectsWith(store.txn([{ type: 'put', key: 'k', value: 'v' }]), 'EIO', /closed/);
  });

  test('close waits for transactions in flight', async () => {
    let store = await openStore();
    const writes = Array.from({ length: 20 }, (_, i) => store.txn([{ type: 'put', key: `k${i}`, value: String(i) }]));
    await store.close();
    await Promise.all(writes);
    store = await openStore();
    assert.equal((await store.range('k')).size, 20);
  });
});

describe('EmbeddedStore: group commit', () => {
  test('many concurrent transactions are all durable after reopen', async () => {
    let store = await openStore();
    const count = 300;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      writes.push(
        store.txn([
          { type: 'put', key: `/k/${i}`, value: `v${i}` },
          { type: 'put', key: `/pair/${i}`, value: `p${i}` },
        ]),
      );
    }
    await Promise.all(writes);
    assert.equal(walLines().length, count, 'every transaction has its own record');
    store = await reopen(store);
    const ks = await store.range('/k/');
    const pairs = await store.range('/pair/');
    assert.equal(ks.size, count);
    assert.equal(pairs.size, count);
    for (let i = 0; i < count; i++) {
      assert.equal(ks.get(`/k/${i}`), `v${i}`);
      assert.equal(pairs.get(`/pair/${i}`), `p${i}`);
    }
  });

  test('concurrent writes to one key end with the last one queued', async () => {
    let store = await openStore();
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.txn([{ type: 'put', key: 'k', value: String(i) }])));
    assert.equal(await store.get('k'), '49');
    store = await reopen(store);
    assert.equal(await store.get('k'), '49');
  });

  test('a transaction is visible once it resolves', async () => {
    const store = await openStore();
    const pending = store.txn([{ type: 'put', key: 'k', value: 'v' }]);
    await pending;
    assert.equal(await store.get('k'), 'v');
  });
});

describe('EmbeddedStore: compaction', () => {
  test('after many transactions a snapshot holds everything and the log starts over', async () => {
    let store = await openStore({ compactAfter: 10 });
    for (let i = 0; i < 50; i++) {
      await store.txn([{ type: 'put', key: `/k/${i}`, value: `v${i}` }]);
      if (i % 7 === 6) await store.txn([{ type: 'delete', key: `/k/${i - 3}` }]);
    }
    store = await reopen(store, { compactAfter: 10 });
    assert.ok(existsSync(join(dir, 'snapshot.json')), 'snapshot written');
    assert.ok(walLines().length < 10, `log is short (${walLines().length} lines)`);
    const all = await store.range('/k/');
    for (let i = 0; i < 50; i++) {
      const deleted = i + 3 < 50 && (i + 3) % 7 === 6;
      assert.equal(all.get(`/k/${i}`), deleted ? undefined : `v${i}`, `key ${i}`);
    }
    const snapshot = JSON.parse(readFileSync(join(dir, 'snapshot.json'), 'utf8')) as { data: Record<string, string> };
    assert.equal(typeof snapshot.data, 'object');
    assert.equal(existsSync(join(dir, 'snapshot.json.tmp')), false);
  });

  test('a damaged snapshot stops the store with a clear EIO naming the file, not a parse error', async () => {
    const store = await openStore({ compactAfter: 5 });
    for (let i = 0; i < 20; i++) await store.txn([{ type: 'put', key: `/s/${i}`, value: String(i) }]);
    await store.close();
    writeFileSync(join(dir, 'snapshot.json'), '{"data": {"/s/1": "1"');
    await assert.rejects(openStore({ compactAfter: 5 }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'EIO');
      assert.match(err.message, /state snapshot .*snapshot\.json is damaged .*refusing to start with partial state/);
      return true;
    });
  });

  test('concurrent writes with compaction lose nothing', async () => {
    let store = await openStore({ compactAfter: 10 });
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.txn([{ type: 'put', key: `/c/${i}`, value: String(i) }])));
    store = await reopen(store, { compactAfter: 10 });
    const all = await store.range('/c/');
    assert.equal(all.size, 200);
    assert.equal(all.get('/c/199'), '199');
  });

  test('log records written after a snapshot are replayed on top of it', async () => {
    let store = await openStore({ compactAfter: 5 });
    for (let i = 0; i < 5; i++) await store.txn([{ type: 'put', key: `k${i}`, value: 'old' }]);
    await store.txn([{ type: 'put', key: 'k0', value: 'new' }]);
    await store.txn([{ type: 'delete', key: 'k1' }]);
    assert.equal(walLines().length, 2);
    store = await reopen(store, { compactAfter: 5 });
    assert.equal(await store.get('k0'), 'new');
    assert.equal(await store.get('k1'), undefined);
    assert.equal(await store.get('k4'), 'old');
  });

  test('a crash between writing the snapshot and emptying the log loses nothing', async () => {
    let store = await openStore();
    await store.txn([{ type: 'put', key: 'a', value: '1' }]);
    await store.txn([
      { type: 'put', key: 'a', value: '2' },
      { type: 'put', key: 'b', value: 'x' },
    ]);
    await store.txn([{ type: 'delete', key: 'b' }]);
    await store.close();
    // What compaction writes before truncating the log; the log still holds every record.
    writeFileSync(join(dir, 'snapshot.json'), JSON.stringify({ data: { a: '2' } }));
    store = await openStore();
    assert.deepEqual(await store.range(''), new Map([['a', '2']]));
  });
});

describe('EmbeddedStore: damage', () => {
  async function seed(): Promise<void> {
    const store = await openStore();
    await store.txn([{ type: 'put', key: 'a', value: 'ä-1' }]);
    await store.txn([{ type: 'put', key: 'b', value: '2' }]);
    await store.txn([{ type: 'put', key: 'c', value: '3' }]);
    await store.close();
  }

  test('a torn last line (no newline) is dropped and the rest survives', async () => {
    await seed();
    const goodSize = statSync(walPath()).size;
    appendFileSync(walPath(), '1234abcd [{"type":"put","key":"d","val');
    let store = await openStore();
    assert.deepEqual(
      await store.range(''),
      new Map([
        ['a', 'ä-1'],
        ['b', '2'],
        ['c', '3'],
      ]),
    );
    assert.equal(statSync(walPath()).size, goodSize, 'the torn bytes are cut off');
    // New records then follow the good ones, so the log stays readable.
    await store.txn([{ type: 'put', key: 'd', value: '4' }]);
    store = await reopen(store);
    assert.equal(await store.get('d'), '4');
    assert.equal((await store.range('')).size, 4);
  });

  test('a last line with a bad checksum is dropped', async () => {
    await seed();
    const json = JSON.stringify([{ type: 'put', key: 'evil', value: 'x' }]);
    appendFileSync(walPath(), `00000000 ${json}\n`);
    const store = await openStore();
    assert.equal(await store.get('evil'), undefined);
    assert.equal(await store.get('c'), '3');
    assert.equal(walLines().length, 3);
  });

  test('a last line with a good checksum over bad JSON is dropped', async () => {
    await seed();
    const { crc32 } = await import('node:zlib');
    const broken = '[{"type":"put"';
    appendFileSync(walPath(), `${crc32(broken).toString(16).padStart(8, '0')} ${broken}\n`);
    const store = await openStore();
    assert.equal((await store.range('')).size, 3);
  });

  test('a damaged line in the middle stops open with EIO naming the line', async () => {
    await seed();
    const lines = walLines();
    lines[1] = lines[1]!.replace('"2"', '"9"'); // content no longer matches its checksum
    writeFileSync(walPath(), lines.map((l) => `${l}\n`).join(''));
    await rejectsWith(EmbeddedStore.open(dir), 'EIO', /line 2\b/);
    assert.equal(existsSync(lockPath()), false, 'a failed open releases the lock');
    // The log is left as it was, for someone to look at.
    assert.equal(walLines()[1], lines[1]);
  });

  test('garbage in the first line followed by good lines is damage, not a torn write', async () => {
    await seed();
    writeFileSync(walPath(), `garbage\n${readFileSync(walPath(), 'utf8')}`);
    await rejectsWith(EmbeddedStore.open(dir), 'EIO', /line 1\b/);
  });

  test('an empty line in the middle is damage too', async () => {
    await seed();
    const lines = walLines();
    writeFileSync(walPath(), `${lines[0]}\n\n${lines[1]}\n`);
    await rejectsWith(EmbeddedStore.open(dir), 'EIO', /line 2\b/);
  });
});

describe('EmbeddedStore: lock', () => {
  test('a second open of the same directory while the first is open is refused with EBUSY', async () => {
    const first = await openStore();
    await first.txn([{ type: 'put', key: 'k', value: 'v' }]);
    await rejectsWith(EmbeddedStore.open(dir), 'EBUSY');
    // The refused open must not have taken the lock away from the first.
    assert.equal(readFileSync(lockPath(), 'utf8').trim(), String(process.pid));
    await first.txn([{ type: 'put', key: 'k2', value: 'v2' }]);
    await first.close();
    const again = await openStore();
    assert.equal(await again.get('k2'), 'v2');
  });

  test('the same directory reached by another path is still refused', async () => {
    const real = join(dir, 'state');
    const link = join(dir, 'link');
    await openStore({}, real);
    symlinkSync(real, link);
    await rejectsWith(EmbeddedStore.open(link), 'EBUSY');
    await rejectsWith(EmbeddedStore.open(relative(process.cwd(), real)), 'EBUSY');
    assert.ok(existsSync(join(real, 'lock')), 'the first store keeps its lock');
  });

  test('a lock held by another live process is refused with EBUSY naming the process', async () => {
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      assert.ok(holder.pid);
      writeFileSync(lockPath(), `${holder.pid}\n`);
      await rejectsWith(EmbeddedStore.open(dir), 'EBUSY', new RegExp(`process ${holder.pid}\\b`));
      assert.equal(readFileSync(lockPath(), 'utf8').trim(), String(holder.pid), 'the lock is left to its holder');
    } finally {
      holder.kill('SIGKILL');
    }
  });

  test('a stale lock holding a dead pid is taken over', async () => {
    let store = await openStore();
    await store.txn([{ type: 'put', key: 'k', value: 'v' }]);
    await store.close();
    writeFileSync(lockPath(), `${deadPid()}\n`);
    store = await openStore();
    assert.equal(readFileSync(lockPath(), 'utf8').trim(), String(process.pid));
    assert.equal(await store.get('k'), 'v');
  });

  test('a lock with our own pid left by an earlier process is taken over', async () => {
    // E.g. a container where the daemon is always pid 1.
    writeFileSync(lockPath(), `${process.pid}\n`);
    const store = await openStore();
    await store.txn([{ type: 'put', key: 'k', value: 'v' }]);
    assert.equal(await store.get('k'), 'v');
  });

  test('an unreadable lock (no pid) is taken over', async () => {
    writeFileSync(lockPath(), 'not a pid\n');
    await openStore();
    assert.equal(readFileSync(lockPath(), 'utf8').trim(), String(process.pid));
  });

  test('close releases the lock for the next process', async () => {
    const store = await openStore();
    assert.ok(existsSync(lockPath()));
    await store.close();
    assert.equal(existsSync(lockPath()), false);
  });
});

describe('EmbeddedStore: torn records', () => {
  test('a last record cut off just before its newline is dropped, and the next one starts a clean line', async () => {
    let store = await openStore();
    await store.txn([{ type: 'put', key: 'a', value: '1' }]);
    await store.close();
    const good = readFileSync(walPath(), 'utf8');
    const { crc32 } = await import('node:zlib');
    const json = JSON.stringify([{ type: 'put', key: 'b', value: '2' }]);
    appendFileSync(walPath(), `${crc32(json).toString(16).padStart(8, '0')} ${json}`); // no "\n": the write stopped there
    store = await openStore();
    assert.equal(await store.get('b'), undefined, 'a record without its newline was never acknowledged');
    await store.txn([{ type: 'put', key: 'c', value: '3' }]);
    store = await reopen(store);
    assert.deepEqual(
      await store.range(''),
      new Map([
        ['a', '1'],
        ['c', '3'],
      ]),
    );
    assert.ok(readFileSync(walPath(), 'utf8').startsWith(good));
  });
});

/**
 * A real full filesystem: a small tmpfs mounted for the test (named sliced-dk-store-*),
 * unmounted and removed also when the test fails.
 */
describe('EmbeddedStore: a full filesystem', () => {
  const skipReason = process.getuid?.() !== 0 ? 'needs root to mount a small tmpfs' : null;

  async function withTmpfs(size: string, body: (mnt: string) => Promise<void>): Promise<void> {
    const mnt = mkdtempSync(join(tmpdir(), 'sliced-dk-store-'));
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'sliced-dk-store', mnt], { encoding: 'utf8' });
    assert.equal(mounted.status, 0, `mount tmpfs: ${mounted.stderr}`);
    try {
      await body(mnt);
    } finally {
      for (const store of opened.splice(0)) await store.close();
      spawnSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  }

  /** Take every free block with one file (short writes first, then ENOSPC). */
  function fill(path: string): void {
    const fd = openSync(path, 'w');
    try {
      for (const size of [1 << 16, 1]) {
        try {
          for (;;) writeSync(fd, Buffer.alloc(size, 0x78));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  test(
    'a write that does not fit is refused naming ENOSPC, cut off the log, and writes succeed again once there is space',
    { skip: skipReason ?? false },
    async () => {
      await withTmpfs('256k', async (mnt) => {
        const state = join(mnt, 'state');
        let store = await openStore({}, state);
        const acked = new Map<string, string>();
        for (let i = 0; i < 3; i++) {
          await store.txn([{ type: 'put', key: `before/${i}`, value: 'v'.repeat(100) }]);
          acked.set(`before/${i}`, 'v'.repeat(100));
        }
        fill(join(mnt, 'filler'));
        // The log's last page still has room: records fit until one crosses into a new page.
        let refused: unknown = null;
        for (let i = 0; i < 40 && refused === null; i++) {
          const value = `${i}:${'x'.repeat(700)}`;
          try {
            await store.txn([{ type: 'put', key: `during/${i}`, value }]);
            acked.set(`during/${i}`, value);
          } catch (err) {
            refused = err;
          }
        }
        assert.ok(refused !== null, 'a write on the full filesystem was refused');
        assert.ok(isSlicedError(refused), String(refused));
        assert.match(
          refused.message,
          /state store .*state cannot write its log: no space left on its filesystem \(ENOSPC; 0 of 256K free, \d+ free inodes\)$/,
        );
        assert.equal(store.health().errno, 'ENOSPC');
        // A write queued right behind the refused one (it may depend on it) is refused as well.
        await rejectsWith(store.txn([{ type: 'put', key: 'behind', value: 'x' }]), 'EIO', /ENOSPC/);
        // Healed at once: the log holds exactly the acknowledged records, nothing of the refused one.
        const onDisk = readFileSync(join(state, 'wal.log'), 'utf8');
        assert.ok(onDisk.endsWith('\n'), 'no torn record at the end of the log');
        assert.equal(onDisk.split('\n').filter((l) => l !== '').length, acked.size);

        rmSync(join(mnt, 'filler'));
        // With nothing written by anyone, the store finds out by itself that it can write again.
        const deadline = Date.now() + 5000;
        while (store.health().error !== null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
        assert.deepEqual(store.health(), { error: null, errno: null, since: null });
        await store.txn([{ type: 'put', key: 'after', value: 'ok' }]);
        acked.set('after', 'ok');

        await store.close();
        store = await openStore({}, state);
        assert.deepEqual(await store.range(''), acked, 'after a restart: every acknowledged record, nothing else');
      });
    },
  );

  test('opening on a full filesystem is refused naming ENOSPC and leaves no empty lock behind', { skip: skipReason ?? false }, async () => {
    await withTmpfs('64k', async (mnt) => {
      const state = join(mnt, 'state');
      const store = await openStore({}, state);
      await store.txn([{ type: 'put', key: 'k', value: 'v' }]);
      await store.close();
      opened.splice(0);
      fill(join(mnt, 'filler'));
      await rejectsWith(
        EmbeddedStore.open(state),
        'EIO',
        /state store .*state cannot open its directory: no space left on its filesystem \(ENOSPC; 0 of 64K free/,
      );
      assert.equal(existsSync(join(state, 'lock')), false, 'no empty lock file');
      rmSync(join(mnt, 'filler'));
      const again = await openStore({}, state);
      assert.equal(await again.get('k'), 'v');
    });
  });

  test('a snapshot that does not fit leaves no partial file behind and loses nothing', { skip: skipReason ?? false }, async () => {
    await withTmpfs('128k', async (mnt) => {
      const state = join(mnt, 'state');
      let store = await openStore({ compactAfter: 3 }, state);
      await store.txn([{ type: 'put', key: 'a', value: '1' }]);
      await store.txn([{ type: 'put', key: 'b', value: '2' }]);
      fill(join(mnt, 'filler'));
      await store.txn([{ type: 'put', key: 'c', value: '3'.repeat(2000) }]); // fits in the log's page; compaction cannot
      await store.close(); // waits for the compaction that follows the write
      assert.equal(existsSync(join(state, 'snapshot.json.tmp')), false, 'the partial snapshot is removed');
      assert.equal(existsSync(join(state, 'snapshot.json')), false);
      rmSync(join(mnt, 'filler'));
      store = await openStore({ compactAfter: 3 }, state);
      await store.txn([{ type: 'put', key: 'd', value: '4' }]); // compaction succeeds now
      await store.close();
      assert.ok(existsSync(join(state, 'snapshot.json')));
      store = await openStore({ compactAfter: 3 }, state);
      assert.deepEqual([...(await store.range('')).keys()].sort(), ['a', 'b', 'c', 'd']);
    });
  });
});
