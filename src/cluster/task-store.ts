/**
 * Tasks in the cluster store: `tasks/<id>/record` (what should run where, written by whoever
 * places the task, always by compare on its last revision) and `tasks/<id>/status/<node>`
 * (what that node saw of it, written by that node only: a node still reporting on an earlier
 * placement never overwrites the report of the node that runs it now). A node alone keeps them in its own store
 * through the same interface.
 */
import { SlicedError } from '../core/errors.js';
import { assertTaskId, type TaskRecord, type TaskStatus } from '../core/tasks.js';
import type { ClusterStore, StoreCompare, StoreEvent, StoreWatch } from './store.js';

export const TASKS_PREFIX = 'tasks/';
export const recordKey = (id: string): string => `${TASKS_PREFIX}${id}/record`;
export const statusKey = (id: string, node: string): string => `${TASKS_PREFIX}${id}/status/${node}`;

export interface StoredTask {
  record: TaskRecord;
  /** The report of the node the record names, if it made one. */
  status: TaskStatus | null;
  /** Every node's report, by node. */
  statuses: Map<string, TaskStatus>;
  /** Revision of the record's last write, for compare-and-put. */
  modRevision: number;
}

/** Rounds of read-compare-write against other writers of the same record. */
const UPDATE_ROUNDS = 16;

export class TaskStore {
  constructor(private readonly store: ClusterStore) {}

  /** Write a new task's record; refuses an id in use. */
  async create(record: TaskRecord): Promise<void> {
    const key = recordKey(record.spec.id);
    const value = JSON.stringify(record);
    const { succeeded } = await this.store.txnIf([{ key, modRevision: 0 }], [{ type: 'put', key, value }]);
    // A call tried again after its first attempt was applied (etcd-store.ts) finds its own record.
    if (!succeeded && (await this.store.get(key)) !== value) throw new SlicedError('EEXIST', `task ${record.spec.id} exists already`);
  }

  async get(id: string): Promise<StoredTask> {
    assertTaskId(id);
    const { entries } = await this.store.rangeVersioned(`${TASKS_PREFIX}${id}/`);
    const task = tasksOf(entries).get(id);
    if (!task) throw new SlicedError('ENOENT', `no task ${id} (slicectl task list shows the cluster's tasks)`);
    return task;
  }

  async list(): Promise<{ revision: number; tasks: Map<string, StoredTask> }> {
    const { revision, entries } = await this.store.rangeVersioned(TASKS_PREFIX);
    return { revision, tasks: tasksOf(entries) };
  }

  /**
   * Change a task's record by `change` (which sees the current record and returns the new one,
   * or throws to refuse), compared on the record's revision (and on `fence`, e.g. the leader
   * key) and tried again when someone else wrote it in between.
   */
  async update(id: string, change: (task: StoredTask) => TaskRecord, fence: () => StoreCompare[] = () => []): Promise<TaskRecord> {
    for (let round = 0; round < UPDATE_ROUNDS; round++) {
      const task = await this.get(id);
      const next = change(task);
      const { succeeded } = await this.store.txnIf(
        [{ key: recordKey(id), modRevision: task.modRevision }, ...fence()],
        [{ type: 'put', key: recordKey(id), value: JSON.stringify(next) }],
      );
      if (succeeded) return next;
    }
    throw new SlicedError('EBUSY', `task ${id} changed ${UPDATE_ROUNDS} times while it was being changed; try again`);
  }

  /** Several tasks' statuses in one transaction. */
  async putStatuses(statuses: ReadonlyArray<{ id: string; status: TaskStatus }>): Promise<void> {
    await this.store.txn(
      statuses.map(({ id, status }) => ({ type: 'put', key: statusKey(id, status.node), value: JSON.stringify(status) })),
    );
  }

  /** Forget a task (record, status) if its record is still at `modRevision`. */
  async remove(task: StoredTask): Promise<boolean> {
    const id = task.record.spec.id;
    const { succeeded } = await this.store.txnIf(
      [{ key: recordKey(id), modRevision: task.modRevision }],
      [
        { type: 'delete', key: recordKey(id) },
        ...[...task.statuses.keys()].map((node) => ({ type: 'delete' as const, key: statusKey(id, node) })),
      ],
    );
    return succeeded;
  }

  /** The store's revision now: a watch after it misses nothing written later. */
  revision(): Promise<number> {
    return this.store.revision();
  }

  /** Every change under `tasks/` (or of one task's keys, with `id`) after revision `after`. */
  watch(after: number, onEvent: (event: StoreEvent) => void, onError: (err: SlicedError) => void, id?: string): StoreWatch {
    return this.store.watch(id === undefined ? TASKS_PREFIX : `${TASKS_PREFIX}${id}/`, after, onEvent, onError);
  }
}

/** The task id and which of its keys an event or entry is about, or null for another key. */
export function taskKeyOf(key: string): { id: string; node: string | null } | null {
  const m = /^tasks\/([0-9a-f]{12})\/(?:record|status\/([^/]+))$/.exec(key);
  return m ? { id: m[1]!, node: m[2] ?? null } : null;
}

function tasksOf(entries: Map<string, { value: string; modRevision: number }>): Map<string, StoredTask> {
  const records = new Map<string, { record: TaskRecord; modRevision: number }>();
  const statuses = new Map<string, Map<string, TaskStatus>>();
  for (const [key, { value, modRevision }] of entries) {
    const k = taskKeyOf(key);
    if (!k) continue;
    if (k.node === null) records.set(k.id, { record: JSON.parse(value) as TaskRecord, modRevision });
    else {
      if (!statuses.has(k.id)) statuses.set(k.id, new Map());
      statuses.get(k.id)!.set(k.node, JSON.parse(value) as TaskStatus);
    }
  }
  const out = new Map<string, StoredTask>();
  for (const [id, { record, modRevision }] of records) {
    const byNode = statuses.get(id) ?? new Map<string, TaskStatus>();
    out.set(id, { record, modRevision, statuses: byNode, status: byNode.get(record.node) ?? null });
  }
  return out;
}
