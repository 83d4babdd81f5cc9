/** The networking area of the API (/v1/net): per-slice packet and byte accounts. */
import type { Count } from '../core/accounting.js';

export interface AccountRow {
  slice: string;
  deleted: boolean;
  /** "namespace", "host", or null for a deleted slice. */
  network: 'namespace' | 'host' | null;
  sent: Count;
  received: Count;
  loopbackSent: Count;
  loopbackReceived: Count;
  /** New connections dropped by the slice's conntrack limit (namespaced slices). */
  conntrackDropped: Count;
}

export interface AccountsDocument {
  slices: AccountRow[];
  /** Over all slices, loopback excluded. */
  summary: { sent: Count; received: Count };
}
