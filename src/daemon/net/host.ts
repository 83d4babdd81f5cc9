/**
 * The host's side of slice networks: the reserved service addresses on the bridge, and IPv4
 * forwarding while some slice has egress.
 */
import type { Logger } from 'pino';
import type { Store } from '../../cluster/store.js';
import type { DesiredState } from '../../core/model.js';
import * as ip from '../../kernel/net/ip.js';
import { mustRun } from '../../kernel/net/run.js';

const FORWARD_SYSCTL_KEY = '/net/sysctl/net.ipv4.ip_forward';

/** Reserved addresses live on the bridge (so the host answers ARP/ND for them), one per address. */
export async function syncServiceAddresses(
  bridge: string,
  next: DesiredState,
  before?: DesiredState,
  only?: 'add' | 'remove',
): Promise<void> {
  const wanted = new Set([...next.reservations.values()].map((r) => r.address));
  let have: Set<string>;
  if (before) {
    have = new Set([...before.reservations.values()].map((r) => r.address));
  } else {
    const out = await mustRun('ip', ['-j', 'addr', 'show', 'dev', bridge]);
    const infos = (JSON.parse(out) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>)[0]?.addr_info ?? [];
    have = new Set(infos.filter((a) => a.prefixlen === 32 || a.prefixlen === 128).map((a) => a.local));
  }
  const lines: string[] = [];
  if (only !== 'remove')
    for (const address of wanted)
      if (!have.has(address)) lines.push(`addr add ${address}/${address.includes(':') ? '128 nodad' : '32'} dev ${bridge}`);
  if (only !== 'add')
    for (const address of have)
      if (!wanted.has(address)) lines.push(`addr del ${address}/${address.includes(':') ? '128' : '32'} dev ${bridge}`);
  if (lines.length > 0) await mustRun('ip', ['-b', '-'], lines.join('\n'));
}

/** net.ipv4.ip_forward, with the value it had before sliced turned it on kept in the store. */
export class IpForwarding {
  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /**
   * Egress needs IPv4 forwarding on the uplink too (the answers come in there). It is turned
   * on while some slice has egress, and the value it had before is restored afterwards.
   */
  async sync(state: DesiredState): Promise<void> {
    const needed = [...state.slices.values()].some((s) => s.net?.egress);
    const saved = await this.store.get(FORWARD_SYSCTL_KEY);
    if (needed && saved === undefined) {
      const previous = ip.setSysctl('net.ipv4.ip_forward', '1');
      await this.store.txn([{ type: 'put', key: FORWARD_SYSCTL_KEY, value: previous }]);
      this.log.info({ previous }, 'net.ipv4.ip_forward set to 1 for slice egress');
    } else if (!needed && saved !== undefined) {
      await this.restore();
    }
  }

  /** Put back the value saved when forwarding was turned on, if it was. */
  async restore(): Promise<void> {
    const saved = await this.store.get(FORWARD_SYSCTL_KEY);
    if (saved === undefined) return;
    ip.setSysctl('net.ipv4.ip_forward', saved);
    await this.store.txn([{ type: 'delete', key: FORWARD_SYSCTL_KEY }]);
    this.log.info({ value: saved }, 'net.ipv4.ip_forward restored');
  }
}
