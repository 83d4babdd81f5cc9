/**
 * The vsys area of the API (/v1/vsys): services, each slice's FIFO pairs and their channels,
 * calls and the vsys log, as the broker reports them and slicectl vsys shows them.
 */

/** Access of a slice to a service, as its ACL grants it. */
export type AccessMode = 'r' | 'w' | 'rw';

/** What one call of a service did (a channel's last call, an admin call, the log). */
export interface CallResult {
  service: string;
  slice: string;
  exitCode: number | null;
  signal: string | null;
  bytesIn: number;
  bytesOut: number;
  /** Output bytes that did not reach the slice (no reader in time, reader left, refused FIFO, `w` only). */
  outputDropped: number;
  durationMs: number;
  timedOut: boolean;
  inputTooLarge: boolean;
  outputTruncated: boolean;
}

export type ChannelState = 'idle' | 'waiting' | 'running' | 'instance' | 'restarting';

export interface ChannelStatus {
  service: string;
  mode: AccessMode;
  stateful: boolean;
  private: boolean;
  in: string | null;
  out: string | null;
  state: ChannelState;
  calls: number;
  pid: number | null;
  lastCall: CallResult | null;
}

export type VsysLevel = 'debug' | 'info' | 'warn' | 'error';

export interface VsysEvent {
  time: string;
  level: VsysLevel;
  service: string | null;
  slice: string | null;
  message: string;
  details?: Record<string, unknown>;
}

export interface ServiceView {
  name: string;
  /** The slice of a private service, null for a public one. */
  private: string | null;
  script: string;
  stateful: boolean;
  /** The ACL as written (null: no ACL file). */
  acl: Record<string, AccessMode> | null;
  /** Existing slices that have it now, with their mode. */
  slices: Record<string, AccessMode>;
}

export interface SliceVsysView {
  slice: string;
  dir: string;
  services: ChannelStatus[];
  refused: Record<string, string>;
}

export interface VsysStatus {
  servicesDir: string;
  sliceRoot: string;
  /** Why every service is withdrawn (the services directory is unsafe or unreadable), or null. */
  withdrawn: string | null;
}

export interface AdminCallResult extends CallResult {
  /** Base64 of the output (empty when the slice has only `w` access: it would not see it). */
  output: string;
  outputVisible: boolean;
  summary: string;
  failed: boolean;
}
