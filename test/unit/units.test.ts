import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatCpu, formatMemory, formatSizeApprox, parseCpu, parseMemory, type ParseResult } from '../../src/core/units.js';

function ok(result: ParseResult): number {
  if (!result.ok) assert.fail(`expected success, got refusal: ${result.reason}`);
  return result.value;
}

function refused(result: ParseResult): string {
  if (result.ok) assert.fail(`expected refusal, got ${result.value}`);
  assert.equal(typeof result.reason, 'string');
  assert.ok(result.reason.length > 0, 'a refusal carries a reason');
  return result.reason;
}

const K = 1024;
const M = 1024 ** 2;
const G = 1024 ** 3;
const T = 1024 ** 4;

describe('parseCpu', () => {
  test('millicore strings are taken as they are', () => {
    assert.equal(ok(parseCpu('1500m')), 1500);
    assert.equal(ok(parseCpu('0m')), 0);
    assert.equal(ok(parseCpu('1m')), 1);
    assert.equal(ok(parseCpu('250m')), 250);
  });

  test('core strings are converted to millicores', () => {
    assert.equal(ok(parseCpu('1.5')), 1500);
    assert.equal(ok(parseCpu('2')), 2000);
    assert.equal(ok(parseCpu('0')), 0);
    assert.equal(ok(parseCpu('0.001')), 1);
    assert.equal(ok(parseCpu('0.25')), 250);
    // 1.1 * 1000 is 1100.0000000000002 in floating point: still exactly 1100m.
    assert.equal(ok(parseCpu('1.1')), 1100);
    assert.equal(ok(parseCpu('64')), 64000);
  });

  test('numbers are cores', () => {
    assert.equal(ok(parseCpu(2)), 2000);
    assert.equal(ok(parseCpu(1.5)), 1500);
    assert.equal(ok(parseCpu(0)), 0);
    assert.equal(ok(parseCpu(0.001)), 1);
    assert.equal(ok(parseCpu(0.3)), 300);
  });

  test('surrounding white space is ignored', () => {
    assert.equal(ok(parseCpu(' 1500m ')), 1500);
    assert.equal(ok(parseCpu('\t1.5\n')), 1500);
  });

  test('quantities finer than 1m are refused, naming the value', () => {
    const reason = refused(parseCpu('0.0005'));
    assert.match(reason, /0\.0005/);
    assert.match(reason, /finer than 1m/);
    refused(parseCpu(0.0005));
    refused(parseCpu('1.0001'));
    refused(parseCpu(2.0004));
  });

  test('fractional millicores are refused', () => {
    assert.match(refused(parseCpu('1.5m')), /whole number/);
    refused(parseCpu('0.1m'));
  });

  test('negative quantities are refused', () => {
    refused(parseCpu('-1'));
    refused(parseCpu('-1500m'));
    refused(parseCpu(-1));
    refused(parseCpu(-0.5));
  });

  test('malformed strings are refused', () => {
    for (const bad of [
      'abc',
      '',
      ' ',
      '1.5 cores',
      '1500M',
      '1,5',
      '.5',
      '1.',
      '1e3',
      '0x10',
      'm',
      '15 00m',
      '1500mm',
      'Infinity',
      'NaN',
    ]) {
      refused(parseCpu(bad));
    }
  });

  test('values that are not strings or numbers are refused', () => {
    for (const bad of [null, undefined, true, false, {}, [], [1], () => 1, 10n, Symbol('x')]) {
      refused(parseCpu(bad));
    }
  });

  test('non-finite numbers are refused', () => {
    refused(parseCpu(Number.NaN));
    refused(parseCpu(Number.POSITIVE_INFINITY));
    refused(parseCpu(Number.NEGATIVE_INFINITY));
  });

  test('quantities too large to hold exactly are refused', () => {
    assert.match(refused(parseCpu(1e300)), /too large/);
    assert.match(refused(parseCpu('99999999999999999999')), /too large/);
    // The millicore form is checked as well: 2^53 + 1 would otherwise silently become 2^53.
    assert.match(refused(parseCpu('9007199254740993m')), /too large/);
    assert.match(refused(parseCpu('99999999999999999999m')), /too large/);
    assert.equal(ok(parseCpu(`${Number.MAX_SAFE_INTEGER}m`)), Number.MAX_SAFE_INTEGER);
  });

  test('property: "<n>m" parses to n for every whole n', () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 40 }), (n) => {
        const result = parseCpu(`${n}m`);
        return result.ok && result.value === n;
      }),
    );
  });

  test('property: cores given to three decimals parse to the exact millicores', () => {
    fc.assert(
      fc.property(fc.nat({ max: 10_000_000 }), (millicores) => {
        const whole = Math.floor(millicores / 1000);
        const fraction = String(millicores % 1000).padStart(3, '0');
        const text = `${whole}.${fraction}`;
        const fromString = parseCpu(text);
        const fromNumber = parseCpu(Number(text));
        return fromString.ok && fromString.value === millicores && fromNumber.ok && fromNumber.value === millicores;
      }),
    );
  });

  test('property: parseCpu(formatCpu(n)) gives n back', () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 40 }), (n) => {
        const result = parseCpu(formatCpu(n));
        return result.ok && result.value === n;
      }),
    );
  });

  test('property: results are always whole, non-negative and safe', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.double(), fc.integer()), (input) => {
        const result = parseCpu(input);
        if (!result.ok) return result.reason.length > 0;
        return Number.isSafeInteger(result.value) && result.value >= 0;
      }),
    );
  });
});

