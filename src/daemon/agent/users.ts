/**
 * The Unix users of slices: an existing user the operator names, or sl-<name> made for the
 * slice (and removed with it). Known users are cached, so exec and views need no lookup.
 * A user sliced makes says in its comment which slice and which daemon (state directory) it
 * was made for, so that one left by a crash can be told from anybody else's and removed.
 */
import type { Logger } from 'pino';
import { createUser, deleteUser, listLocalUsers, lookupUser, type UnixUser } from '../../kernel/users.js';
import { SlicedError } from '../../core/errors.js';
import { sliceUserName } from '../../core/layout.js';
import type { DesiredState, SliceSpec } from '../../core/model.js';

export class SliceUsers {
  private readonly users = new Map<string, UnixUser>();

  /** What the comment of a user made here says after the slice's name. */
  private readonly madeBy: string;

  /** `owner`: the daemon's state directory, which no other daemon on the machine shares. */
  constructor(
    private readonly log: Logger,
    private readonly prefix = 'sl-',
    owner = '',
  ) {
    // The comment is a passwd field: no colon, newline or comma (finger's separator) in it.
    this.madeBy = `of sliced ${owner.replace(/[:,\n]/g, '_')}`;
  }

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
      user = createUser(slice.user, `sliced slice ${slice.name} ${this.madeBy}`);
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

  /**
   * Remove the users this daemon made for slices that `state` does not have: what a crash
   * between a change's store write and its userdel leaves behind. Users made by anybody
   * else (another daemon, the operator) are told apart by their comment and left alone.
   */
  removeStrays(state: DesiredState): void {
    const named = new Set([...state.slices.values()].map((s) => s.user));
    for (const user of listLocalUsers()) {
      if (named.has(user.name) || !this.madeHere(user)) continue;
      try {
        deleteUser(user.name);
        this.users.delete(user.name);
        this.log.warn({ user: user.name, comment: user.comment }, 'removed a user made for a slice that no longer exists');
      } catch (err) {
        this.log.error({ user: user.name, err: (err as Error).message }, 'cannot remove a user made for a slice that no longer exists');
      }
    }
  }

  /** Whether this daemon made `user` for a slice (by its name and comment). */
  private madeHere(user: UnixUser): boolean {
    const match = /^sliced slice (\S+) (.*)$/.exec(user.comment);
    return match !== null && match[2] === this.madeBy && this.localName(match[1]!) === user.name;
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
