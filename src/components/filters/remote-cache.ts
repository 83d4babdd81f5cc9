/**
 * remote_cache: the value of this node followed by the same value on the other nodes, which
 * are prefetched every `prefetch_period_ms` and cached, so an update never waits for the
 * network. Local rows come first; remote rows are labelled "<node>" (single-row values) or
 * "<node>:<label>". The local value is published for the other nodes on the same timer.
 */
import { Value } from '../../framework/value.js';
import { numberAttribute, type FilterType } from '../../framework/types.js';
import type { RemoteValues } from '../../cluster/remote-values.js';

const remoteCache: FilterType = {
  kind: 'filter',
  name: 'remote_cache',
  description: 'this node\'s value followed by the other nodes\' values, prefetched and cached',
  attributes: [numberAttribute('prefetch_period_ms', 'how often the other nodes\' values are fetched and this node\'s published', { default: 2000, min: 100, max: 3_600_000, integer: true })],
  create(ctx) {
    const remote = ctx.services.remote as RemoteValues | undefined;
    const valueType = ctx.valueType!;
    const cache = new Value(valueType);
    const latest = new Value(valueType);
    let combinedLabels: readonly string[] = [];
    let combinedFrom: [readonly string[], readonly string[]] | null = null;
    let timer: NodeJS.Timeout | null = null;
    let busy = false;

    const prefetch = async (): Promise<void> => {
      if (!remote || busy) return;
      busy = true;
      try {
        if (latest.rows > 0) await remote.publish(ctx.path, latest.labels, latest.data.subarray(0, latest.rows * latest.width));
        const rows = await remote.fetch(ctx.path);
        const labels: string[] = [];
        const cells: number[] = [];
        for (const r of rows) {
          const count = Math.max(1, r.labels.length);
          for (let i = 0; i < count; i++) {
            labels.push(r.labels.length === 0 ? r.node : `${r.node}:${r.labels[i]}`);
            for (let c = 0; c < valueType.columns.length; c++) cells.push(r.data[i * valueType.columns.length + c] ?? 0);
          }
        }
        cache.setRows(labels.length, labels);
        cache.data.set(cells);
      } catch (err) {
        ctx.log.warn({ filter: ctx.path, err: (err as Error).message }, 'remote_cache prefetch failed; serving the cached values');
      } finally {
        busy = false;
      }
    };
    const schedule = (): void => {
      if (timer) clearInterval(timer);
      if (!remote) return;
      timer = setInterval(() => void prefetch(), ctx.attrs.prefetch_period_ms as number);
      timer.unref();
    };
    schedule();

    return {
      update(input, output) {
        latest.copyFrom(input);
        const rows = input.rows + cache.rows;
        if (!combinedFrom || combinedFrom[0] !== input.labels || combinedFrom[1] !== cache.labels) {
          // Rows changed (a node or a label came or went): rebuild the label list once.
          const local = input.labels.length > 0 || cache.rows === 0 ? input.labels : Array.from({ length: input.rows }, () => remote?.nodeName ?? 'local');
          combinedLabels = cache.rows === 0 ? input.labels : [...local, ...cache.labels];
          combinedFrom = [input.labels, cache.labels];
        }
        output.setRows(rows, combinedLabels);
        output.data.set(input.data.subarray(0, input.rows * input.width));
        if (cache.rows > 0) output.data.set(cache.data.subarray(0, cache.rows * cache.width), input.rows * input.width);
        return true;
      },
      configure: schedule,
      destroy() {
        if (timer) clearInterval(timer);
        timer = null;
      },
    };
  },
};

export default remoteCache;
