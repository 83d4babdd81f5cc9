/**
 * What sliced's nftables objects are called, shared by the scripts that make them and the
 * readers that find them again: counters `<column>_<slice>`, host-network counter maps
 * `<column><cgroup level>`, each slice's conntrack chain `ct_<slice>`.
 */

/** The tables (`table` in the bridge and inet families) and what their rules refer to. */
export interface TableConfig {
  table: string;
  bridge: string;
  /** Prefix of the slices' veths (host side). */
  vethPrefix: string;
  pool4: string;
  pool6: string;
}

export const HOST_COLUMNS = ['tx', 'rx', 'lotx', 'lorx'] as const;
type HostColumn = (typeof HOST_COLUMNS)[number];
/** ctdrop: new connections of a namespaced slice dropped by its conntrack limit. */
export type CounterColumn = HostColumn | 'ctdrop';

export const counterName = (column: CounterColumn, slice: string): string => `${column}_${slice}`;
export const conntrackChain = (slice: string): string => `ct_${slice}`;
export const CONNTRACK_CHAIN = /^ct_(.+)$/;
/** Counters are named <column>_<slice>; host maps <column><cgroup level>. */
const COUNTER_NAME = new RegExp(`^(${[...HOST_COLUMNS, 'ctdrop'].join('|')})_(.+)$`);
export const HOST_MAP_NAME = new RegExp(`^(${HOST_COLUMNS.join('|')})\\d+$`);

/** The slice a counter belongs to and its column, or null for a name that is not ours. */
export function parseCounterName(name: string): { column: CounterColumn; slice: string } | null {
  const match = COUNTER_NAME.exec(name);
  return match ? { column: match[1] as CounterColumn, slice: match[2]! } : null;
}
