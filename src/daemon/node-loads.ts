/**
 * Each member's load, for the cluster's views (GET /v1/nodes, `slicectl node list`,
 * /nodes/<node>/slices_load, the dashboard's cluster page): every agent publishes what its
 * slices use and have reserved as a remote value (cluster/remote-values.ts, under its
 * membership lease, so a node that goes down takes its figure with it) every LOAD_PERIOD_MS,
 * and keeps the others' last figures. This node's own figure is read fresh.
 */
import type { RemoteValues } from '../cluster/remote-values.js';
import type { NodeLoad } from '../wire/nodes.js';

/** How often a node's figure is published (and the others' read into the cache). */
export const LOAD_PERIOD_MS = 5000;

/** The remote value's key: a path no tree component can have (/nodes is a read-only view). */
const LOAD_KEY = '/nodes/load';

export class NodeLoads {
  private readonly others = new Map<string, NodeLoad>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly remote: RemoteValues,
    /** This node's figure now. */
    private readonly own: () => NodeLoad,
    private readonly log: { warn(details: object, message: string): void },
  ) {
    this.timer = setInterval(() => void this.exchange(), LOAD_PERIOD_MS);
    this.timer.unref();
    void this.exchange();
  }

  /** The node's last figure; null for a node that published none (down, or an older agent). */
  of(node: string): NodeLoad | null {
    return node === this.remote.nodeName ? this.own() : (this.others.get(node) ?? null);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  private async exchange(): Promise<void> {
    try {
      const mine = this.own();
      await this.remote.publish(LOAD_KEY, [], [mine.slicesCpuMillicores, mine.reservedMillicores]);
      const rows = await this.remote.fetch(LOAD_KEY);
      if (this.closed) return;
      this.others.clear();
      for (const { node, data } of rows) {
        const [used, reserved] = data;
        if (Number.isFinite(used) && Number.isFinite(reserved))
          this.others.set(node, { slicesCpuMillicores: used!, reservedMillicores: reserved! });
      }
    } catch (err) {
      if (!this.closed) this.log.warn({ err: (err as Error).message }, 'node loads: cannot publish or read them; trying again');
    }
  }
}