describe('parseMemory', () => {
  test('binary suffixes', () => {
    assert.equal(ok(parseMemory('512M')), 512 * M);
    assert.equal(ok(parseMemory('1G')), G);
    assert.equal(ok(parseMemory('64Ki')), 64 * K);
    assert.equal(ok(parseMemory('2T')), 2 * T);
    assert.equal(ok(parseMemory('1K')), 1024);
  });

  test('suffixes are case-insensitive and may carry "i" and "B"', () => {
    assert.equal(ok(parseMemory('512m')), 512 * M);
    assert.equal(ok(parseMemory('1GiB')), G);
    assert.equal(ok(parseMemory('1gb')), G);
    assert.equal(ok(parseMemory('4MB')), 4 * M);
    assert.equal(ok(parseMemory('100B')), 100);
    assert.equal(ok(parseMemory('1 G')), G);
    assert.equal(ok(parseMemory(' 2M ')), 2 * M);
  });

  test('plain numbers and digit strings are bytes', () => {
    assert.equal(ok(parseMemory(1024)), 1024);
    assert.equal(ok(parseMemory(0)), 0);
    assert.equal(ok(parseMemory('536870912')), 512 * M);
    assert.equal(ok(parseMemory('0')), 0);
  });

  test('fractions are fine when they come to whole bytes', () => {
    assert.equal(ok(parseMemory('1.5K')), 1536);
    assert.equal(ok(parseMemory('1.5G')), 1.5 * G);
    assert.equal(ok(parseMemory('0.5M')), 512 * K);
    assert.equal(ok(parseMemory('1.25K')), 1280);
  });

  test('fractions of a byte are refused, naming the value', () => {
    assert.match(refused(parseMemory('1.1')), /"1\.1" is not a whole number of bytes/);
    refused(parseMemory('1.1K'));
    refused(parseMemory('0.3M'));
    refused(parseMemory(1.5));
  });

  test('negative sizes are refused', () => {
    refused(parseMemory(-1));
    refused(parseMemory('-1'));
    refused(parseMemory('-512M'));
  });

  test('malformed sizes are refused', () => {
    for (const bad of ['abc', '', '512X', '512P', 'M', '1,5G', '1e6', '0x10', '512 M B', '.5G', 'five']) {
      refused(parseMemory(bad));
    }
  });

  test('values that are not strings or numbers are refused', () => {
    for (const bad of [null, undefined, true, {}, [], [512], 512n]) refused(parseMemory(bad));
    refused(parseMemory(Number.NaN));
    refused(parseMemory(Number.POSITIVE_INFINITY));
  });

  test('sizes too large to hold exactly are refused', () => {
    assert.match(refused(parseMemory('100000T')), /too large/);
    refused(parseMemory(2 ** 60));
  });

  test('property: "<n><unit>" parses to n times the unit', () => {
    const units: [string, number][] = [
      ['', 1],
      ['K', K],
      ['Ki', K],
      ['M', M],
      ['Mi', M],
      ['G', G],
      ['T', T],
    ];
    fc.assert(
      fc.property(fc.nat({ max: 4096 }), fc.constantFrom(...units), (n, [suffix, factor]) => {
        const result = parseMemory(`${n}${suffix}`);
        return result.ok && result.value === n * factor;
      }),
    );
  });

  test('property: results are always whole, non-negative and safe', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.double(), fc.integer()), (input) => {
        const result = parseMemory(input);
        if (!result.ok) return result.reason.length > 0;
        return Number.isSafeInteger(result.value) && result.value >= 0;
      }),
    );
  });
});

