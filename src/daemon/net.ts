/**
 * Slice networks on this node: makes the kernel's namespaces, links, nftables objects and
 * tc classes match the desired state, and folds the kernel's counters into the accounts.
 * The agent calls `beforeGroups` (removals, while the old cgroups still exist, because nft
 * resolves cgroup paths) and `afterGroups` (additions, once the new cgroups exist) around
 * its own group changes, inside the same serialised commit. Its parts (src/daemon/net/): the
 * kernel objects a state wants (objects.ts), the counters folded into accounts (counters.ts),
 * and the host side, service addresses and IPv4 forwarding (host.ts).
 */
import type { Logger } from 'pino';
import type { Store } from '../cluster/store.js';
import type { CgroupBackend } from '../kernel/cgroup/backend.js';
import type { DesiredState, SliceSpec } from '../core/model.js';
import { affectedIds, parseKey } from '../core/layout.js';
import {
  checkPoolsFree,
  checkPrivatePool,
  gateway,
  netNames,
  netnsName,
  sliceAddresses,
  vethName,
  type NetNames,
  type NetPool,
} from '../core/net.js';
import type { NodeCapacity } from '../core/admission.js';
import * as ip from '../kernel/net/ip.js';
import * as nft from '../kernel/net/nft.js';
import * as tc from '../kernel/net/tc.js';
import { NftQueue } from '../kernel/net/nft-queue.js';
import { Accounts } from './accounts.js';
import { NetCounters } from './net/counters.js';
import { IpForwarding, syncServiceAddresses } from './net/host.js';
import { NetObjects } from './net/objects.js';

export interface NetSettings {
  tag: string;
  pool: NetPool;
  /** Node network capacity in bit/s (HTB root). */
  capacity: number;
  /** Conntrack entries each namespaced slice's new connections may hold, or null for no limit. */
  conntrackMax: number | null;
}

export interface NetContext {
  backend: CgroupBackend;
  store: Store;
  log: Logger;
  /** uid and gid of a slice's user, for its tun device. */
  userOf(slice: SliceSpec): { uid: number; gid: number } | null;
}

/** Stale host map elements tolerated before a sweep, at least (see staleHost). */
const STALE_HOST_MIN = 256;

export class SliceNetworks {
  readonly names: NetNames;
  readonly accounts: Accounts;
  private readonly table: nft.TableConfig;
  /** Cgroup level of each host-network slice's group, for the per-level lookup rules. */
  private readonly levels = new Map<string, number>();
  /** The levels the lookup rules were last written for. */
  private levelsWritten = new Set<number>();
  private readonly objects: NetObjects;
  private readonly forwarding: IpForwarding;
  private readonly counters: NetCounters;
  private readonly queue: NftQueue;
  /**
   * Host-network slices whose map elements were left behind when their group went (see
   * beforeGroups); the maps are rebuilt when there are more of them than live ones.
   */
  private staleHost = 0;

  constructor(
    readonly settings: NetSettings,
    private readonly ctx: NetContext,
  ) {
    this.names = netNames(settings.tag);
    this.accounts = new Accounts(ctx.store);
    this.table = {
      table: this.names.table,
      bridge: this.names.bridge,
      vethPrefix: this.names.vethPrefix,
      pool4: settings.pool.v4.text,
      pool6: settings.pool.v6.text,
    };
    this.objects = new NetObjects(settings, this.names, ctx);
    this.forwarding = new IpForwarding(ctx.store, ctx.log);
    this.counters = new NetCounters(this.names, this.accounts);
    this.queue = new NftQueue(ctx.log);
  }

  /** Path of the slice's network namespace, or null when it uses the host's network. */
  netnsPath(spec: SliceSpec): string | null {
    return spec.net ? ip.netnsPath(netnsName(this.names, spec.name)) : null;
  }

  vethOf(spec: SliceSpec): string | null {
    return spec.net ? vethName(this.names, spec.net.index) : null;
  }

  addresses(spec: SliceSpec): { v4: string; v6: string } | null {
    return spec.net ? sliceAddresses(this.settings.pool, spec.net.index) : null;
  }

  // ---- start, changes, teardown -------------------------------------------------------------

