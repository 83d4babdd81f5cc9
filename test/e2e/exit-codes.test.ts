/**
 * Every exit status README documents for slicectl and sliced, triggered for real against a
 * real daemon. README's tables are the single source of truth: a status documented there with
 * no case here, a case here whose status is not documented, a --help text that lists other
 * statuses, or a command that exits otherwise, all fail.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, SLICECTL, SLICED, TestDaemon, run, userIds, type CliResult } from '../helpers/daemon.js';
import { kernelSkipReason } from '../helpers/env.js';
import { freePid, processInOwnMemoryCgroup, visibleKernelThread } from '../helpers/procs.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/exit-codes: ${skip}\n`);

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The rows `| N | meaning |` of the first table after the line matching `anchor`. */
function exitTable(anchor: RegExp): Map<number, string> {
  const lines = README.split('\n');
  const start = lines.findIndex((line) => anchor.test(line));
  assert.ok(start >= 0, `README has no exit status table after ${anchor}`);
  const rows = new Map<number, string>();
  for (const line of lines.slice(start + 1)) {
    const row = /^\| (\d+) \| (.+) \|$/.exec(line);
    if (row) rows.set(Number(row[1]), row[2]!);
    else if (rows.size > 0 || line.startsWith('#')) break;
  }
  assert.ok(rows.size > 0, `README's table after ${anchor} has no rows`);
  return rows;
}

/** The statuses a --help text lists in its "Exit status: 0 ..., 1 ..., 2 ... ." sentence. */
function helpStatuses(help: string): number[] {
  const start = help.indexOf('Exit status:');
  assert.ok(start >= 0, `--help has no "Exit status:" sentence:\n${help}`);
  const sentence = help
    .slice(start + 'Exit status:'.length)
    .split(/\.\s*\n/)[0]!
    .replace(/\s+/g, ' ')
    .trim();
  return [...sentence.matchAll(/(?:^|, )(\d+) /g)].map((m) => Number(m[1]));
}

interface Case {
  what: string;
  result: () => Promise<CliResult>;
  message: RegExp;
}

/** Runs every case of every documented status, after checking each status has cases. */
async function check(tool: string, documented: Map<number, string>, cases: Map<number, Case[]>): Promise<void> {
  const sorted = (keys: Iterable<number>) => [...keys].sort((a, b) => a - b);
  assert.deepEqual(
    sorted(cases.keys()),
    sorted(documented.keys()),
    `${tool}: README documents statuses ${[...documented.keys()]}, this test triggers ${[...cases.keys()]}`,
  );
  for (const [status, meaning] of documented) {
    for (const c of cases.get(status)!) {
      const result = await c.result();
      assert.equal(
        result.code,
        status,
        `${tool} ${c.what} (README: ${status} = ${meaning}): exit ${result.code}, stderr: ${result.stderr}`,
      );
      assert.match(result.stderr + result.stdout, c.message, `${tool} ${c.what}`);
    }
  }
}

