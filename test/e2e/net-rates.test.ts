/**
 * Slice rates on the real kernel (tc HTB behind an IFB): a 50 Mbit/s ceiling holds within
 * 10% and can be changed at run time; a guaranteed rate is kept while another slice
 * competes for the node's capacity (100 Mbit/s for this daemon); guaranteed rates beyond the
 * capacity are refused. Rates are measured by iperf3's receiver.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestDaemon } from '../helpers/daemon.js';
import { kernelSkipReason } from '../helpers/env.js';
import { iperfClient, iperfServer, leftovers, netSkipReason, type SliceProcess } from '../helpers/net.js';
import type { SliceView } from '../../src/wire/slices.js';

const skip = kernelSkipReason() ?? netSkipReason();
if (skip) process.stderr.write(`SKIP e2e/net-rates: ${skip}\n`);

const CAPACITY = 100e6;
const SECONDS = '4';
const MBIT = 1e6;

describe('slice rates', { skip: skip ?? false }, () => {
  let daemon: TestDaemon;
  let sink: string;
  const servers: SliceProcess[] = [];

  before(async () => {
    daemon = await TestDaemon.start(['--net-capacity', '100mbit']);
    for (const args of [['n5r1', '--net-max-rate', '50mbit'], ['n5r2', '--net-min-rate', '70mbit'], ['n5r3'], ['n5rs']]) {
      const result = await daemon.cli(['slice', 'create', args[0]!, '--net', ...args.slice(1)]);
      assert.equal(result.code, 0, result.stderr);
    }
    sink = (await daemon.cliJson<SliceView>(['slice', 'show', 'n5rs'])).net!.addresses!.v4;
    for (const port of [5401, 5402, 5403]) servers.push(await iperfServer(daemon, 'n5rs', sink, port));
  });

  after(async () => {
    for (const server of servers) await server.stop();
    const tag = daemon.net.tag;
    await daemon.destroy();
    assert.deepEqual(leftovers(tag), []);
  });

  test('a 50 Mbit/s ceiling holds within 10%, and a change applies at run time', async (t) => {
    const capped = await iperfClient(daemon, 'n5r1', ['-c', sink, '-p', '5401', '-t', SECONDS]);
    t.diagnostic(`ceiling 50mbit: ${(capped.bitsPerSecond / MBIT).toFixed(1)} Mbit/s`);
    assert.ok(
      Math.abs(capped.bitsPerSecond - 50 * MBIT) <= 5 * MBIT,
      `capped at 50 Mbit/s, measured ${(capped.bitsPerSecond / MBIT).toFixed(1)}`,
    );

    assert.equal((await daemon.cli(['slice', 'set', 'n5r1', '--net-max-rate', '20mbit'])).code, 0);
    const lower = await iperfClient(daemon, 'n5r1', ['-c', sink, '-p', '5401', '-t', SECONDS]);
    assert.ok(
      Math.abs(lower.bitsPerSecond - 20 * MBIT) <= 2 * MBIT,
      `capped at 20 Mbit/s, measured ${(lower.bitsPerSecond / MBIT).toFixed(1)}`,
    );

    assert.equal((await daemon.cli(['slice', 'set', 'n5r1', '--net-max-rate', 'none'])).code, 0);
    const free = await iperfClient(daemon, 'n5r1', ['-c', sink, '-p', '5401', '-t', SECONDS]);
    assert.ok(
      free.bitsPerSecond > 60 * MBIT && free.bitsPerSecond <= CAPACITY * 1.1,
      `uncapped (node capacity 100 Mbit/s), measured ${(free.bitsPerSecond / MBIT).toFixed(1)}`,
    );
  });

  test('a guaranteed rate is kept under contention', async (t) => {
    const [guaranteed, other] = await Promise.all([
      iperfClient(daemon, 'n5r2', ['-c', sink, '-p', '5402', '-t', SECONDS]),
      iperfClient(daemon, 'n5r3', ['-c', sink, '-p', '5403', '-t', SECONDS]),
    ]);
    const g = guaranteed.bitsPerSecond / MBIT;
    const o = other.bitsPerSecond / MBIT;
    t.diagnostic(`guaranteed 70mbit: ${g.toFixed(1)} Mbit/s; competitor: ${o.toFixed(1)} Mbit/s`);
    assert.ok(g >= 70 * 0.9, `n5r2 is guaranteed 70 Mbit/s and got ${g.toFixed(1)} (n5r3 got ${o.toFixed(1)})`);
    assert.ok(o > 0 && g + o <= (CAPACITY / MBIT) * 1.1, `together ${(g + o).toFixed(1)} Mbit/s on a 100 Mbit/s node`);
  });

  test('guaranteed rates beyond the capacity, and a ceiling below the guarantee, are refused', async () => {
    const over = await daemon.cli(['slice', 'set', 'n5r3', '--net-min-rate', '40mbit']);
    assert.equal(over.code, 1);
    assert.match(over.stderr, /guaranteed rates would total 110mbit .* capacity is 100mbit/);
    const inverted = await daemon.cli(['slice', 'set', 'n5r2', '--net-max-rate', '10mbit']);
    assert.equal(inverted.code, 1);
    assert.match(inverted.stderr, /net\.maxRate 10mbit is below net\.minRate 70mbit/);
    const bad = await daemon.cli(['slice', 'set', 'n5r2', '--net-max-rate', '50mbps']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /"50mbps" must be a rate in bits per second/);
    const view = await daemon.cliJson<SliceView>(['slice', 'show', 'n5r3']);
    assert.equal(view.net!.minRate, null, 'a refused change must change nothing');
  });
});