  /** Adopt what exists, create what is missing, remove what no slice owns. */
  async start(state: DesiredState): Promise<void> {
    await this.accounts.load();
    const { pool } = this.settings;
    await ip.ensureBridge({
      name: this.names.bridge,
      v4: `${gateway(pool.v4)}/${pool.v4.prefix}`,
      v6: `${gateway(pool.v6)}/${pool.v6.prefix}`,
    });
    await tc.ensureShaper(this.names.ifb, this.settings.capacity);

    const records = [...state.slices.values()].map((spec) => this.objects.record(state, spec));
    const wantedNetns = new Set(records.flatMap((r) => (r.namespaced ? [r.namespaced.netns] : [])));
    const wantedVeths = new Set(records.flatMap((r) => (r.namespaced ? [r.namespaced.veth] : [])));
    // Counts first, so that nothing counted before this start is lost when objects go.
    await this.foldCounters(state);
    for (const veth of ip.listLinks(this.names.vethPrefix)) if (!wantedVeths.has(veth)) await ip.deleteLink(veth);
    for (const netns of ip.listNetns(this.names.netnsPrefix)) {
      if (!wantedNetns.has(netns)) await ip.removeSliceNet(netns, null);
    }
    const wantedClasses = new Set<number>();
    for (const spec of state.slices.values()) {
      if (!spec.net) continue;
      await ip.ensureSliceNet(this.objects.link(spec));
      await tc.applySliceRate(this.names.ifb, this.settings.capacity, this.objects.rate(spec), false);
      wantedClasses.add(tc.classMinorFor(spec.net.index));
    }
    for (const minor of await tc.listClasses(this.names.ifb)) {
      if (!wantedClasses.has(minor)) await tc.removeSliceRate(this.names.ifb, minor);
    }

    const existing = await nft.readCounters(this.names.table);
    const conntrack = await nft.readConntrackLimits(this.names.table);
    const rules: nft.NetRules = { namespaced: [], host: [], forwards: [], egress4: [] };
    this.levels.clear();
    for (const r of records) {
      if (r.namespaced) rules.namespaced.push(r.namespaced);
      if (r.host) {
        rules.host.push(r.host);
        this.levels.set(r.host.slice, r.host.level);
      }
    }
    for (const spec of state.slices.values()) {
      const e = this.objects.egress(spec);
      if (e) rules.egress4.push(e);
    }
    for (const r of state.reservations.values()) {
      const f = this.objects.forward(state, r);
      if (f) rules.forwards.push(f);
    }
    // Host maps are emptied too: elements of groups removed before this start are swept.
    const hostMaps = await nft.hostMaps(this.names.table);
    // Conntrack chains with the right rule keep counting the connections they hold; those of
    // no slice (or with another limit) go or are rewritten, once the skeleton emptied the maps.
    const limits = new Map(rules.namespaced.flatMap((n) => (n.conntrackMax !== null ? [[n.slice, n.conntrackMax] as const] : [])));
    const keep = new Set([...conntrack].flatMap(([slice, max]) => (max !== null && limits.get(slice) === max ? [slice] : [])));
    const lines = [
      ...nft.skeletonLines(this.table, true),
      ...[...conntrack.keys()].filter((slice) => !limits.has(slice)).flatMap((slice) => nft.deleteConntrackChainLines(this.table, slice)),
      ...nft.flushHostMapLines(this.table, hostMaps),
      ...this.levelLines(),
      ...nft.addLines(this.table, rules, keep),
    ];
    this.staleHost = 0;
    // Counters of no slice and no kept account go, after the maps that referenced them were
    // emptied (same transaction); a deleted slice's stay until its account is removed.
    const owned = (c: nft.CounterReading): boolean => {
      const slice = nft.parseCounterName(c.name)?.slice;
      return slice !== undefined && (state.slices.has(slice) || this.accounts.get(slice) !== undefined);
    };
    lines.push(
      ...nft.deleteCounterLines(
        this.names.table,
        existing.filter((c) => !owned(c)),
      ),
    );
    await nft.runScript(lines);
    await syncServiceAddresses(this.names.bridge, state);
    await this.forwarding.sync(state);
    for (const account of this.accounts.all()) this.accounts.setDeleted(account.slice, !state.slices.has(account.slice));
    await this.accounts.flush();
    this.ctx.log.info(
      {
        bridge: this.names.bridge,
        table: this.names.table,
        namespaced: rules.namespaced.length,
        host: rules.host.length,
        reservations: rules.forwards.length,
      },
      'slice networks reconciled',
    );
  }

  private levelLines(): string[] {
    this.levelsWritten = new Set(this.levels.values());
    return nft.levelLines(this.table, [...this.levelsWritten]);
  }

  private changedSlices(before: DesiredState, next: DesiredState): string[] {
    return [...affectedIds(before, next)].flatMap((id) => {
      const key = parseKey(id);
      return key?.kind === 'slice' ? [key.name] : [];
    });
  }

  /**
   * Every counting object of the changes made so far is in the kernel. Called before a
   * process can run in a slice (exec, attach), before removals and at stop.
   */
  settle(): Promise<void> {
    return this.queue.flush();
  }

