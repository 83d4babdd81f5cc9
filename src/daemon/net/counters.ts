/**
 * The kernel's traffic counters folded into the slices' accounts: the nft counters of every
 * slice, and the loopback counters read inside each namespaced slice's namespace.
 */
import type { DesiredState } from '../../core/model.js';
import { netnsName, type NetNames } from '../../core/net.js';
import * as ip from '../../kernel/net/ip.js';
import * as nft from '../../kernel/net/nft.js';
import type { Accounts } from '../accounts.js';

const LOOPBACK_READS_IN_FLIGHT = 8;

export class NetCounters {
  constructor(
    private readonly names: NetNames,
    private readonly accounts: Accounts,
  ) {}

  /**
   * Read the kernel's counters and fold them into the accounts of the slices in `state` and
   * of deleted slices whose accounts are kept; loopback of the namespaced slices.
   */
  async fold(state: DesiredState): Promise<void> {
    const columns = { tx: 'sent', rx: 'received', lotx: 'loopbackSent', lorx: 'loopbackReceived', ctdrop: 'conntrackDropped' } as const;
    for (const c of await nft.readCounters(this.names.table)) {
      const parsed = nft.parseCounterName(c.name);
      if (!parsed || (!state.slices.has(parsed.slice) && !this.accounts.get(parsed.slice))) continue;
      this.accounts.fold(parsed.slice, columns[parsed.column], c.family, { packets: c.packets, bytes: c.bytes }, `${c.family}:${c.handle}`);
    }
    await this.foldLoopbacks([...state.slices.values()].filter((s) => s.net).map((s) => s.name));
  }

  /** Fold the loopback counters of these namespaced slices, a few namespaces read at a time. */
  async foldLoopbacks(slices: readonly string[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < slices.length) {
        const name = slices[next++]!;
        const lo = await ip.readLoopback(netnsName(this.names, name)).catch(() => null);
        if (!lo) continue;
        // Inside its own namespace every loopback packet a slice sends, it also receives.
        this.accounts.fold(name, 'loopbackSent', 'lo', lo, lo.identity);
        this.accounts.fold(name, 'loopbackReceived', 'lo', lo, lo.identity);
      }
    };
    await Promise.all(Array.from({ length: LOOPBACK_READS_IN_FLIGHT }, worker));
  }
}
