/**
 * The fixed part of sliced's two nftables tables (see nft.ts): chains, hooks, maps and sets
 * that every slice's elements go into.
 */
import type { TableConfig } from './nft-names.js';

/**
 * The tables' fixed part, idempotent: created when missing, fixed chains rewritten. Maps and
 * sets are emptied when `reset` (at start, before every element is added again).
 */
export function skeletonLines(c: TableConfig, reset: boolean): string[] {
  const b = `bridge ${c.table}`;
  const i = `inet ${c.table}`;
  const lines = [
    `add table ${b}`,
    `add table ${i}`,
    `add map ${b} sent { type ifname : counter; }`,
    `add map ${b} received { type ifname : counter; }`,
    `add chain ${b} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    `add chain ${b} postrouting { type filter hook postrouting priority 300; policy accept; }`,
    `flush chain ${b} prerouting`,
    `flush chain ${b} postrouting`,
    `add rule ${b} prerouting counter name iifname map @sent`,
    `add rule ${b} postrouting counter name oifname map @received`,
    // Source check (counted as sent above, then dropped). Without it a slice could send
    // IPv6 from any address (IP_FREEBIND needs no privilege) and so escape its conntrack
    // limit, or pass for another slice. Link-local and unspecified sources only for
    // neighbour discovery and MLD, which conntrack does not track.
    `add set ${b} src4 { type ifname . ipv4_addr; }`,
    `add set ${b} src6 { type ifname . ipv6_addr; }`,
    `add rule ${b} prerouting iifname "${c.vethPrefix}*" ether type != { ip, ip6, arp } drop`,
    `add rule ${b} prerouting iifname "${c.vethPrefix}*" ether type ip iifname . ip saddr != @src4 drop`,
    `add rule ${b} prerouting iifname "${c.vethPrefix}*" ether type ip6 iifname . ip6 saddr @src6 accept`,
    `add rule ${b} prerouting iifname "${c.vethPrefix}*" ether type ip6 ip6 saddr { ::, fe80::/10 } icmpv6 type { nd-router-solicit, ` +
      `nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report, mld-listener-done } accept`,
    `add rule ${b} prerouting iifname "${c.vethPrefix}*" ether type ip6 drop`,
    // Host-network counting. Output after DNAT (-100): a packet to a reserved address is
    // routed to lo, then DNATed to a slice; "fib daddr type" then tells where it really goes
    // (oifname stays lo in every output chain). Input after the input hook's NAT (100): the
    // answer of a DNATed connection has the addresses its socket knows only from there on,
    // so before it the socket lookup finds nothing and the answer counted nowhere.
    `add chain ${i} count_out { type filter hook output priority -50; policy accept; }`,
    `add chain ${i} count_in { type filter hook input priority 150; policy accept; }`,
    // Chains of earlier versions (the same counting at priority -300), if any.
    `add chain ${i} output`,
    `flush chain ${i} output`,
    `delete chain ${i} output`,
    `add chain ${i} input`,
    `flush chain ${i} input`,
    `delete chain ${i} input`,
    `add set ${i} egress4 { type ipv4_addr; }`,
    // Conntrack limits: after conntrack (-200), before DNAT (-100). A new connection from a
    // slice (routed, or bridged with br_netfilter) jumps to its slice's chain by source.
    `add map ${i} ctslice4 { type ipv4_addr : verdict; }`,
    `add map ${i} ctslice6 { type ipv6_addr : verdict; }`,
    `add chain ${i} conntrack { type filter hook prerouting priority -150; policy accept; }`,
    `flush chain ${i} conntrack`,
    `add rule ${i} conntrack iifname "${c.bridge}" ct state new ip saddr vmap @ctslice4`,
    `add rule ${i} conntrack iifname "${c.bridge}" ct state new ip6 saddr vmap @ctslice6`,
    `add map ${i} fwd4 { typeof meta l4proto . ip daddr . th dport : ip daddr; }`,
    `add map ${i} fwd6 { typeof meta l4proto . ip6 daddr . th dport : ip6 daddr; }`,
    // Forwarding policy for the slices' range; other traffic of the host is not touched.
    `add chain ${i} forward { type filter hook forward priority 0; policy accept; }`,
    `flush chain ${i} forward`,
    `add rule ${i} forward iifname "${c.bridge}" oifname "${c.bridge}" accept`,
    `add rule ${i} forward iifname "${c.bridge}" ip saddr @egress4 accept`,
    `add rule ${i} forward iifname "${c.bridge}" drop`,
    `add rule ${i} forward oifname "${c.bridge}" ct state established,related accept`,
    `add rule ${i} forward oifname "${c.bridge}" ct status dnat accept`,
    `add rule ${i} forward oifname "${c.bridge}" drop`,
    `add chain ${i} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ${i} output_nat { type nat hook output priority -100; policy accept; }`,
    `add chain ${i} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `flush chain ${i} prerouting`,
    `flush chain ${i} output_nat`,
    `flush chain ${i} postrouting`,
  ];
  for (const chain of ['prerouting', 'output_nat']) {
    lines.push(
      `add rule ${i} ${chain} dnat ip to meta l4proto . ip daddr . th dport map @fwd4`,
      `add rule ${i} ${chain} dnat ip6 to meta l4proto . ip6 daddr . th dport map @fwd6`,
    );
  }
  // A slice reaching another slice's reserved port through the host: the answer must come
  // back through the host too (not straight across the bridge), so the source becomes the gateway.
  lines.push(
    `add rule ${i} postrouting oifname "${c.bridge}" ct status dnat ip saddr ${c.pool4} masquerade`,
    `add rule ${i} postrouting oifname "${c.bridge}" ct status dnat ip6 saddr ${c.pool6} masquerade`,
    `add rule ${i} postrouting oifname != "${c.bridge}" ip saddr @egress4 masquerade`,
  );
  if (reset) {
    lines.push(
      `flush map ${b} sent`,
      `flush map ${b} received`,
      `flush set ${b} src4`,
      `flush set ${b} src6`,
      `flush set ${i} egress4`,
      `flush map ${i} fwd4`,
      `flush map ${i} fwd6`,
    );
    lines.push(`flush map ${i} ctslice4`, `flush map ${i} ctslice6`);
  }
  return lines;
}
