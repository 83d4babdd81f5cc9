/**
 * The Unix users of slices: an existing user the operator names, or sl-<name> made for the
 * slice (and removed with it). Known users are cached, so exec and views need no lookup.
 */
import type { Logger } from 'pino';
import { createUser, deleteUser, lookupUser, type UnixUser } from '../../kernel/users.js';
import { SlicedError } from '../../core/errors.js';
import { sliceUserName } from '../../core/layout.js';
import type { DesiredState, SliceSpec } from '../../core/model.js';

export class SliceUsers {
  private readonly users = new Map<string, UnixUser>();

  constructor(
    private readonly log: Logger,
    private readonly prefix = 'sl-',
  ) {}

  /**
   * The user a new slice runs as: `requested` when given (it must exist and be unprivileged),
   * else sl-<name>, made for it, which no other slice may use.
   */
  choose(state: DesiredState, slice: string, requested: string | undefined): { user: string; userCreated: boolean } {
    if (requested !== undefined) {
      const found = lookupUser(requested);
      if (!found) throw new SlicedError('ENOENT', `user ${requested} does not exist; omit the user to have sliced create one`);
      if (found.uid === 0) throw new SlicedError('EPERM', `user ${requested} has uid 0; a slice's user must be unprivileged`);
      this.users.set(found.name, found);
      return { user: requested, userCreated: false };
    }
    const user = this.localName(slice);
    const holder = [...state.slices.values()].find((s) => s.user === user);
    if (holder) throw new SlicedError('EEXIST', `user ${user} is already used by slice ${holder.name}`);
    return { user, userCreated: true };
  }

  /** The user sliced makes for `slice` on this node. */
  localName(slice: string): string {
    return sliceUserName(slice, this.prefix);
  }

  /** Make sure the slice's user exists (creating it when sliced made it) and is cached. */
  ensure(slice: SliceSpec): void {
    let user = this.users.get(slice.user) ?? lookupUser(slice.user);
    if (!user && slice.userCreated) {
      user = createUser(slice.user, `sliced slice ${slice.name}`);
      this.log.info({ slice: slice.name, user: slice.user, uid: user.uid }, 'user created');
    }
    if (!user) {
      this.log.error({ slice: slice.name, user: slice.user }, 'the user of this slice does not exist; exec will fail');
      return;
    }
    this.users.set(user.name, user);
  }

  /** Remove a user sliced made for a slice, if it was made (and cached) here. */
  removeIfMade(user: string): void {
    if (!this.users.has(user)) return;
    deleteUser(user);
    this.users.delete(user);
  }

  /** Remove the user sliced made for a deleted slice. */
  remove(user: string): void {
    deleteUser(user);
    this.users.delete(user);
  }

  /** Remove every user sliced made for these slices (teardown; the desired state stays). */
  removeAllMade(slices: Iterable<SliceSpec>): void {
    for (const slice of slices) {
      if (slice.userCreated && lookupUser(slice.user)) {
        deleteUser(slice.user);
        this.log.info({ slice: slice.name, user: slice.user }, 'user removed');
      }
    }
  }

  /** The cached user, or null. */
  cached(name: string): UnixUser | null {
    return this.users.get(name) ?? null;
  }

  /** The cached user, else the system's. */
  find(name: string): UnixUser | null {
    return this.users.get(name) ?? lookupUser(name);
  }
}
