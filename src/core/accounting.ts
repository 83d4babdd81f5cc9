/**
 * Monotonic per-slice packet accounting over kernel counters that can restart from zero
 * (a namespace or counter made anew, a reboot). For each column the daemon keeps the total
 * so far and the last raw reading with the identity of the kernel object it came from;
 * both are persisted together, so after a restart the next reading continues exactly
 * where the last persisted one left off: nothing is counted twice and nothing is lost.
 */

export interface Count {
  packets: number;
  bytes: number;
}

export interface ColumnState {
  total: Count;
  /** Last raw reading of the kernel object named by `identity`. */
  last: Count;
  identity: string;
}

/** conntrackDropped: new connections of a namespaced slice dropped by its conntrack limit. */
export const COLUMNS = ['sent', 'received', 'loopbackSent', 'loopbackReceived', 'conntrackDropped'] as const;
export type Column = (typeof COLUMNS)[number];

/**
 * Where a column's counts come from: the bridge table (a slice with a network), the inet
 * table (host network) or the namespace's lo. A slice that switches between host and its own
 * network has counts from several sources; each is folded on its own and the column is their sum.
 */
export type Source = 'bridge' | 'inet' | 'lo';

export interface SliceAccount {
  slice: string;
  /** By "<column>/<source>". */
  columns: Partial<Record<`${Column}/${Source}`, ColumnState>>;
  /** Set when the slice was deleted; the counts stay readable until removed. */
  deleted: boolean;
}

export const ZERO: Count = { packets: 0, bytes: 0 };

/**
 * Fold a raw reading into a column. The same object that grew: add the growth. A new object
 * (other identity) or one that went backwards (reset): it started from zero, add it whole.
 */
export function fold(previous: ColumnState | undefined, raw: Count, identity: string): ColumnState {
  if (!previous) return { total: { ...raw }, last: { ...raw }, identity };
  const same = previous.identity === identity && raw.packets >= previous.last.packets && raw.bytes >= previous.last.bytes;
  const delta = same ? { packets: raw.packets - previous.last.packets, bytes: raw.bytes - previous.last.bytes } : raw;
  return {
    total: { packets: previous.total.packets + delta.packets, bytes: previous.total.bytes + delta.bytes },
    last: { ...raw },
    identity,
  };
}

export function totalOf(account: SliceAccount, column: Column): Count {
  const sum = { ...ZERO };
  for (const source of ['bridge', 'inet', 'lo'] as const) {
    const state = account.columns[`${column}/${source}`];
    if (state) {
      sum.packets += state.total.packets;
      sum.bytes += state.total.bytes;
    }
  }
  return sum;
}

/** The node summary: sent and received over all slices; loopback is kept out by design. */
export function summary(accounts: Iterable<SliceAccount>): { sent: Count; received: Count } {
  const sum = { sent: { ...ZERO }, received: { ...ZERO } };
  for (const account of accounts) {
    for (const column of ['sent', 'received'] as const) {
      const t = totalOf(account, column);
      sum[column].packets += t.packets;
      sum[column].bytes += t.bytes;
    }
  }
  return sum;
}
