/**
 * ClusterStore over etcd 3 (the npm `etcd3` client), for nodes that share one cluster. What
 * was measured with Debian's etcd 3.4.23 and etcd3 1.1.2 on this project's machines shapes it:
 * - etcd3 sets no deadline on a call: a call whose member died hung 7 s and was then retried
 *   silently. Every unary call here has a deadline (`callTimeoutMs`, default 2 s), the
 *   channel pings (gRPC keepalive, 5 s: more often and etcd answers `too_many_pings` and drops
 *   the watches) and reconnects within 2 s.
 * - A call that fails (member dead, deadline passed) is tried again on the next member, so a
 *   write may reach etcd twice. Every write is therefore a compare transaction: txnIf's
 *   compares, and for txn (unconditional) the mod revisions just read, so a retry that finds
 *   its own write already applied stops. The price: a txnIf whose first attempt was applied
 *   but timed out reports `succeeded: false`; a caller re-reads after a failed compare anyway.
 * - etcd3's Watcher resumes from the revision in a response's header, which can skip events
 *   while a watch replays history, and dies silently after compaction. Watches here run on
 *   their own gRPC stream, resume after the last revision delivered, and report compaction.
 * - etcd counts a lease's time to live in whole seconds and raises it to its minimum (2 s
 *   with the default election timeout): a lease asked for 1500 ms lives 2 s; `ttlMs` says
 *   what was granted.
 * All keys live under `prefix`, so several clusters (or tests) can share one etcd.
 */
import type {
  Etcd3,
  IDuplexStream,
  IKeyValue,
  ILeaseKeepAliveRequest,
  ILeaseKeepAliveResponse,
  IOptions,
  IRequestOp,
  IWatchRequest,
  IWatchResponse,
} from 'etcd3';
import { ConstantBackoff, handleWhen, noop, retry } from 'cockatiel';
import { SlicedError, type ErrorCode } from '../core/errors.js';
import type { ClusterOp, ClusterStore, StoreCompare, StoreEvent, StoreLease, StoreOp, StoreWatch, Versioned } from './store.js';

/** The etcd3 package, loaded when a store opens: loaded at every start, it would cost a node not in a cluster 0.25 s. */
type Etcd3Module = typeof import('etcd3');

export interface EtcdStoreOptions {
  /** Client URLs of the members, e.g. http://10.0.0.1:2379. */
  endpoints: readonly string[];
  /** Every key is stored under this prefix (e.g. "/sliced/"). */
  prefix: string;
  /** Deadline of each call; default 2000 ms. */
  callTimeoutMs?: number;
  /** Client certificates for TLS (https endpoints). */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
}

/** Deadline of a call when none is given: a failover measured 1.5 s with it. */
const CALL_TIMEOUT_MS = 2000;
/** gRPC pings: etcd refuses pings more often than every 5 s (its --grpc-keepalive-min-time). */
const KEEPALIVE_MS = 5000;
/** Longest wait before a dropped watch stream is opened again. */
const MAX_BACKOFF_MS = 2000;
/**
 * Pause before a failed call is tried on the next member. A dead member refuses at once; 50 ms
 * here made a tree write with one member of three down take 56 ms at the median, 5 ms 10 ms.
 */
const RETRY_MS = 5;
/** Rounds of txn's compare-and-put before giving up against writers that keep winning. */
const TXN_ROUNDS = 10;

export class EtcdStore implements ClusterStore {
  private readonly client: Etcd3;
  private readonly callTimeoutMs: number;
  private readonly prefix: Buffer;
  private readonly leases = new Set<EtcdLease>();
  private readonly watches = new Set<EtcdWatch>();
  /** Set by close(): no new calls. */
  private closing = false;
  /** Set once close() has revoked the leases: no calls at all. */
  private closed = false;

