/**
 * A start refused for its configuration leaves nothing behind: every check runs before the
 * daemon touches the kernel or the state directory, so after the refusal there is no cgroup,
 * no state file, no run directory or socket, no nft table and no bridge of that daemon.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SLICED, freePort, run } from '../helpers/daemon.js';
import { kernelSkipReason, SLOW } from '../helpers/env.js';
import { detectLayout } from '../../src/kernel/cgroup/detect.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/refused-start: ${skip}\n`);

let counter = 0;

interface Setup {
  base: string;
  state: string;
  run: string;
  cgroupRoot: string;
  tag: string;
  args: string[];
}

function setup(): Setup {
  const n = ++counter;
  const base = mkdtempSync(join(tmpdir(), 'sliced-dk-refuse-'));
  chmodSync(base, 0o755);
  const state = join(base, 'state');
  const runDir = join(base, 'run');
  const cgroupRoot = `sliced-dkr${process.pid}-${n}`;
  const tag = `dk${(process.pid % 1296).toString(36)}${n.toString(36)}`.slice(0, 5);
  return {
    base,
    state,
    run: runDir,
    cgroupRoot,
    tag,
    // Third octets 250.. are never used by test/helpers/daemon.ts's pools.
    args: [
      '--state-dir',
      state,
      '--run-dir',
      runDir,
      '--cgroup-root',
      cgroupRoot,
      '--net-tag',
      tag,
      '--net-pool4',
      `10.${200 + (process.pid % 50)}.${250 + (n % 6)}.0/24`,
      '--net-pool6',
      `fd5e:${(process.pid % 65536).toString(16)}:${n.toString(16)}::/64`,
    ],
  };
}

/** Run sliced with `extra`; a daemon that does not refuse within 20 s is stopped and reported. */
function start(s: Setup, extra: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SLICED, ...s.args, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 20_000 * SLOW);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** Everything this daemon would have made, that exists now. */
function leftovers(s: Setup, stateExisted: boolean): string[] {
  const found: string[] = [];
  const layout = detectLayout({ rootName: s.cgroupRoot });
  const groups =
    layout.kind === 'v2'
      ? [layout.v2!.root]
      : Object.entries(layout.v1!)
          .filter(([k]) => k !== 'memoryMount')
          .map(([, dir]) => dir);
  for (const dir of groups) if (existsSync(dir)) found.push(`cgroup ${dir}`);
  if (stateExisted) {
    const files = readdirSync(s.state);
    if (files.length > 0) found.push(`state files ${files.join(', ')}`);
  } else if (existsSync(s.state)) {
    found.push(`state directory ${s.state}`);
  }
  if (existsSync(s.run)) found.push(`run directory ${s.run}`);
  for (const family of ['inet', 'bridge']) {
    if (spawnSync('nft', ['list', 'table', family, `sliced${s.tag}`]).status === 0) found.push(`nft table ${family} sliced${s.tag}`);
  }
  for (const link of [`slbr${s.tag}`, `slifb${s.tag}`])
    if (spawnSync('ip', ['link', 'show', link]).status === 0) found.push(`link ${link}`);
  return found;
}

async function refused(s: Setup, extra: string[], message: RegExp, stateExisted = false, code = 1): Promise<void> {
  try {
    const result = await start(s, extra);
    assert.deepEqual(leftovers(s, stateExisted), [], `a refused start leaves nothing behind (${result.stderr.trim()})`);
    assert.equal(result.code, code, `sliced should refuse to start: ${result.stderr}`);
    assert.match(result.stderr, message);
  } finally {
    // Whatever a start made before refusing (the code before this fix did) goes again.
    const port = extra.indexOf('--metrics-port');
    const cleanupArgs = port < 0 ? extra : [...extra.slice(0, port), ...extra.slice(port + 2)];
    await run(process.execPath, [SLICED, ...s.args, ...cleanupArgs, '--cleanup']);
    rmSync(s.base, { recursive: true, force: true });
  }
}

describe('a refused start leaves nothing behind', { skip: skip ?? false }, () => {
  test('a value out of range: one sentence naming the key, the flag, the value and what is allowed (bad usage, exit 2)', async () => {
    const s = setup();
    await refused(
      s,
      ['--period', '50'],
      /^sliced: controlPeriodMs \(--period\) 50 on the command line is too small; allowed: a whole number of milliseconds from 100 to 60000\n$/,
      false,
      2,
    );
  });

  test('a vsys services directory others can write', async () => {
    const s = setup();
    const open = join(s.base, 'vsys-open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await refused(
      s,
      ['--vsys-dir', open],
      new RegExp(`vsys services directory ${open} has mode 0777; it must not be writable by group or others`),
    );
  });

  test('a vsys slice root inside a directory others can write', async () => {
    const s = setup();
    const open = join(s.base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await refused(
      s,
      ['--vsys-slice-root', join(open, 'vsys')],
      new RegExp(`vsys slice directory root ${open}/vsys: its parent ${open} has mode 0777`),
    );
    assert.equal(existsSync(join(open, 'vsys')), false);
  });

  test('a state directory its group can write', async () => {
    const s = setup();
    mkdirSync(s.state, { mode: 0o770 });
    chmodSync(s.state, 0o770);
    await refused(
      s,
      [],
      new RegExp(`state directory \\(stateDir, --state-dir\\) ${s.state} has mode 0770; it must not be writable by group or others`),
      true,
    );
  });

  test('an admin group that does not exist', async () => {
    const s = setup();
    await refused(s, ['--admin-group', 'sldk-nosuchgroup'], /admin group \(adminGroup, --admin-group\) sldk-nosuchgroup does not exist/);
  });

  test('an API socket another process serves', async () => {
    const s = setup();
    const socket = join(s.base, 'other.sock');
    const server: Server = createServer((c) => c.end());
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    try {
      await refused(s, ['--socket', socket], new RegExp(`another sliced is already serving ${socket}`));
    } finally {
      server.close();
    }
  });

  test('an API socket path longer than a Unix socket path can be', async () => {
    const s = setup();
    const socket = join(s.base, `${'x'.repeat(100)}.sock`);
    await refused(s, ['--socket', socket], /API socket \(socket, --socket\) .* is \d+ bytes long; a Unix socket path may have at most 107/);
  });

  test('a metrics port in use', async () => {
    const s = setup();
    const port = await freePort();
    const server = createHttpServer();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      await refused(
        s,
        ['--metrics-port', String(port)],
        new RegExp(`metrics port \\(metricsPort, --metrics-port\\) ${port} is already in use`),
      );
    } finally {
      server.close();
    }
  });

  test('a default tree that cannot be read', async () => {
    const s = setup();
    const missing = join(s.base, 'missing.yaml');
    await refused(s, ['--default-tree', missing], new RegExp(`default tree \\(defaultTree, --default-tree\\) ${missing} cannot be read`));
  });

  test('a default tree that is not YAML', async () => {
    const s = setup();
    const broken = join(s.base, 'tree.yaml');
    writeFileSync(broken, 'probes: [unclosed\n');
    await refused(s, ['--default-tree', broken], /the default tree \(defaultTree, --default-tree\) .*tree\.yaml is not valid YAML/);
  });
});
