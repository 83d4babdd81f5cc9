import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/daemon/config.js';
import { isSlicedError } from '../../src/core/errors.js';

const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function refusal(overrides: Record<string, unknown>, yaml?: string): string {
  let file: string | null = null;
  if (yaml !== undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'sliced-config-test-'));
    dirs.push(dir);
    file = join(dir, 'sliced.yaml');
    writeFileSync(file, yaml);
  }
  try {
    loadConfig(file, overrides);
  } catch (err) {
    assert.ok(isSlicedError(err), String(err));
    assert.equal(err.code, 'EINVAL');
    return err.message;
  }
  assert.fail(`accepted ${JSON.stringify(overrides)} ${yaml ?? ''}`);
}

describe('config: a refused setting is one sentence naming the YAML key, the flag, the value, where it came from and what is allowed', () => {
  test('a number out of range (the flag)', () => {
    assert.equal(
      refusal({ controlPeriodMs: 50 }),
      'controlPeriodMs (--period) 50 on the command line is too small; allowed: a whole number of milliseconds from 100 to 60000',
    );
    assert.equal(
      refusal({ feedbackGain: 2 }),
      'feedbackGain (--feedback-gain) 2 on the command line is too large; allowed: a number from 0 to 1',
    );
  });

  test('the same in the file, and a setting without a flag', () => {
    const message = refusal({}, 'controlPeriodMs: 50\ndaemonNice: 40\n');
    assert.match(
      message,
      /^controlPeriodMs \(--period\) 50 in \/.*sliced\.yaml is too small; allowed: a whole number of milliseconds from 100 to 60000; /,
    );
    assert.match(message, /daemonNice \(YAML only\) 40 in \/.*sliced\.yaml is too large; allowed: a whole number from -20 to 19$/);
  });

  test('a choice, a pattern, a wrong type, a fraction and an empty path', () => {
    assert.equal(
      refusal({ cgroupVersion: 'v3' }),
      'cgroupVersion (--cgroup-version) "v3" on the command line is not one of the choices; allowed: "auto", "v1" or "v2"',
    );
    assert.equal(
      refusal({ netTag: 'ABC' }),
      'netTag (--net-tag) "ABC" on the command line has the wrong form; allowed: 1 to 5 lower-case letters or digits',
    );
    assert.match(
      refusal({}, 'stopGraceMs: soon\n'),
      /^stopGraceMs \(--stop-grace\) "soon" in .* has the wrong type; allowed: a whole number of milliseconds from 0 to 600000$/,
    );
    assert.match(
      refusal({}, 'vsysMaxCallsPerSlice: 2.5\n'),
      /^vsysMaxCallsPerSlice \(--vsys-max-calls\) 2\.5 in .* is not a whole number; allowed: a whole number from 1 to 1000$/,
    );
    assert.equal(refusal({ stateDir: '' }), 'stateDir (--state-dir) "" on the command line is empty; allowed: a directory path');
  });

  test('amounts, rates and pools are checked with the others, before the daemon starts', () => {
    assert.equal(
      refusal({ cpuCapacity: '0' }),
      'cpuCapacity (--cpu-capacity) "0" on the command line is not positive; allowed: a positive CPU amount like "4" or "3500m"',
    );
    assert.match(
      refusal({ netCapacity: '5bps' }),
      /^netCapacity \(--net-capacity\) "5bps" on the command line must be a rate in bits per second .*"bps" is ambiguous/,
    );
    assert.equal(
      refusal({ netPool4: '10.0.0.0/8' }),
      'netPool4 (--net-pool4) "10.0.0.0/8" on the command line has prefix length /8; allowed is /17 to /29',
    );
    assert.equal(refusal({ systemReserve: '150%' }), 'systemReserve (--system-reserve) "150%" on the command line must be below 100%');
  });

  test('an unknown setting lists the known ones', () => {
    assert.match(
      refusal({}, 'controlPeriod: 500\n'),
      /^unknown setting "controlPeriod" in .*sliced\.yaml; the settings are stateDir, runDir, .*controlPeriodMs, .*netCapacity, .*netConntrackMax$/,
    );
  });

  test("no message carries zod's raw wording", () => {
    for (const overrides of [
      { controlPeriodMs: 50 },
      { metricsPort: 0 },
      { logLevel: 'loud' },
      { vsysTimeoutMs: 10 },
      { nodeName: '-x' },
    ]) {
      assert.doesNotMatch(refusal(overrides), /Too small|Too big|Invalid option|expected/, JSON.stringify(overrides));
    }
  });
});