  /** Load the client and make a store; calls connect lazily (the first call fails if no member answers). */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    return new EtcdStore(options, await import('etcd3'));
  }

  private constructor(
    private readonly options: EtcdStoreOptions,
    private readonly lib: Etcd3Module,
  ) {
    if (options.endpoints.length === 0) throw new SlicedError('EINVAL', 'etcd endpoints: none given; at least one client URL is needed');
    if (options.prefix === '')
      throw new SlicedError('EINVAL', 'etcd key prefix: empty; give one (e.g. "/sliced/") so that clusters sharing an etcd stay apart');
    this.callTimeoutMs = options.callTimeoutMs ?? CALL_TIMEOUT_MS;
    this.prefix = Buffer.from(options.prefix);
    const clientOptions: IOptions = {
      hosts: [...options.endpoints],
      dialTimeout: CALL_TIMEOUT_MS,
      grpcOptions: {
        'grpc.keepalive_time_ms': KEEPALIVE_MS,
        'grpc.keepalive_timeout_ms': 2000,
        'grpc.keepalive_permit_without_calls': 1,
        'grpc.max_reconnect_backoff_ms': MAX_BACKOFF_MS,
        'grpc.use_local_subchannel_pool': 1,
      },
      // Streams (watches, lease keep-alives) live on; every other call gets a deadline.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.callTimeoutMs }),
      faultHandling: {
        // etcd3's default opens a circuit breaker for 5 s after 3 failures of a member: members
        // killed and restarted one after the other were all shut out while alive, and calls
        // failed with one member down. Instead a failed call goes to the next member, each
        // member once (the pool shuffles them per call).
        host: () => noop,
        global: retry(handleWhen(lib.isRecoverableError), {
          maxAttempts: options.endpoints.length,
          backoff: new ConstantBackoff(RETRY_MS),
        }),
      },
    };
    if (options.tls)
      clientOptions.credentials = { rootCertificate: options.tls.ca, privateKey: options.tls.key, certChain: options.tls.cert };
    this.client = new lib.Etcd3(clientOptions);
  }

  async revision(): Promise<number> {
    const res = await this.call('revision', () => this.client.kv.range({ key: this.prefix, count_only: true }));
    return Number(res.header.revision);
  }

  async get(key: string): Promise<string | undefined> {
    const res = await this.call(`get ${key}`, () => this.client.kv.range({ key: this.key(key) }));
    return res.kvs[0]?.value.toString();
  }

  async range(prefix: string): Promise<Map<string, string>> {
    const { entries } = await this.rangeVersioned(prefix);
    return new Map([...entries].map(([key, { value }]) => [key, value]));
  }

  async rangeVersioned(prefix: string): Promise<{ revision: number; entries: Map<string, Versioned> }> {
    const key = this.key(prefix);
    const res = await this.call(`range ${prefix}`, () => this.client.kv.range({ key, range_end: prefixEnd(key) }));
    const entries = new Map<string, Versioned>();
    for (const kv of res.kvs) entries.set(this.unkey(kv), { value: kv.value.toString(), modRevision: Number(kv.mod_revision) });
    return { revision: Number(res.header.revision), entries };
  }

  async txn(ops: readonly StoreOp[]): Promise<void> {
    if (this.closing) throw this.error('EIO', 'transaction', 'the store is closed');
    const keys = [...new Set(ops.map((op) => op.key))];
    for (let round = 0; round < TXN_ROUNDS; round++) {
      const read = await this.readKeys(keys);
      // A retried call whose first attempt was applied finds the state it wrote: done.
      if (round > 0 && ops.every((op) => read.get(op.key)?.value === (op.type === 'put' ? op.value : undefined))) return;
      const compares = keys.map((key) => ({ key, modRevision: read.get(key)?.modRevision ?? 0 }));
      if ((await this.txnIf(compares, ops)).succeeded) return;
    }
    throw this.error('EIO', `transaction on ${keys.join(', ')}`, `other writers changed these keys ${TXN_ROUNDS} times in a row`);
  }

  async txnIf(compares: readonly StoreCompare[], ops: readonly ClusterOp[]): Promise<{ succeeded: boolean; revision: number }> {
    if (this.closing) throw this.error('EIO', 'transaction', 'the store is closed');
    const what = `transaction on ${ops.map((op) => op.key).join(', ') || 'no keys'}`;
    const res = await this.call(what, () =>
      this.client.kv.txn({
        compare: compares.map((c) =>
          c.modRevision === 0
            ? { key: this.key(c.key), target: this.lib.CompareTarget.Create, result: this.lib.CompareResult.Equal, create_revision: '0' }
            : {
                key: this.key(c.key),
                target: this.lib.CompareTarget.Mod,
                result: this.lib.CompareResult.Equal,
                mod_revision: String(c.modRevision),
              },
        ),
        success: ops.map((op): IRequestOp => {
          if (op.type === 'delete') return { request_delete_range: { key: this.key(op.key) } };
          return { request_put: { key: this.key(op.key), value: Buffer.from(op.value), ...('lease' in op ? { lease: op.lease } : {}) } };
        }),
        failure: [],
      }),
    );
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  watch(prefix: string, after: number, onEvent: (event: StoreEvent) => void, onError: (err: SlicedError) => void): StoreWatch {
    if (!Number.isInteger(after) || after < 0)
      throw new SlicedError('EINVAL', `watch of ${prefix} after revision ${after}: a whole number >= 0`);
    if (this.closing) throw this.error('EIO', `watch of ${prefix}`, 'the store is closed');
    const watch = new EtcdWatch(this, prefix, after, onEvent, (err) => {
      this.watches.delete(watch);
      onError(err);
    });
    this.watches.add(watch);
    return {
      close: () => {
        this.watches.delete(watch);
        watch.close();
      },
    };
  }

  async compact(revision: number): Promise<void> {
    if (!Number.isInteger(revision) || revision < 1)
      throw new SlicedError('EINVAL', `compact to revision ${revision}: a whole number >= 1`);
    try {
      await this.call(`compact to revision ${revision}`, () => this.client.kv.compact({ revision: String(revision), physical: true }));
    } catch (err) {
      // Compacted already: what was asked for holds.
      if (!/has been compacted/.test(String(err))) throw err;
    }
  }

  async grantLease(ttlMs: number): Promise<StoreLease> {
    if (!Number.isInteger(ttlMs) || ttlMs < 1) throw new SlicedError('EINVAL', `lease time to live ${ttlMs} ms: a whole number of ms >= 1`);
    if (this.closing) throw this.error('EIO', 'grant a lease', 'the store is closed');
    const asked = Date.now();
    // Not idempotent, but harmless if retried: the lease nobody holds expires after its TTL.
    const res = await this.call(`grant a lease of ${ttlMs} ms`, () =>
      this.client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000), ID: 0 }),
    );
    if (res.error) throw this.error('EIO', `grant a lease of ${ttlMs} ms`, res.error);
    const lease = new EtcdLease(this, String(res.ID), Number(res.TTL) * 1000, asked);
    this.leases.add(lease);
    return lease;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const watch of this.watches) watch.close();
    this.watches.clear();
    // A lease does not outlive the store that holds it (as in the local store): its keys go now.
    await Promise.allSettled([...this.leases].map((lease) => lease.revoke()));
    this.closed = true;
    this.client.close();
  }

  // ---- for EtcdWatch and EtcdLease ----

  /** The client, for streams; undefined once closed. */
  get etcd(): Etcd3 | undefined {
    return this.closing ? undefined : this.client;
  }

  /** The stored key for `key`, under the prefix. */
  key(key: string): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(key)]);
  }

  unkey(kv: IKeyValue): string {
    return kv.key.subarray(this.prefix.length).toString();
  }

  forgetLease(lease: EtcdLease): void {
    this.leases.delete(lease);
  }

  /** A SlicedError naming the endpoints, the operation and the cause. */
  error(code: ErrorCode, what: string, cause: unknown): SlicedError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new SlicedError(code, `etcd ${this.options.endpoints.join(',')}: ${what}: ${reason}`, {
      endpoints: [...this.options.endpoints],
    });
  }

  /** Run one call; its failure becomes a SlicedError (ENOENT for a lease etcd does not know, else EIO). */
  async call<T>(what: string, run: (client: Etcd3) => Promise<T>): Promise<T> {
    if (this.closed) throw this.error('EIO', what, 'the store is closed');
    try {
      return await run(this.client);
    } catch (err) {
      throw this.error(/lease not found/i.test(String(err)) ? 'ENOENT' : 'EIO', what, err);
    }
  }

  private async readKeys(keys: readonly string[]): Promise<Map<string, Versioned>> {
    const found = new Map<string, Versioned>();
    if (keys.length === 0) return found;
    const res = await this.call(`read ${keys.join(', ')}`, () =>
      this.client.kv.txn({ compare: [], success: keys.map((key) => ({ request_range: { key: this.key(key) } })), failure: [] }),
    );
    for (const response of res.responses) {
      const kv = response.response_range?.kvs[0];
      if (kv) found.set(this.unkey(kv), { value: kv.value.toString(), modRevision: Number(kv.mod_revision) });
    }
    return found;
  }
}

