/**
 * `slicectl exec` never hands the caller's terminal to a slice: the command runs in a
 * session of its own, on a pseudo-terminal that slicectl relays, so it cannot inject
 * keystrokes into root's shell (TIOCSTI), read what root types after it, or keep the
 * terminal open after slicectl returns. Pipes and files pass through unchanged. And the
 * real-time policy promises: `chrt -f 5 slicectl exec` and attaching a SCHED_FIFO process
 * both end with the process in the slice under SCHED_OTHER.
 *
 * The caller's terminal is a real pseudo-terminal made by script(1) for each case.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon, SLICECTL } from '../helpers/daemon.js';
import { commandSkipReason, kernelSkipReason, SLOW } from '../helpers/env.js';
import { KernelGroups } from '../helpers/cgroups.js';

const skip =
  kernelSkipReason() ??
  commandSkipReason('script', 'bsdutils') ??
  commandSkipReason('perl', 'perl-base') ??
  commandSkipReason('bash', 'bash') ??
  commandSkipReason('chrt', 'util-linux');
if (skip) process.stderr.write(`SKIP e2e/exec-terminal: ${skip}\n`);

/** Session id and controlling terminal (tty_nr) of a process: /proc/PID/stat fields 6 and 7. */
function sessionOf(pid: number): { sid: number; tty: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { sid: Number(rest[3]), tty: Number(rest[4]) };
}

