/**
 * Rows of per-slice probes (io_usage, mem_usage, psi's slices source) from the host's
 * SliceGroups service (src/framework/handle.ts). Rows are labelled "slice/<name>"; the label
 * array stays the same object while the set of slices is unchanged, so filters such as rate
 * can compare updates.
 */
import type { ComponentContext } from '../../framework/types.js';
import type { SliceGroup, SliceGroups } from '../../framework/handle.js';
import type { Value } from '../../framework/value.js';

/** The service, or null outside the daemon (the probe then publishes no rows). */
export function sliceGroupsOf(ctx: ComponentContext): SliceGroups | null {
  return ctx.services.sliceGroups ?? null;
}

/**
 * Fill `out` with one row per slice from `read`; a slice whose group is being made or
 * removed (read throws) gets zeros for that update rather than failing the probe.
 */
export function fillRows(out: Value, slices: SliceGroups | null, read: (group: SliceGroup, row: number) => void): void {
  if (!slices) {
    out.setRows(0);
    return;
  }
  const { labels, groups } = slices.list();
  out.setRows(labels.length, labels);
  for (let row = 0; row < groups.length; row++) {
    try {
      read(groups[row]!, row);
    } catch {
      for (let c = 0; c < out.width; c++) out.set(row, c, 0);
    }
  }
}