/**
 * One watch on a gRPC stream of its own. It asks for the events after `next - 1`; after each
 * event delivered `next` moves past it, so a stream that breaks (a member died, the network
 * dropped) is opened again, on any member, from exactly there: nothing lost or repeated.
 */
class EtcdWatch {
  private next: number;
  private stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  private closed = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: EtcdStore,
    private readonly prefix: string,
    after: number,
    private readonly onEvent: (event: StoreEvent) => void,
    private readonly onError: (err: SlicedError) => void,
  ) {
    this.next = after + 1;
    this.open();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.stream?.cancel();
    this.stream = undefined;
  }

  private open(): void {
    const client = this.store.etcd;
    if (this.closed || !client) return;
    client.watchClient.watch().then(
      (stream) => {
        if (this.closed) return stream.cancel();
        this.stream = stream;
        stream.on('data', (res) => this.receive(res));
        stream.on('error', () => this.dropped(stream));
        stream.on('end', () => this.dropped(stream));
        const key = this.store.key(this.prefix);
        stream.write({ create_request: { key, range_end: prefixEnd(key), start_revision: String(this.next), progress_notify: true } });
      },
      () => this.dropped(undefined),
    );
  }

  private receive(res: IWatchResponse): void {
    if (this.closed) return;
    this.failures = 0;
    if (Number(res.compact_revision) > 0) {
      return this.fail(
        this.store.error(
          'EINVAL',
          `watch of ${this.prefix} after revision ${this.next - 1}`,
          `that history is not kept (compacted up to revision ${res.compact_revision}); range again and watch from its revision`,
        ),
      );
    }
    if (res.canceled)
      return this.fail(this.store.error('EIO', `watch of ${this.prefix}`, `canceled by etcd: ${res.cancel_reason || 'no reason given'}`));
    // Events of one revision come in one response: skip only what an earlier stream delivered.
    const from = this.next;
    for (const event of res.events) {
      const revision = Number(event.kv.mod_revision);
      if (revision < from) continue;
      const deleted = String(event.type) === 'Delete';
      this.onEvent({
        type: deleted ? 'delete' : 'put',
        key: this.store.unkey(event.kv),
        value: deleted ? null : event.kv.value.toString(),
        revision,
      });
      this.next = revision + 1;
    }
    // A progress notification (no events) is sent once the watch has caught up: nothing is
    // pending up to its header's revision.
    if (res.events.length === 0 && !res.created) this.next = Math.max(this.next, Number(res.header.revision) + 1);
  }

  private dropped(stream: { cancel(): void } | undefined): void {
    if (this.closed || (stream !== undefined && stream !== this.stream)) return;
    this.stream = undefined;
    stream?.cancel();
    const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** this.failures++);
    this.timer = setTimeout(() => this.open(), delay);
    this.timer.unref();
  }

  private fail(err: SlicedError): void {
    this.close();
    this.onError(err);
  }
}