  /** Remove what `next` no longer has (old cgroups still exist here). */
  async beforeGroups(before: DesiredState, next: DesiredState): Promise<void> {
    const gone: nft.NetRules = { namespaced: [], host: [], forwards: [], egress4: [] };
    const removedNets: Array<{ netns: string; veth: string; index: number }> = [];
    const changed = this.changedSlices(before, next);
    const loopbacks: string[] = [];
    for (const name of changed) {
      const b = this.objects.record(before, before.slices.get(name));
      const n = this.objects.record(next, next.slices.get(name));
      if (b.namespaced && JSON.stringify(b.namespaced) !== JSON.stringify(n.namespaced)) {
        gone.namespaced.push(b.namespaced);
        removedNets.push(b.namespaced);
        loopbacks.push(name);
      }
      if (b.host && JSON.stringify(b.host) !== JSON.stringify(n.host)) gone.host.push(b.host);
      const eb = this.objects.egress(before.slices.get(name));
      if (eb && eb !== this.objects.egress(next.slices.get(name))) gone.egress4.push(eb);
    }
    for (const [key, r] of before.reservations) {
      const f = this.objects.forward(before, r);
      if (
        f &&
        JSON.stringify(f) !== JSON.stringify(next.reservations.has(key) ? this.objects.forward(next, next.reservations.get(key)!) : null)
      )
        gone.forwards.push(f);
    }
    // Deletions need the objects written behind, and nft needs the old groups to resolve them.
    if (gone.namespaced.length + gone.forwards.length + gone.egress4.length > 0) await this.settle();
    // The namespace's lo goes with it: its last reading first. (nft counters stay; see deleteLines.)
    await this.counters.foldLoopbacks(loopbacks);
    // A deleted slice keeps an account (even an empty one): it owns its counters until removed.
    for (const name of changed) if (!next.slices.has(name)) this.accounts.setDeleted(name, true);
    await this.accounts.flush();
    for (const s of gone.host) this.levels.delete(s.slice);
    // A host slice's map elements are keyed by its group's id, which the kernel never gives
    // to another group: once the group is gone they match nothing. Deleting them costs a
    // transaction that waits ~20 ms in the kernel, so they are left and swept in bulk later.
    this.staleHost += gone.host.length;
    await nft.runDeletions(nft.deleteLines(this.table, gone));
    for (const net of removedNets) {
      await ip.removeSliceNet(net.netns, net.veth);
      await tc.removeSliceRate(this.names.ifb, tc.classMinorFor(net.index));
    }
    await syncServiceAddresses(this.names.bridge, next, before, 'remove');
  }

  /** Create and change what `next` adds (new cgroups exist here). */
  async afterGroups(before: DesiredState, next: DesiredState): Promise<void> {
    const added: nft.NetRules = { namespaced: [], host: [], forwards: [], egress4: [] };
    for (const name of this.changedSlices(before, next)) {
      const spec = next.slices.get(name);
      const b = this.objects.record(before, before.slices.get(name));
      const n = this.objects.record(next, spec);
      if (spec?.net) {
        const old = before.slices.get(name)?.net;
        const fresh = JSON.stringify(b.namespaced) !== JSON.stringify(n.namespaced);
        if (fresh || old?.tun !== spec.net.tun) await ip.ensureSliceNet(this.objects.link(spec));
        if (fresh) await tc.applySliceRate(this.names.ifb, this.settings.capacity, this.objects.rate(spec), true);
        else if (old?.minRate !== spec.net.minRate || old?.maxRate !== spec.net.maxRate)
          await tc.changeSliceRate(this.names.ifb, this.settings.capacity, this.objects.rate(spec));
        if (fresh) added.namespaced.push(n.namespaced!);
      }
      if (n.host && JSON.stringify(b.host) !== JSON.stringify(n.host)) {
        added.host.push(n.host);
        this.levels.set(name, n.host.level);
      }
      const en = this.objects.egress(spec);
      if (en && en !== this.objects.egress(before.slices.get(name))) added.egress4.push(en);
      if (spec && this.accounts.get(name)?.deleted) this.accounts.setDeleted(name, false);
    }
    for (const [key, r] of next.reservations) {
      const f = this.objects.forward(next, r);
      if (
        f &&
        JSON.stringify(f) !==
          JSON.stringify(before.reservations.has(key) ? this.objects.forward(before, before.reservations.get(key)!) : null)
      )
        added.forwards.push(f);
    }
    // Reserved ports take effect before the change is acknowledged; counting objects are
    // written behind, batched with the next changes (see settle()).
    await nft.runScript(nft.addLines(this.table, { namespaced: [], host: [], forwards: added.forwards, egress4: added.egress4 }));
    const counting = nft.addLines(this.table, { ...added, forwards: [], egress4: [] });
    const levelsNow = new Set(this.levels.values());
    if (levelsNow.size !== this.levelsWritten.size || [...levelsNow].some((l) => !this.levelsWritten.has(l)))
      counting.push(...this.levelLines());
    this.queue.add(counting);
    if (this.staleHost > Math.max(STALE_HOST_MIN, this.levels.size)) await this.sweepHostMaps(next);
    await syncServiceAddresses(this.names.bridge, next, before, 'add');
    await this.forwarding.sync(next);
    await this.accounts.flush();
  }

