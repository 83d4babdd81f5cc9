/**
 * remote_cache: the value of this node followed by the same value on the other nodes, which
 * are prefetched every `prefetch_period_ms` and cached, so an update never waits for the
 * network. Local rows come first; remote rows are labelled "<node>" (single-row values) or
 * "<node>:<label>". The local value is published for the other nodes on the same timer.
 */
import { Value } from '../../framework/value.js';
import { numberAttribute, type ComponentContext, type FilterBehaviour, type FilterType } from '../../framework/types.js';
import type { RemoteValues } from '../../framework/handle.js';

class RemoteCache implements FilterBehaviour {
  private readonly remote: RemoteValues | undefined;
  private readonly cache: Value;
  /** The newest input, by reference: copied for publishing on the timer, not per update. */
  private latest: Value | null = null;
  private combinedLabels: readonly string[] = [];
  private combinedFrom: [readonly string[], readonly string[]] | null = null;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(
    private readonly ctx: ComponentContext,
    private readonly periodMs: () => number,
  ) {
    // Alone (no remote service) it passes the local value as it is.
    this.remote = ctx.services.remote;
    this.cache = new Value(ctx.valueType!);
    this.configure();
  }

  update(input: Value, output: Value): boolean {
    this.latest = input;
    const cache = this.cache;
    if (cache.rows === 0) {
      // Alone (or nothing fetched yet): the local value as it is.
      output.copyFrom(input);
      return true;
    }
    if (this.combinedFrom === null || this.combinedFrom[0] !== input.labels || this.combinedFrom[1] !== cache.labels) {
      // Rows changed (a node or a label came or went): rebuild the label list once.
      const nodeName = this.remote?.nodeName ?? 'local';
      const local = input.labels.length > 0 ? input.labels : Array.from({ length: input.rows }, () => nodeName);
      this.combinedLabels = [...local, ...cache.labels];
      this.combinedFrom = [input.labels, cache.labels];
    }
    output.setRows(input.rows + cache.rows, this.combinedLabels);
    const out = output.data;
    const localCells = input.rows * input.width;
    for (let i = 0; i < localCells; i++) out[i] = input.data[i]!;
    const remoteCells = cache.rows * cache.width;
    for (let i = 0; i < remoteCells; i++) out[localCells + i] = cache.data[i]!;
    return true;
  }

  /** After a fetch brought other figures: the local value with them, sent on without waiting for a local update. */
  produce(output: Value): boolean {
    return this.latest !== null && this.cache.rows > 0 && this.update(this.latest, output);
  }

  configure(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!this.remote) return;
    this.timer = setInterval(() => void this.prefetch(), this.periodMs());
    this.timer.unref();
  }

  destroy(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Publish this node's value and fetch the others' (off the update path). */
  async prefetch(): Promise<void> {
    const remote = this.remote;
    if (!remote || this.busy) return;
    this.busy = true;
    const width = this.cache.width;
    try {
      const latest = this.latest;
      if (latest && latest.rows > 0)
        await remote.publish(this.ctx.path, latest.labels, Array.from(latest.data.subarray(0, latest.rows * width)));
      const labels: string[] = [];
      const cells: number[] = [];
      for (const r of await remote.fetch(this.ctx.path)) {
        const count = Math.max(1, r.labels.length);
        for (let i = 0; i < count; i++) {
          labels.push(r.labels.length === 0 ? r.node : `${r.node}:${r.labels[i]}`);
          for (let c = 0; c < width; c++) cells.push(r.data[i * width + c] ?? 0);
        }
      }
      const changed =
        labels.length !== this.cache.rows ||
        labels.some((l, i) => l !== this.cache.labels[i]) ||
        cells.some((c, i) => c !== this.cache.data[i]);
      this.cache.setRows(labels.length, labels);
      this.cache.data.set(cells);
      // The policy sees the other nodes' new figures at once, not at the next local update.
      if (changed) this.ctx.republish?.();
    } catch (err) {
      this.ctx.log.warn({ filter: this.ctx.path, err: (err as Error).message }, 'remote_cache prefetch failed; serving the cached values');
    } finally {
      this.busy = false;
    }
  }
}

const remoteCache: FilterType = {
  kind: 'filter',
  name: 'remote_cache',
  description: "this node's value followed by the other nodes' values, prefetched and cached",
  attributes: [
    numberAttribute('prefetch_period_ms', "how often the other nodes' values are fetched and this node's published", {
      default: 2000,
      min: 100,
      max: 3_600_000,
      integer: true,
    }),
  ],
  create: (ctx) => new RemoteCache(ctx, () => ctx.attrs.prefetch_period_ms as number),
};

/** Kerrighed's polling_period 0: poll once an hour. */
const KERRIGHED_IDLE_POLL_MS = 3_600_000;
/** The store is not polled faster than this, whatever polling_period says. */
const MIN_POLL_MS = 100;

/** Kerrighed's name and attribute for the same filter: `polling_period` in ms, 0 meaning once an hour. */
export const remoteCacheFilter: FilterType = {
  kind: 'filter',
  name: 'remote_cache_filter',
  description: "Kerrighed's remote_cache_filter: this node's value followed by the other nodes', polled every `polling_period` ms",
  attributes: [
    numberAttribute('polling_period', "how often the other nodes' values are fetched, ms (0: once an hour; at least 100)", {
      default: 0,
      min: 0,
      max: 3_600_000,
      integer: true,
    }),
  ],
  create: (ctx) =>
    new RemoteCache(ctx, () => {
      const period = ctx.attrs.polling_period as number;
      return period === 0 ? KERRIGHED_IDLE_POLL_MS : Math.max(MIN_POLL_MS, period);
    }),
};

export default remoteCache;