/**
 * A lease, kept alive on one keep-alive stream. etcd counts its time from when a keep-alive
 * arrives; counting from when it was sent, the holder learns of the end no later than etcd.
 */
class EtcdLease implements StoreLease {
  private expires: number;
  private ended = false;
  private opening = false;
  private stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  private readonly sent: number[] = [];

  constructor(
    private readonly store: EtcdStore,
    readonly id: string,
    readonly ttlMs: number,
    granted: number,
  ) {
    this.expires = granted + ttlMs;
  }

  get expiresAt(): number {
    return this.ended ? 0 : this.expires;
  }

  keepAlive(): void {
    if (this.ended || Date.now() >= this.expires) {
      this.end();
      throw new SlicedError('ENOENT', `lease ${this.id} has ended; grant a new one`);
    }
    const client = this.store.etcd;
    if (!client) throw this.store.error('EIO', `keep lease ${this.id} alive`, 'the store is closed');
    this.sent.push(Date.now());
    if (this.stream) {
      this.stream.write({ ID: this.id });
      return;
    }
    // The stream being opened sends every keep-alive asked for meanwhile.
    if (this.opening) return;
    this.opening = true;
    const pending = client.leaseClient.leaseKeepAlive().then((stream) => {
      if (this.ended) return stream.end();
      this.stream = stream;
      stream.on('data', (res) => {
        const sentAt = this.sent.shift() ?? Date.now();
        if (Number(res.TTL) <= 0) this.end();
        else this.expires = Math.max(this.expires, sentAt + Number(res.TTL) * 1000);
      });
      const drop = () => {
        if (this.stream === stream) this.stream = undefined;
        this.sent.length = 0;
      };
      stream.on('error', drop);
      stream.on('end', drop);
      for (let i = 0; i < this.sent.length; i++) stream.write({ ID: this.id });
    });
    // A keep-alive that does not get through is one missed beat: the next one tries again.
    pending.then(
      () => (this.opening = false),
      () => {
        this.opening = false;
        this.sent.length = 0;
      },
    );
  }

  async revoke(): Promise<void> {
    if (this.ended) return;
    this.end();
    try {
      await this.store.call(`revoke lease ${this.id}`, (client) => client.leaseClient.leaseRevoke({ ID: this.id }));
    } catch (err) {
      // Expired already: its keys are gone, which is what revoking asks for.
      if (!(err instanceof SlicedError && err.code === 'ENOENT')) throw err;
    }
  }

  private end(): void {
    this.ended = true;
    this.stream?.end();
    this.stream = undefined;
    this.store.forgetLease(this);
  }
}

/** The end of the key range that holds every key starting with `key` (etcd's range_end). */
function prefixEnd(key: Buffer): Buffer {
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  // Every byte is 0xff (or the key is empty): every key from here on.
  return Buffer.from([0]);
}