describe('formatCpu', () => {
  test('millicores with an "m"', () => {
    assert.equal(formatCpu(1500), '1500m');
    assert.equal(formatCpu(0), '0m');
    assert.equal(formatCpu(1), '1m');
  });

  test('fractions are rounded to whole millicores', () => {
    assert.equal(formatCpu(285.714), '286m');
    assert.equal(formatCpu(1499.5), '1500m');
    assert.equal(formatCpu(0.2), '0m');
  });

  test('null (no limit) is shown as "-"', () => {
    assert.equal(formatCpu(null), '-');
  });
});

describe('formatMemory', () => {
  test('round sizes use the largest exact binary unit', () => {
    assert.equal(formatMemory(0), '0');
    assert.equal(formatMemory(512), '512');
    assert.equal(formatMemory(1024), '1K');
    assert.equal(formatMemory(64 * K), '64K');
    assert.equal(formatMemory(512 * M), '512M');
    assert.equal(formatMemory(G), '1G');
    assert.equal(formatMemory(8 * G), '8G');
    assert.equal(formatMemory(3 * T), '3T');
    assert.equal(formatMemory(2048 * T), '2048T');
  });

  test('sizes round only in a smaller unit stay exact', () => {
    assert.equal(formatMemory(1536), '1536');
    assert.equal(formatMemory(1.5 * G), '1536M');
    assert.equal(formatMemory(1025 * K), '1025K');
  });

  test('odd sizes of a megabyte or more get one decimal', () => {
    assert.equal(formatMemory(M + 1), '1.0M');
    assert.equal(formatMemory(1.5 * M + 7), '1.5M');
    assert.equal(formatMemory(G + 3), '1.0G');
  });

  test('odd sizes under a megabyte are shown in bytes', () => {
    assert.equal(formatMemory(1025), '1025');
    assert.equal(formatMemory(M - 1), '1048575');
  });

  test('null (no limit) is shown as "-"', () => {
    assert.equal(formatMemory(null), '-');
  });

  test('property: exact output parses back to the same number of bytes', () => {
    fc.assert(
      fc.property(
        fc
          .oneof(
            fc.nat({ max: Number.MAX_SAFE_INTEGER }),
            fc.tuple(fc.nat({ max: 1 << 20 }), fc.constantFrom(K, M, G, T)).map(([n, f]) => n * f),
          )
          .filter((bytes) => Number.isSafeInteger(bytes)),
        (bytes) => {
          const shown = formatMemory(bytes);
          if (shown.includes('.')) {
            // Approximate form: one decimal in the largest unit, within 5% of the real size.
            const [, num, unit] = /^(\d+\.\d)([KMGT])$/.exec(shown) ?? [];
            assert.ok(num !== undefined && unit !== undefined, `unexpected format ${shown}`);
            const factor = { K, M, G, T }[unit as 'K' | 'M' | 'G' | 'T'];
            return Math.abs(Number(num) * factor - bytes) <= 0.05 * factor + 1e-9 * bytes;
          }
          const back = parseMemory(shown);
          return back.ok && back.value === bytes;
        },
      ),
    );
  });
});

describe('formatSizeApprox', () => {
  test('the largest unit that fits, one decimal unless whole', () => {
    const K = 1024;
    assert.equal(formatSizeApprox(0), '0');
    assert.equal(formatSizeApprox(1023), '1023');
    assert.equal(formatSizeApprox(8 * K * K), '8M');
    assert.equal(formatSizeApprox(241063936), '229.9M');
    assert.equal(formatSizeApprox(1536), '1.5K');
    assert.equal(formatSizeApprox(79 * K ** 3 + 300 * K ** 2), '79.3G');
  });
});
