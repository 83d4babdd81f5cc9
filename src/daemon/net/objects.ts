/**
 * What the kernel should hold for the slice networks of a desired state, one slice (or
 * reservation) at a time: a namespaced slice's namespace, veth, addresses and counters, its
 * link and HTB class; a host-network slice's cgroup counters; the egress address; the port
 * forward of a reservation. SliceNetworks compares them between two states to find changes.
 */
import { relative } from 'node:path';
import type { CgroupBackend } from '../../kernel/cgroup/backend.js';
import { readMounts } from '../../kernel/procfs.js';
import type { DesiredState, SliceSpec } from '../../core/model.js';
import { sliceGroup } from '../../core/layout.js';
import {
  gateway,
  netnsName,
  parseAddress,
  sliceAddresses,
  vethName,
  type NetNames,
  type NetPool,
  type Reservation,
} from '../../core/net.js';
import type * as ip from '../../kernel/net/ip.js';
import type * as nft from '../../kernel/net/nft.js';
import * as tc from '../../kernel/net/tc.js';

/** What the kernel holds for one slice, compared between two states to find changes. */
export interface SliceRecord {
  namespaced: (nft.NamespacedCounters & { netns: string; index: number }) | null;
  host: nft.HostCounters | null;
}

export interface NetObjectsContext {
  backend: CgroupBackend;
  /** uid and gid of a slice's user, for its tun device. */
  userOf(slice: SliceSpec): { uid: number; gid: number } | null;
}

export class NetObjects {
  private readonly cgroup2Mount: string | null;

  constructor(
    private readonly settings: { pool: NetPool; conntrackMax: number | null },
    private readonly names: NetNames,
    private readonly ctx: NetObjectsContext,
  ) {
    this.cgroup2Mount = readMounts().find((m) => m.fsType === 'cgroup2')?.mountPoint ?? null;
  }

  /** The slice's counting objects: namespaced or host-network (none without cgroup2). */
  record(state: DesiredState, spec: SliceSpec | undefined): SliceRecord {
    if (!spec) return { namespaced: null, host: null };
    if (spec.net) {
      const { v4, v6 } = sliceAddresses(this.settings.pool, spec.net.index);
      const veth = vethName(this.names, spec.net.index);
      return {
        namespaced: {
          slice: spec.name,
          veth,
          v4,
          v6,
          conntrackMax: this.settings.conntrackMax,
          netns: netnsName(this.names, spec.name),
          index: spec.net.index,
        },
        host: null,
      };
    }
    const unified = this.ctx.backend.rootDirectories().unified;
    if (!unified || !this.cgroup2Mount) return { namespaced: null, host: null }; // no cgroup2: host-network slices are not accounted
    const dir = `${unified}/${sliceGroup(state, spec.name).join('/')}`;
    return {
      namespaced: null,
      host: { slice: spec.name, cgroupPath: relative('/sys/fs/cgroup', dir), level: relative(this.cgroup2Mount, dir).split('/').length },
    };
  }

  /** The port forward of a reservation, or null when its slice has no network of its own. */
  forward(state: DesiredState, r: Reservation): nft.PortForward | null {
    const spec = state.slices.get(r.slice);
    if (!spec?.net) return null;
    const family = parseAddress(r.address)!.family;
    const target = sliceAddresses(this.settings.pool, spec.net.index);
    return { family, address: r.address, protocol: r.protocol, port: r.port, target: family === 4 ? target.v4 : target.v6 };
  }

  /** The IPv4 address NATed for the slice's egress, or null. */
  egress(spec: SliceSpec | undefined): string | null {
    return spec?.net?.egress ? sliceAddresses(this.settings.pool, spec.net.index).v4 : null;
  }

  /** Namespace, veth pair, addresses and tun of a namespaced slice. */
  link(spec: SliceSpec): ip.SliceLink {
    const { v4, v6 } = sliceAddresses(this.settings.pool, spec.net!.index);
    const pool = this.settings.pool;
    return {
      netns: netnsName(this.names, spec.name),
      veth: vethName(this.names, spec.net!.index),
      bridge: this.names.bridge,
      v4: `${v4}/${pool.v4.prefix}`,
      v6: `${v6}/${pool.v6.prefix}`,
      gateway4: gateway(pool.v4),
      gateway6: gateway(pool.v6),
      tun: spec.net!.tun ? this.ctx.userOf(spec) : null,
    };
  }

  /** The HTB class of a namespaced slice. */
  rate(spec: SliceSpec): tc.SliceRate {
    const { v4, v6 } = sliceAddresses(this.settings.pool, spec.net!.index);
    return {
      veth: vethName(this.names, spec.net!.index),
      v4,
      v6,
      classMinor: tc.classMinorFor(spec.net!.index),
      minRate: spec.net!.minRate,
      maxRate: spec.net!.maxRate,
    };
  }
}