describe("slicectl exec and the caller's terminal", { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let scratch: string;

  /**
   * Run a shell line with a real terminal as its stdin, stdout and stderr (the caller's
   * terminal; $SLICECTL runs slicectl). Input stays open until the line ends, so the terminal
   * sees no end-of-file. Returns what the terminal showed, without carriage returns.
   */
  const onTerminal = (line: string, timeoutMs = 30_000 * SLOW): Promise<{ code: number | null; output: string }> =>
    new Promise((resolve, reject) => {
      const child = spawn('script', ['--quiet', '--return', '--command', line, '/dev/null'], {
        stdio: ['pipe', 'pipe', 'inherit'],
        env: { ...process.env, SLICECTL: `${process.execPath} ${SLICECTL} --socket ${daemon.socket}`, SHELL: '/bin/sh' },
        cwd: scratch,
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`timed out; the terminal showed: ${output}`));
      }, timeoutMs);
      child.on('exit', (code) => {
        clearTimeout(timer);
        child.stdin.end();
        resolve({ code, output: output.replace(/\r/g, '') });
      });
    });
  const field = (output: string, name: string): string => {
    const match = new RegExp(`^${name}=(.*)$`, 'm').exec(output);
    assert.ok(match, `no ${name}= line in:\n${output}`);
    return match[1]!;
  };

  before(async () => {
    daemon = await TestDaemon.start();
    scratch = mkdtempSync(join(tmpdir(), 'sliced-exec-'));
    chmodSync(scratch, 0o755);
    assert.equal((await daemon.cli(['slice', 'create', 'sbexec'])).code, 0);
  });

  after(async () => {
    rmSync(scratch, { recursive: true, force: true });
    await daemon.destroy();
  });

  test("the command runs in a new session on its own pseudo-terminal, never on the caller's", async () => {
    const inner = [
      'echo "pid=$$"',
      'echo "stat=$(cut -d" " -f6,7 /proc/$$/stat)"',
      'echo "fds=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2 | tr "\\n" " ")"',
      'echo "size=$(stty size)"',
      // Left running with the same stdio: it must not hold the caller's terminal either.
      'sleep 60 & echo "left=$!"',
      'exit 6',
    ].join('; ');
    const line = [
      'stty rows 33 cols 101',
      'echo "caller=$(cut -d" " -f6,7 /proc/$$/stat)"',
      'echo "callertty=$(tty)"',
      `$SLICECTL exec --slice sbexec -- sh -c '${inner}'`,
      'echo "status=$?"',
      'sleep 0.3',
    ].join('; ');
    const { code, output } = await onTerminal(line);
    assert.equal(code, 0, output);
    assert.equal(field(output, 'status'), '6', "the command's exit status comes back");
    const callerTty = field(output, 'callertty');
    assert.match(callerTty, /^\/dev\/pts\/\d+$/);
    // Session id and controlling terminal (/proc/PID/stat fields 6 and 7) of the caller's
    // shell (slicectl's session) and of the command.
    const [callerSid, callerTtyNr] = field(output, 'caller').split(' ').map(Number);
    const [sid, ttyNr] = field(output, 'stat').split(' ').map(Number);
    const pid = Number(field(output, 'pid'));
    const left = Number(field(output, 'left'));
    try {
      assert.notEqual(sid, callerSid, "the command is not in the caller's session");
      assert.equal(sid, pid, 'the command leads a session of its own');
      assert.notEqual(ttyNr, callerTtyNr, "its controlling terminal is not the caller's");
      assert.notEqual(ttyNr, 0, 'it has a controlling terminal: its own pseudo-terminal');
      assert.equal(sessionOf(left).sid, pid, 'what it left running stays in its session');
      const fds = field(output, 'fds').trim().split(' ');
      assert.equal(fds.length, 3);
      for (const fd of fds) {
        assert.match(fd, /^\/dev\/pts\/\d+$/, 'stdin, stdout and stderr are a pseudo-terminal');
        assert.notEqual(fd, callerTty, "not the caller's terminal");
      }
      assert.equal(field(output, 'size'), '33 101', 'the window size is passed on');
      const held = spawnSync('ls', ['-l', `/proc/${left}/fd`], { encoding: 'utf8' }).stdout;
      assert.doesNotMatch(held, new RegExp(`${callerTty}$`, 'm'), `a process left in the slice holds the caller's terminal:\n${held}`);
    } finally {
      try {
        process.kill(left, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });

  test("a slice process cannot inject keystrokes into the caller's shell with TIOCSTI", async () => {
    if (existsSync('/proc/sys/dev/tty/legacy_tiocsti') && readFileSync('/proc/sys/dev/tty/legacy_tiocsti', 'utf8').trim() === '0') {
      process.stderr.write(
        'note: dev.tty.legacy_tiocsti=0 here, so TIOCSTI needs CAP_SYS_ADMIN anyway; this case cannot fail on this kernel\n',
      );
    }
    // TIOCSTI (0x5412) on every standard stream; whatever lands in the caller's terminal's
    // input is what the caller's shell reads next.
    const perl = `for my $fh (*STDIN, *STDOUT, *STDERR) { ioctl($fh, 0x5412, $_) for split //, "echo PWNED\\n" }`;
    const line = [
      `$SLICECTL exec --slice sbexec -- perl -e '${perl}'`,
      'echo "status=$?"',
      `bash -c 'read -t 2 next; echo "callerread=$next"'`,
    ].join('; ');
    const { output } = await onTerminal(line);
    assert.equal(field(output, 'status'), '0');
    assert.equal(field(output, 'callerread'), '', "nothing was injected into the caller's terminal");
  });

  test('streams that are files or pipes pass through unchanged, byte for byte', async () => {
    const out = join(scratch, 'out');
    const err = join(scratch, 'err');
    // stdin a terminal, stdout and stderr files.
    const first = await onTerminal(
      `$SLICECTL exec --slice sbexec -- sh -c 'printf "o\\n"; printf "e\\n" >&2; exit 3' > ${out} 2> ${err}; echo "status=$?"`,
    );
    assert.equal(field(first.output, 'status'), '3');
    assert.equal(readFileSync(out, 'utf8'), 'o\n');
    assert.equal(readFileSync(err, 'utf8'), 'e\n');
    // stdin and stdout pipes (control characters included), stderr the terminal.
    const second = await onTerminal(
      `printf 'a\\003b\\004c\\r\\n' | $SLICECTL exec --slice sbexec -- cat | od -An -c | tr -s ' ' > ${out}; echo "done=$?"`,
    );
    assert.equal(field(second.output, 'done'), '0');
    assert.equal(readFileSync(out, 'utf8').trim(), 'a 003 b 004 c \\r \\n');
    // No terminal at all: the plain path, still a session of its own.
    const plain = await daemon.cli(['exec', '--slice', 'sbexec', '--', 'sh', '-c', 'cut -d" " -f6,7 /proc/$$/stat; echo $$; cat'], {
      input: 'in\n',
    });
    assert.equal(plain.code, 0, plain.stderr);
    const [stat, pid, echoed] = plain.stdout.trim().split('\n');
    assert.equal(stat, `${pid} 0`, 'it leads its own session and has no controlling terminal');
    assert.notEqual(Number(pid), sessionOf(process.pid).sid);
    assert.equal(echoed, 'in');
  });

  test('descriptors the caller leaks (not close-on-exec) never reach the slice, with or without a terminal', async () => {
    // A root shell with files open on fds 7 and 13 (13: past what a POSIX sh can name).
    // No pipeline inside the slice: its shell would hold the pipe's fds while ls reads them.
    const list = 'ls /proc/$$/fd; :'; // "; :" keeps the shell from exec'ing ls, whose own fds differ
    const plain = spawnSync(
      'bash',
      [
        '-c',
        `exec 7</etc/hostname 13</etc/hostname; exec "$@"`,
        'caller',
        process.execPath,
        SLICECTL,
        '--socket',
        daemon.socket,
        'exec',
        '--slice',
        'sbexec',
        '--',
        'sh',
        '-c',
        list,
      ],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    assert.equal(plain.status, 0, plain.stderr);
    assert.deepEqual(plain.stdout.trim().split(/\s+/), ['0', '1', '2'], 'only stdin, stdout and stderr are open in the slice');
    const { output } = await onTerminal(
      `exec 7</etc/hostname 9</etc/hostname; echo "fds=$($SLICECTL exec --slice sbexec -- sh -c '${list}' < /dev/null | tr "\\n" " ")"`,
    );
    assert.deepEqual(field(output, 'fds').trim().split(' '), ['0', '1', '2'], 'only stdin, stdout and stderr are open in the slice');
  });

  test('signals sent to slicectl reach the command, whose status comes back', async () => {
    const line = [
      `$SLICECTL exec --slice sbexec -- sh -c 'trap "echo got-term; exit 8" TERM; echo ready; while :; do sleep 0.1; done' &`,
      'sleep 2; kill -TERM $!; wait $!; echo "status=$?"',
    ].join('\n');
    const { output } = await onTerminal(line);
    assert.match(output, /got-term/);
    assert.equal(field(output, 'status'), '8');
  });

  test('chrt -f 5 slicectl exec runs the command with SCHED_OTHER and says so', async () => {
    const result = spawnSync(
      'chrt',
      [
        '-f',
        '5',
        process.execPath,
        SLICECTL,
        '--socket',
        daemon.socket,
        'exec',
        '--slice',
        'sbexec',
        '--',
        'sh',
        '-c',
        'chrt -p $$; cat /proc/$$/cgroup',
      ],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /current scheduling policy: SCHED_OTHER/);
    assert.deepEqual(
      (await KernelGroups.of(daemon)).misplaced(result.stdout, 'sbexec.slice'),
      [],
      `it is in the slice's groups: ${result.stdout}`,
    );
    assert.match(result.stderr, /the command runs with SCHED_OTHER, not SCHED_FIFO: processes in a slice may not hold real-time policies/);
  });

  test('attaching a SCHED_FIFO process resets it to SCHED_OTHER, as README promises', async () => {
    // A process with several threads (node), every one of them SCHED_FIFO.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    const policies = (): string[] =>
      readdirSync(`/proc/${holder.pid}/task`).map((tid) =>
        spawnSync('chrt', ['-p', tid], { encoding: 'utf8' })
          .stdout.split('\n')[0]!
          .replace(/^pid \d+'s /, ''),
      );
    try {
      await sleep(300);
      assert.equal(spawnSync('chrt', ['-a', '-f', '-p', '5', String(holder.pid)], { encoding: 'utf8' }).status, 0);
      assert.ok(policies().length > 1 && policies().every((p) => p.endsWith('SCHED_FIFO')), policies().join('; '));
      const attached = await daemon.cli(['attach', 'sbexec', String(holder.pid)]);
      assert.equal(attached.code, 0, attached.stderr);
      assert.ok(
        policies().every((p) => p.endsWith('SCHED_OTHER')),
        policies().join('; '),
      );
      assert.deepEqual(
        (await KernelGroups.of(daemon)).missingFrom('sbexec.slice', holder.pid!),
        [],
        "the process is in the slice's group of every hierarchy",
      );
      assert.match(daemon.log, /reset real-time threads to SCHED_OTHER/);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});
