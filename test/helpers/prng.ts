/**
 * Seeded randomness for fuzz tests: a failure replays with the same seed. The seed comes
 * from SLICED_FUZZ_SEED when set (a whole number from 0 to 4294967295), else a fresh one;
 * it is printed before the test uses it.
 */
export { prng } from '../../src/core/prng.js';

/** The seed given in SLICED_FUZZ_SEED, or null when it is unset; a malformed one is an error. */
export function givenFuzzSeed(env: NodeJS.ProcessEnv = process.env): number | null {
  const text = env.SLICED_FUZZ_SEED;
  if (text === undefined || text === '') return null;
  if (!/^\d{1,10}$/.test(text) || Number(text) > 0xffffffff) {
    throw new Error(`SLICED_FUZZ_SEED ${JSON.stringify(text)} must be a whole number from 0 to 4294967295`);
  }
  return Number(text);
}

/** The seed for a fuzz test (given or fresh), printed with how to replay it. */
export function fuzzSeed(what: string): number {
  const seed = givenFuzzSeed() ?? Math.floor(Math.random() * 0x100000000);
  process.stderr.write(`${what}: seed ${seed} (replay with SLICED_FUZZ_SEED=${seed})\n`);
  return seed;
}