describe('exit statuses as README documents them', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;

  before(async () => {
    daemon = await TestDaemon.start();
    const created = await daemon.cli(['slice', 'create', 'mxexit', '--cpu-reservation', '100m']);
    assert.equal(created.code, 0, created.stderr);
  });

  after(async () => {
    await daemon.cli(['slice', 'delete', 'mxexit']);
    await daemon.destroy();
  });

  test('slicectl: every status of the table, and --help lists the same', async () => {
    const documented = exitTable(/^### Exit status$/);
    const help = await daemon.cli(['--help']);
    assert.equal(help.code, 0);
    assert.deepEqual(helpStatuses(help.stdout), [...documented.keys()], 'slicectl --help and README list the same statuses');

    const missing = freePid();
    const asSlice = userIds('sl-mxexit');
    const kthread = visibleKernelThread();
    const foreign = await processInOwnMemoryCgroup(`mxexit-${process.pid}`);
    const ctl = (args: string[], options = {}) => ({ what: args.join(' '), result: () => daemon.cli(args, options) });
    try {
      const refusedForAnyone: Case[] = [{ ...ctl(['attach', 'mxexit', '1']), message: /process 1 \(init\) cannot be attached/ }];
      if (kthread !== null)
        refusedForAnyone.push({ ...ctl(['attach', 'mxexit', String(kthread)]), message: /is a kernel thread and cannot be attached/ });
      else process.stderr.write('SKIP attach of a kernel thread: none is visible here (a PID namespace)\n');
      if (foreign !== null)
        refusedForAnyone.push({
          ...ctl(['attach', 'mxexit', String(foreign.pid)]),
          message: /is accounted in memory cgroup .* which does not contain sliced's groups/,
        });
      else process.stderr.write('SKIP attach from another memory cgroup: no memory controller\n');

      await check(
        'slicectl',
        documented,
        new Map<number, Case[]>([
          [0, [{ ...ctl(['slice', 'show', 'mxexit']), message: /CPU reservation:\s+100m/ }]],
          [
            1,
            [
              { ...ctl(['slice', 'create', 'mxexit']), message: /slice mxexit already exists/ },
              { ...ctl(['slice', 'create', 'mxexit2', '--cpu-reservation', '50']), message: /over-commit at node/ },
              {
                ...ctl(['slice', 'set', 'mxexit', '--cpu-shares', '0']),
                message: /cpu\.shares "0" must be a whole number from 1 to 10000/,
              },
            ],
          ],
          [
            2,
            [
              { ...ctl(['--bogus']), message: /unknown option '--bogus'/ },
              { ...ctl(['slice', 'create']), message: /missing required argument 'name'/ },
              {
                ...ctl(['attach', 'mxexit', '99999999']),
                message: /pid "99999999" is not a valid pid: it must be a whole number from 1 to 4194304/,
              },
            ],
          ],
          [
            3,
            [
              { ...ctl(['slice', 'show', 'mxnope']), message: /slice "mxnope" does not exist/ },
              { ...ctl(['attach', 'mxexit', String(missing)]), message: new RegExp(`process ${missing} does not exist`) },
              { ...ctl(['placement', String(missing)]), message: new RegExp(`process ${missing} does not exist`) },
            ],
          ],
          [4, [{ ...ctl(['slice', 'create', 'mxexit3'], asSlice), message: /permission denied on .*sliced\.sock/ }, ...refusedForAnyone]],
          [
            5,
            [
              {
                what: '--socket <nothing>',
                result: () => run(process.execPath, [SLICECTL, '--socket', `${daemon.dir}/nothing.sock`, 'slice', 'list']),
                message: /sliced is not running/,
              },
            ],
          ],
        ]),
      );
    } finally {
      await foreign?.release();
    }

    // README's attach paragraph names the status of the refusals the table puts under 4.
    const attach = README.slice(README.indexOf('`attach` moves a running process')).replace(/\s+/g, ' ');
    const documentedAttach = /\(exit (\d+)[^)]*\) for init, sliced itself, kernel threads and processes in a memory cgroup/.exec(attach);
    assert.ok(documentedAttach, 'README says how attach refusals exit');
    assert.equal(Number(documentedAttach[1]), 4);
  });

  test("slicectl exec and run: the command's own status, 128+N for signal N", async () => {
    assert.match(README, /`exec` and `run` \(without `-d`\) return the command's own status instead \(128\+N when it died of signal N\)/);
    for (const verb of ['exec', 'run']) {
      assert.equal((await daemon.cli([verb, '--slice', 'mxexit', '--', 'sh', '-c', 'exit 7'])).code, 7, verb);
      assert.equal((await daemon.cli([verb, '--slice', 'mxexit', '--', 'sh', '-c', 'kill -TERM $$'])).code, 128 + 15, verb);
    }
  });

  test('sliced: every status of the table, and --help lists the same', async () => {
    const documented = exitTable(/^\*\*Exit status\*\* /);
    const help = await run(process.execPath, [SLICED, '--help']);
    assert.equal(help.code, 0);
    assert.deepEqual(helpStatuses(help.stdout), [...documented.keys()], 'sliced --help and README list the same statuses');
    // Every sliced run below names the test daemon's own directories and groups: whatever
    // happens, it can never touch a production instance.
    const sliced = (extra: string[]) => ({
      what: extra.join(' '),
      result: () => run(process.execPath, [SLICED, ...daemon.args, ...extra]),
    });
    const second = await TestDaemon.start();
    try {
      await check(
        'sliced',
        documented,
        new Map<number, Case[]>([
          [
            0,
            [
              { ...sliced(['--help']), message: /Usage: sliced/ },
              {
                what: 'SIGTERM',
                result: async () => ({ code: (await second.stop('SIGTERM')) ?? -1, stdout: '', stderr: second.log }),
                message: /stopping/,
              },
              { what: '--cleanup', result: () => run(process.execPath, [SLICED, ...second.args, '--cleanup']), message: /^/ },
            ],
          ],
          [1, [{ ...sliced([]), message: /sliced: another sliced is already serving .*sliced\.sock/ }]],
          [
            2,
            [
              { ...sliced(['--bogus']), message: /unknown option '--bogus'/ },
              { ...sliced(['--period', 'abc']), message: /"abc" is not a whole number/ },
              { ...sliced(['--period', '50']), message: /controlPeriodMs/ },
            ],
          ],
        ]),
      );
    } finally {
      await second.destroy();
    }
  });
});
