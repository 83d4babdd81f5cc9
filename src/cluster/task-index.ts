/**
 * Every task of the cluster, kept current from the store (as an informer does): one range of
 * `tasks/`, then a watch from its revision; when the store no longer has the history, a range
 * again. Readers get each task's record and every node's status without a round trip; what
 * was learnt at a revision is never replaced by an older read. `refresh()` reads everything
 * again, for a reader that must not act on old news (a node back from a cut-off).
 */
import type { Logger } from 'pino';
import type { TaskRecord, TaskStatus } from '../core/tasks.js';
import type { StoreEvent, StoreWatch } from './store.js';
import { taskKeyOf, type StoredTask, type TaskStore } from './task-store.js';

const RESYNC_RETRY_MS = 1000;

export class TaskIndex {
  private readonly records = new Map<string, { record: TaskRecord; modRevision: number }>();
  private readonly statuses = new Map<string, Map<string, TaskStatus>>();
  /** The revision each key's value (or deletion) was learnt at. */
  private readonly learnt = new Map<string, number>();
  /**
   * Tasks that want to run and have not ended where placed (no status of that placement yet,
   * or running). Ended tasks stay in the store until removed and pile up; placement counts
   * these at every submission, so they are kept apart rather than found by a scan of all.
   */
  private readonly active = new Set<string>();
  private readonly listeners = new Set<(id: string) => void>();
  private watcher: StoreWatch | null = null;
  private closed = false;

  constructor(
    private readonly tasks: TaskStore,
    private readonly log: Logger,
  ) {}

  async open(): Promise<void> {
    this.follow(await this.read());
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
  }

  /** Call `listener` with a task's id after its record or a status changed. */
  subscribe(listener: (id: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(id: string): StoredTask | undefined {
    const entry = this.records.get(id);
    if (!entry) return undefined;
    const statuses = this.statuses.get(id) ?? new Map<string, TaskStatus>();
    return { record: entry.record, modRevision: entry.modRevision, statuses, status: statuses.get(entry.record.node) ?? null };
  }

  record(id: string): TaskRecord | undefined {
    return this.records.get(id)?.record;
  }

  ids(): string[] {
    return [...this.records.keys()];
  }

  *all(): IterableIterator<StoredTask> {
    for (const id of this.records.keys()) yield this.get(id)!;
  }

  /** The records of the tasks that want to run and have not ended on their node: pending or running. */
  *activeRecords(): IterableIterator<TaskRecord> {
    for (const id of this.active) yield this.records.get(id)!.record;
  }

  /** Read every task again; listeners hear of each task that changed. */
  async refresh(): Promise<void> {
    await this.read();
  }

  /** Range `tasks/` and learn it; resolves to the revision it was read at. */
  private async read(): Promise<number> {
    const { revision, tasks } = await this.tasks.list();
    const changed = new Set<string>();
    for (const id of [...this.records.keys()]) if (!tasks.has(id) && this.learn(id, null, null, null, revision)) changed.add(id);
    for (const [id, task] of tasks) {
      if (this.learn(id, null, task.record, null, task.modRevision)) changed.add(id);
      for (const [node, status] of task.statuses) if (this.learn(id, node, null, status, revision)) changed.add(id);
    }
    for (const id of changed) this.changed(id);
    return revision;
  }

  private follow(after: number): void {
    this.watcher = this.tasks.watch(
      after,
      (event) => this.onEvent(event),
      (err) => {
        if (this.closed) return;
        this.log.warn({ err: err.message }, 'tasks: the watch ended; reading them again');
        void this.resync();
      },
    );
  }

  private async resync(): Promise<void> {
    while (!this.closed) {
      try {
        this.follow(await this.read());
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, RESYNC_RETRY_MS));
      }
    }
  }

  private onEvent(event: StoreEvent): void {
    const key = taskKeyOf(event.key);
    if (!key) return;
    const value = event.value === null ? null : (JSON.parse(event.value) as TaskRecord | TaskStatus);
    const record = key.node === null ? (value as TaskRecord | null) : null;
    const status = key.node !== null ? (value as TaskStatus | null) : null;
    if (this.learn(key.id, key.node, record, status, event.revision)) this.changed(key.id);
  }

  /**
   * Learn one key's value at `revision` (a record when `node` is null, else that node's
   * status; null for a deletion). False when something newer is known already.
   */
  private learn(id: string, node: string | null, record: TaskRecord | null, status: TaskStatus | null, revision: number): boolean {
    const key = node === null ? `${id}/record` : `${id}/status/${node}`;
    if ((this.learnt.get(key) ?? 0) > revision) return false;
    this.learnt.set(key, revision);
    if (node === null) {
      if (record === null) {
        this.records.delete(id);
        this.statuses.delete(id);
      } else this.records.set(id, { record, modRevision: revision });
    } else if (status === null) this.statuses.get(id)?.delete(node);
    else {
      if (!this.statuses.has(id)) this.statuses.set(id, new Map());
      this.statuses.get(id)!.set(node, status);
    }
    this.classify(id);
    return true;
  }

  /** Keep `active` current for a task whose record or a status was just learnt. */
  private classify(id: string): void {
    const record = this.records.get(id)?.record;
    const status = record ? this.statuses.get(id)?.get(record.node) : undefined;
    // As taskView reads it: a status of an earlier placement does not count.
    const current = status && status.generation === record!.generation ? status : null;
    if (record?.desired === 'run' && (current === null || current.state === 'running')) this.active.add(id);
    else this.active.delete(id);
  }

  private changed(id: string): void {
    for (const listener of this.listeners) listener(id);
  }
}
