/**
 * What a new operator meets on day one, against a real daemon: every refusal or empty answer
 * says why, and figures shown to a slice are its own and true.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestDaemon, userIds } from '../helpers/daemon.js';
import { kernelSkipReason, SLOW } from '../helpers/env.js';
import { freePid } from '../helpers/procs.js';
import type { StatusDocument } from '../../src/wire/status.js';

const skip = kernelSkipReason();
if (skip) process.stderr.write(`SKIP e2e/messages: ${skip}\n`);

/** A raw request on the API socket, body sent exactly as given. */
function raw(
  socket: string,
  method: string,
  path: string,
  body: string | null,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: socket,
        method,
        path,
        headers: { ...headers, ...(body !== null ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

const JSON_TYPE = { 'content-type': 'application/json' };

describe('messages a new operator stumbles on', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;

  before(async () => {
    daemon = await TestDaemon.start();
  });

  after(async () => {
    await daemon.destroy();
  });

  test('vsys list says whether services are missing or withdrawn, and why', async () => {
    const services = join(daemon.stateDir, 'vsys');
    const none = await daemon.cli(['vsys', 'list']);
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout.trim(), `no vsys services: none installed in ${services}`);

    mkdirSync(services, { recursive: true, mode: 0o700 });
    writeFileSync(join(services, 'mxecho'), '#!/bin/sh\ncat\n', { mode: 0o755 });
    const listed = async (pattern: RegExp): Promise<string> => {
      const deadline = Date.now() + 15_000 * SLOW; // inotify, or at worst the 10 s rescan
      for (;;) {
        const out = (await daemon.cli(['vsys', 'list'])).stdout;
        if (pattern.test(out)) return out;
        if (Date.now() > deadline) throw new Error(`vsys list never matched ${pattern}; last:\n${out}`);
        await sleep(100);
      }
    };
    await listed(/^mxecho\s+public/m);
    chmodSync(services, 0o777);
    try {
      const out = await listed(/withdrawn/);
      assert.equal(
        out.trim(),
        `no vsys services: all are withdrawn because vsys services directory ${services} has mode 0777; it must not be writable by group or others (only root may be able to change it)`,
      );
      const json = await daemon.cli(['--json', 'vsys', 'list']);
      assert.deepEqual(JSON.parse(json.stdout), []);
      assert.match(json.stderr, /^slicectl: warning: vsys services withdrawn: vsys services directory .* has mode 0777/);
      const status = await daemon.api.get<{ withdrawn: string | null; servicesDir: string }>('/v1/vsys');
      assert.equal(status.servicesDir, services);
      assert.match(status.withdrawn ?? '', /has mode 0777/);
    } finally {
      chmodSync(services, 0o700);
    }
    await listed(/^mxecho\s+public/m);
    assert.equal((await daemon.api.get<{ withdrawn: string | null }>('/v1/vsys')).withdrawn, null);
  });

  test("a slice's status shows its own reservation, nobody else's", async () => {
    for (const args of [
      ['slice', 'create', 'mxres', '--cpu-reservation', '800m'],
      ['slice', 'create', 'mxoth', '--cpu-reservation', '300m'],
      ['domain', 'create', 'mxdom', '--cpu-reservation', '200m'],
      ['slice', 'create', 'mxin', '--domain', 'mxdom', '--cpu-reservation', '150m'],
    ]) {
      const r = await daemon.cli(args);
      assert.equal(r.code, 0, r.stderr);
    }
    try {
      const asRes = userIds('sl-mxres');
      const text = await daemon.cli(['status', '--once'], asRes);
      assert.equal(text.code, 0, text.stderr);
      const header = text.stdout.split('\n')[0]!;
      assert.match(header, /slice mxres reserves 800m \(other slices are not shown\)/);
      const reserve = (await daemon.cliJson<StatusDocument>(['status'])).node.cpu.systemReserve;
      assert.match(header, new RegExp(`system reserve ${reserve}m`), 'a node setting, not about other slices');
      assert.doesNotMatch(header, /\b0m reserved|1300m|mxoth/, header);
      assert.doesNotMatch(text.stdout, /mxoth|mxin|mxdom/);
      const json = JSON.parse((await daemon.cli(['--json', 'status'], asRes)).stdout) as StatusDocument;
      assert.equal(json.node.cpu.reserved, null, 'the node total is not shown to a slice');
      assert.deepEqual(
        json.slices.map((s) => s.name),
        ['mxres'],
      );
      // The admin still sees the node's total.
      assert.match((await daemon.cli(['status', '--once'])).stdout.split('\n')[0]!, /^node: \d+m CPU, 1300m reserved, /);

      // A member of a domain sees its own row, though not the domain's.
      const asIn = await daemon.cli(['status', '--once'], userIds('sl-mxin'));
      assert.equal(asIn.code, 0, asIn.stderr);
      assert.match(asIn.stdout.split('\n')[0]!, /slice mxin reserves 150m/);
      assert.match(asIn.stdout, /^mxin\s+150m\s/m);
    } finally {
      for (const args of [
        ['slice', 'delete', 'mxres'],
        ['slice', 'delete', 'mxoth'],
        ['slice', 'delete', 'mxin'],
        ['domain', 'delete', 'mxdom'],
      ])
        await daemon.cli(args);
    }
  });

  test('a domain of slices without processes is entitled to nothing, from the first period on', async () => {
    assert.equal((await daemon.cli(['domain', 'create', 'mxidle', '--cpu-limit', '600m'])).code, 0);
    assert.equal((await daemon.cli(['slice', 'create', 'mxempty', '--domain', 'mxidle'])).code, 0);
    try {
      // Three control periods, sampled ten times each: a pass that counted the new, empty slice
      // as hungry showed the domain entitled to its whole limit for one period.
      const passes = new Set<string>();
      const seen: number[] = [];
      const deadline = Date.now() + 3500 * SLOW; // under emulation each status takes longer: sample as many periods
      while (Date.now() < deadline) {
        const status = await daemon.cliJson<StatusDocument & { node: { control: { at: string } | null } }>(['status']);
        if (status.node.control) passes.add(status.node.control.at);
        const domain = status.domains.find((d) => d.name === 'mxidle');
        const slice = status.slices.find((s) => s.name === 'mxempty');
        seen.push(domain?.live?.entitlement ?? 0, slice?.live?.entitlement ?? 0);
        await sleep(100);
      }
      assert.ok(passes.size >= 3, `the control loop ran (${passes.size} passes seen)`);
      assert.equal(Math.max(...seen), 0, `entitlements seen: ${[...new Set(seen)].join(', ')}`);
    } finally {
      await daemon.cli(['slice', 'delete', 'mxempty']);
      await daemon.cli(['domain', 'delete', 'mxidle']);
    }
  });

  test('placement of a pid that does not exist is refused (exit 3); a malformed pid names the range', async () => {
    const missing = freePid();
    const gone = await daemon.cli(['placement', String(missing)]);
    assert.equal(gone.code, 3, gone.stdout);
    assert.equal(gone.stderr.trim(), `slicectl: process ${missing} does not exist`);
    const huge = await daemon.cli(['placement', '1e400']);
    assert.equal(huge.code, 2);
    assert.match(huge.stderr, /pid "1e400" is not a valid pid: it must be a whole number from 1 to 4194304/);
    const api = await raw(daemon.socket, 'GET', '/v1/placement?pid=1e400', null);
    assert.equal(api.status, 400);
    assert.match(api.body, /placement: pid \\"1e400\\" is not a valid pid: it must be a whole number from 1 to 4194304/);
    const mine = await daemon.cli(['placement', String(process.pid)]);
    assert.equal(mine.code, 0, mine.stderr);
  });

  test('bodies: __proto__ is named, 1e400 is not a valid pid, broken JSON says where', async () => {
    const proto = await raw(daemon.socket, 'POST', '/v1/slices', '{"name":"mxproto","__proto__":{"admin":true}}', JSON_TYPE);
    assert.equal(proto.status, 400);
    assert.deepEqual(JSON.parse(proto.body), {
      error: {
        code: 'EINVAL',
        message: 'the key "__proto__" is not allowed in a request body (it could change object prototypes); remove it',
      },
    });
    const ctor = await raw(
      daemon.socket,
      'POST',
      '/v1/slices',
      '{"name":"mxproto","cpu":{"constructor":{"prototype":{"x":1}}}}',
      JSON_TYPE,
    );
    assert.equal(ctor.status, 400);
    assert.match(ctor.body, /the key \\"constructor\.prototype\\" is not allowed/);
    assert.equal((await raw(daemon.socket, 'GET', '/v1/slices/mxproto', null)).status, 404, 'nothing was created');

    const broken = await raw(daemon.socket, 'POST', '/v1/slices', '{"name":"mxproto",', JSON_TYPE);
    assert.equal(broken.status, 400);
    assert.match(broken.body, /the body is not valid JSON: .*position \d+/);

    assert.equal((await daemon.cli(['slice', 'create', 'mxpid'])).code, 0);
    try {
      for (const path of ['/v1/slices/mxpid/attach', '/v1/slices/mxpid/exec-plan']) {
        const huge = await raw(daemon.socket, 'POST', path, '{"pid":1e400}', JSON_TYPE);
        assert.equal(huge.status, 400);
        const message = (JSON.parse(huge.body) as { error: { message: string } }).error.message;
        assert.match(message, /: pid Infinity is not a valid pid: it must be a whole number from 1 to 4194304$/);
        assert.doesNotMatch(message, /null/);
      }
      const text = await raw(daemon.socket, 'POST', '/v1/slices/mxpid/attach', '{"pid":"12"}', JSON_TYPE);
      assert.match(text.body, /attach: pid \\"12\\" is not a valid pid/);
      const missing = await raw(daemon.socket, 'POST', '/v1/slices/mxpid/attach', '{}', JSON_TYPE);
      assert.match(missing.body, /attach: pid is required/);
    } finally {
      await daemon.cli(['slice', 'delete', 'mxpid']);
    }
  });

  test('a DELETE with a JSON content type and no body is accepted, as curl sends it', async () => {
    assert.equal((await daemon.cli(['slice', 'create', 'mxdel'])).code, 0);
    assert.equal((await daemon.cli(['slice', 'create', 'mxdel2'])).code, 0);
    // curl -X DELETE -H 'content-type: application/json' sends no length at all; others send 0.
    const deleted = await raw(daemon.socket, 'DELETE', '/v1/slices/mxdel', null, JSON_TYPE);
    assert.equal(deleted.status, 200, deleted.body);
    assert.deepEqual(JSON.parse(deleted.body), { deleted: 'mxdel' });
    const zero = await raw(daemon.socket, 'DELETE', '/v1/slices/mxdel2', '', JSON_TYPE);
    assert.equal(zero.status, 200, zero.body);
    // A route that needs a body says so, rather than blaming the content type.
    const empty = await raw(daemon.socket, 'POST', '/v1/slices', '', JSON_TYPE);
    assert.equal(empty.status, 400);
    assert.match(empty.body, /slice: body is required/);
  });
});
