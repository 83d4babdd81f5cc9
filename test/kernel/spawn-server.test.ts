/**
 * The spawn helper on real processes: a process it starts writes to the files named for it
 * (made 0600 in a 0700 folder, never through a symlink), in a session of its own, and its end
 * comes back with its status; a command that cannot start is an error; when the helper dies,
 * a process it started is watched until it ends, and the next spawn starts a new helper.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpawnServer, type ServedProcess } from '../../src/kernel/spawn-server.js';
import { processAlive, readProcStat } from '../../src/kernel/procfs.js';

const dir = mkdtempSync(join(tmpdir(), 'sliced-spawn-'));
const server = new SpawnServer(processAlive);
const started: number[] = [];
after(() => {
  server.close();
  for (const pid of started) if (processAlive(pid)) process.kill(-pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function run(name: string, args: string[]): ServedProcess {
  const out = join(dir, name);
  return server.spawn({
    file: '/bin/sh',
    args,
    env: { PATH: '/usr/bin:/bin', GREETING: 'hello' },
    cwd: dir,
    output: { dir: out, stdout: join(out, 'stdout'), stderr: join(out, 'stderr') },
  });
}

function ended(p: ServedProcess): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => p.once('exit', (code: number | null, signal: string | null) => resolve({ code, signal })));
}

test('a process writes to its files, in a session of its own, and its status comes back', async () => {
  const p = run('one', ['-c', 'echo "$GREETING from $(pwd)"; echo oops >&2; exit 7']);
  const spawned = new Promise<void>((resolve) => p.once('spawn', resolve));
  const end = ended(p);
  await spawned;
  assert.ok(p.pid! > 0);
  started.push(p.pid!);
  assert.deepEqual(await end, { code: 7, signal: null });
  assert.equal(readFileSync(join(dir, 'one', 'stdout'), 'utf8'), `hello from ${dir}\n`);
  assert.equal(readFileSync(join(dir, 'one', 'stderr'), 'utf8'), 'oops\n');
  assert.equal(statSync(join(dir, 'one')).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, 'one', 'stdout')).mode & 0o777, 0o600);

  const leader = run('session', ['-c', 'sleep 30']);
  await new Promise<void>((resolve) => leader.once('spawn', resolve));
  started.push(leader.pid!);
  assert.equal(readProcStat(leader.pid!)?.processGroup, leader.pid, 'it leads a process group (and session) of its own');
  const killed = ended(leader);
  process.kill(-leader.pid!, 'SIGTERM');
  assert.deepEqual(await killed, { code: null, signal: 'SIGTERM' });
});

test('a missing command, or an output file that is a symlink, is an error: nothing starts', async () => {
  const missing = server.spawn({
    file: join(dir, 'no-such-program'),
    args: [],
    env: {},
    cwd: dir,
    output: { dir: join(dir, 'missing'), stdout: join(dir, 'missing', 'stdout'), stderr: join(dir, 'missing', 'stderr') },
  });
  const err = await new Promise<Error>((resolve) => missing.once('error', resolve));
  assert.match(err.message, /ENOENT/);

  mkdirSync(join(dir, 'linked'), { mode: 0o700 });
  symlinkSync('/etc/passwd', join(dir, 'linked', 'stdout'));
  const linked = run('linked', ['-c', 'echo should-not-run']);
  const refused = await new Promise<Error>((resolve) => linked.once('error', resolve));
  assert.match(refused.message, /ELOOP|symbolic link/);
  assert.equal(linked.pid, undefined);
});

test('when the helper dies, a running process is watched until it ends; the next spawn starts a new helper', async () => {
  const p = run('orphan', ['-c', 'sleep 0.8']);
  await new Promise<void>((resolve) => p.once('spawn', resolve));
  started.push(p.pid!);
  const end = ended(p);
  const helpers = (): number[] =>
    readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const [helper] = helpers();
  assert.ok(helper, 'the helper is a child of this process');
  process.kill(helper, 'SIGKILL');
  // The watch's timers do not hold the event loop (a daemon has its own); this test must.
  const awake = setInterval(() => {}, 100);
  try {
    assert.deepEqual(await end, { code: null, signal: null }, 'its end is seen, its status is not known');
  } finally {
    clearInterval(awake);
  }
  const next = run('after', ['-c', 'exit 0']);
  assert.deepEqual(await ended(next), { code: 0, signal: null });
});

test('asked to, the helper writes the pid and start time to a file before it reports the process', async () => {
  const out = join(dir, 'recorded');
  const file = join(out, 'process');
  const p = server.spawn({
    file: '/bin/sh',
    args: ['-c', 'sleep 30'],
    env: { PATH: '/usr/bin:/bin' },
    cwd: dir,
    output: { dir: out, stdout: join(out, 'stdout'), stderr: join(out, 'stderr') },
    started: { file, note: '7' },
  });
  const seenAtSpawn = new Promise<string>((resolve) => p.once('spawn', () => resolve(readFileSync(file, 'utf8'))));
  const text = await seenAtSpawn;
  started.push(p.pid!);
  assert.equal(text, `7 ${p.pid} ${readProcStat(p.pid!)!.startTicks}\n`);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const end = ended(p);
  process.kill(-p.pid!, 'SIGKILL');
  await end;
});
