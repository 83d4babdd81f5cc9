/**
 * Network slots for test daemons. Interface names, nft tables and address pools are global
 * to the machine, and test files run in parallel processes (and a second test run may share
 * the machine): a tag or pool derived from a pid collides sooner or later, and sliced then
 * rightly refuses a pool that another daemon's bridge already uses. A slot is claimed with
 * an exclusively created lock file holding the owner's pid; a slot whose owner is gone is
 * taken over.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processExists } from '../../src/kernel/procfs.js';

/** 10.200.0.0/24 … 10.249.249.0/24: third octets 250-255 stay free for tests' own pools. */
const SLOTS = 50 * 250;
const LOCKS = join(tmpdir(), 'sliced-test-net-slots');

export interface NetSlot {
  tag: string;
  pool4: string;
  pool6: string;
  release(): void;
}

/** Whether an interface address or route of the node already lies in 10.a.b.0/24. */
function inUse(prefix: string): boolean {
  const routes = spawnSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout ?? '';
  return routes.includes(` ${prefix}.`) || routes.startsWith(`${prefix}.`) || routes.includes(`\n${prefix}.`);
}

function tryClaim(slot: number): boolean {
  const lock = join(LOCKS, String(slot));
  for (let attempt = 0; attempt < 3; attempt++) {
    mkdirSync(LOCKS, { recursive: true, mode: 0o700 });
    try {
      const fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // the directory was removed by a release in between
      if (code !== 'EEXIST') throw err;
      let owner = NaN;
      try {
        owner = Number(readFileSync(lock, 'utf8'));
      } catch {
        continue; // released in between: try again
      }
      // An empty file is a claim being written right now; a live owner keeps its slot.
      if (!Number.isInteger(owner) || owner <= 0 || processExists(owner)) return false;
      try {
        unlinkSync(lock);
      } catch {
        // Another process took the stale slot over first.
      }
    }
  }
  return false;
}

/** Claim a slot no other live process holds and whose pool the node does not use. */
export function claimNetSlot(): NetSlot {
  const start = (process.pid * 7919 + Date.now()) % SLOTS;
  for (let i = 0; i < SLOTS; i++) {
    const slot = (start + i) % SLOTS;
    const prefix = `10.${200 + Math.floor(slot / 250)}.${slot % 250}`;
    if (!tryClaim(slot)) continue;
    if (inUse(prefix)) {
      unlinkSync(join(LOCKS, String(slot)));
      continue;
    }
    return {
      tag: `t${slot.toString(36).padStart(3, '0')}`,
      pool4: `${prefix}.0/24`,
      pool6: `fd5c:${slot.toString(16)}::/64`,
      release() {
        try {
          unlinkSync(join(LOCKS, String(slot)));
          rmdirSync(LOCKS);
        } catch {
          // Other slots are still held (ENOTEMPTY), or the lock is already gone.
        }
      },
    };
  }
  throw new Error(`no free test network slot among ${SLOTS} (lock files in ${LOCKS})`);
}
