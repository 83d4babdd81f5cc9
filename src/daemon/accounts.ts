/**
 * Per-slice packet accounts, durable in the store ("/net/accounts/<slice>"). Raw kernel
 * readings are folded in (src/core/accounting.ts); a deleted slice's account stays until
 * it is removed explicitly, as Scout's /proc/scout/accounts/remove did.
 */
import type { Store, StoreOp } from '../cluster/store.js';
import { fold, type Column, type Count, type SliceAccount, type Source } from '../core/accounting.js';
import { SlicedError } from '../core/errors.js';

const PREFIX = '/net/accounts/';

export class Accounts {
  private readonly accounts = new Map<string, SliceAccount>();
  private readonly dirty = new Set<string>();

  constructor(private readonly store: Store) {}

  async load(): Promise<void> {
    for (const value of (await this.store.range(PREFIX)).values()) {
      const account = JSON.parse(value) as SliceAccount;
      this.accounts.set(account.slice, account);
    }
  }

  fold(slice: string, column: Column, source: Source, raw: Count, identity: string): void {
    const account = this.accounts.get(slice) ?? { slice, columns: {}, deleted: false };
    const key = `${column}/${source}` as const;
    account.columns[key] = fold(account.columns[key], raw, identity);
    this.accounts.set(slice, account);
    this.dirty.add(slice);
  }

  /** Keep the account of a slice that exists (again) or was deleted. */
  setDeleted(slice: string, deleted: boolean): void {
    const account = this.accounts.get(slice) ?? { slice, columns: {}, deleted };
    if (account.deleted !== deleted || !this.accounts.has(slice)) {
      account.deleted = deleted;
      this.accounts.set(slice, account);
      this.dirty.add(slice);
    }
  }

  get(slice: string): SliceAccount | undefined {
    return this.accounts.get(slice);
  }

  all(): SliceAccount[] {
    return [...this.accounts.values()].sort((a, b) => a.slice.localeCompare(b.slice));
  }

  /** Drop the counts of a deleted slice. */
  async remove(slice: string): Promise<void> {
    const account = this.accounts.get(slice);
    if (!account) throw new SlicedError('ENOENT', `there are no counts for slice ${JSON.stringify(slice)}`);
    if (!account.deleted) throw new SlicedError('EBUSY', `slice ${slice} still exists; only a deleted slice's counts can be removed`);
    await this.store.txn([{ type: 'delete', key: PREFIX + slice }]);
    this.accounts.delete(slice);
    this.dirty.delete(slice);
  }

  /** Write the accounts that changed since the last flush, in one transaction. */
  async flush(): Promise<void> {
    const ops: StoreOp[] = [];
    for (const slice of this.dirty) {
      const account = this.accounts.get(slice);
      if (account) ops.push({ type: 'put', key: PREFIX + slice, value: JSON.stringify(account) });
    }
    this.dirty.clear();
    if (ops.length > 0) await this.store.txn(ops);
  }
}