  /** Remove every namespace, link, table and tc object of this daemon's tag. */
  async teardown(state: DesiredState): Promise<void> {
    await this.settle();
    await this.accounts.load();
    await this.foldCounters(state);
    await this.accounts.flush();
    // Links first: deleting a namespace takes its veth pair with it, asynchronously.
    for (const veth of ip.listLinks(this.names.vethPrefix)) await ip.deleteLink(veth);
    for (const netns of ip.listNetns(this.names.netnsPrefix)) await ip.removeSliceNet(netns, null);
    await nft.deleteTables(this.names.table);
    await ip.deleteLink(this.names.ifb);
    await ip.deleteLink(this.names.bridge);
    await this.forwarding.restore();
  }

  // ---- accounting --------------------------------------------------------------------------

  /**
   * Read the kernel's counters and fold them into the accounts of the slices in `state` and
   * of deleted slices whose accounts are kept; loopback of the namespaced slices.
   */
  foldCounters(state: DesiredState): Promise<void> {
    return this.counters.fold(state);
  }

  /**
   * Rebuild the host slices' maps with the elements of `state` only, in one transaction
   * (counting goes on throughout): drops the elements of groups that are gone. Every group
   * of `state` must exist.
   */
  private async sweepHostMaps(state: DesiredState): Promise<void> {
    await this.settle();
    const host = [...state.slices.values()].flatMap((spec) => this.objects.record(state, spec).host ?? []);
    const maps = await nft.hostMaps(this.names.table);
    await nft.runScript([
      ...nft.flushHostMapLines(this.table, maps),
      ...nft.addLines(this.table, { namespaced: [], host, forwards: [], egress4: [] }),
    ]);
    this.ctx.log.debug({ swept: this.staleHost, kept: host.length }, 'stale host-network map elements removed');
    this.staleHost = 0;
  }

  /**
   * Drop a deleted slice's counts: its account and its counters in the kernel. Called between
   * the agent's changes (agent.betweenChanges: every group of `state` exists).
   */
  async removeAccount(slice: string, state: DesiredState): Promise<void> {
    // Stale map elements may still refer to the counters, and nft refuses to delete those.
    if (this.staleHost > 0) await this.sweepHostMaps(state);
    await this.accounts.remove(slice);
    const counters = (await nft.readCounters(this.names.table)).filter((c) => nft.parseCounterName(c.name)?.slice === slice);
    await nft.runDeletions(nft.deleteCounterLines(this.names.table, counters));
  }

  /** Fold every slice's counters and make the accounts durable (periodically and at stop). */
  async refresh(state: DesiredState): Promise<void> {
    await this.settle();
    await this.foldCounters(state);
    await this.accounts.flush();
  }
}

/**
 * Refuse pools that are not private or that overlap an address or route of the node (this
 * daemon's own bridge aside), before anything is made. Reads the kernel only. (Not part of
 * nodeCapacity: `--cleanup` must work whatever pool an older version accepted.)
 */
export async function checkNetPools(config: { net: boolean; netTag: string }, node: NodeCapacity): Promise<void> {
  if (!config.net || !node.net) return;
  checkPrivatePool(node.net.pool.v4, 'config: netPool4');
  checkPrivatePool(node.net.pool.v6, 'config: netPool6');
  checkPoolsFree(node.net.pool, await ip.hostNetworks(), netNames(config.netTag).bridge);
}

/** The node's slice networks as configured, or null when networking is off. */
export function createNetworks(
  config: { net: boolean; netTag: string; netConntrackMax: number | 'none' },
  node: NodeCapacity,
  ctx: NetContext,
): SliceNetworks | null {
  if (!config.net || !node.net) return null;
  const conntrackMax = config.netConntrackMax === 'none' ? null : config.netConntrackMax;
  return new SliceNetworks({ tag: config.netTag, pool: node.net.pool, capacity: node.net.capacity, conntrackMax }, ctx);
}
