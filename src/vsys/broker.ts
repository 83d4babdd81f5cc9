/**
 * The vsys broker: mirrors what the services directory offers into each slice's vsys
 * directory as FIFO pairs, and runs the channels behind them. It reconciles on every change
 * of the desired state (slices created or deleted) and of the services directory, and
 * checks the FIFOs every few seconds: one the slice removed is made again, anything the
 * slice put in its place is refused and logged, never followed or replaced. FIFOs come from
 * a FifoMaker: made ahead by root, never by a process of the slice's user, and adopted
 * after a restart only if sliced recorded them.
 */
import { closeSync, lstatSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SlicedError } from '../core/errors.js';
import { nameProblem } from '../core/names.js';
import type { UnixUser } from '../kernel/users.js';
import { checkFifo, ensureOwnedDirectory, ensureRootDirectory, RefusedFile, removeDirectory } from '../kernel/fifo.js';
import { FifoMaker, type OpenedFifo } from '../kernel/fifo-maker.js';
import { canRead, canWrite } from './acl.js';
import { grantKey, grantsBySlice, type Grant } from './catalog.js';
import { callFailed, describeCall, runCall, type VsysLimits } from './call.js';
import { Channel } from './channel.js';
import { VsysEvents, type EventFilter } from './events.js';
import { ServicesDirectory } from './services.js';
import { BufferSink, DiscardSink } from './sink.js';
import { Slots } from './slots.js';
import type { AccessMode, AdminCallResult, ServiceView, SliceVsysView, VsysEvent, VsysStatus } from '../wire/vsys.js';

const VERIFY_MS = 2000;

export interface VsysOptions {
  /** Root-only directory of service scripts and ACLs. */
  servicesDir: string;
  /** Where each slice's vsys directory is made: <sliceRoot>/<slice>/. */
  sliceRoot: string;
  limits: VsysLimits;
  log: Logger;
}

/** What the broker needs from the node agent. */
export interface SliceSource {
  sliceUsers(): Map<string, UnixUser | null>;
  /** The cgroup.procs files of the slice's groups now (they move with the slice's domain). */
  procsFiles(slice: string): string[];
}

interface SliceVsys {
  name: string;
  uid: number;
  gid: number;
  dir: string;
  /** Our FIFOs in the slice's directory: file name -> inode. */
  files: Map<string, number>;
  /** File names where something else stands: -> why it was refused. */
  refused: Map<string, string>;
  grants: Map<string, Grant>;
  channels: Map<string, Channel>;
}

export class VsysBroker {
  readonly events: VsysEvents;
  private readonly services: ServicesDirectory;
  private readonly slots: Slots;
  private readonly fifos: FifoMaker;
  private readonly slices = new Map<string, SliceVsys>();
  private verifier: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly opts: VsysOptions,
    private readonly source: SliceSource,
  ) {
    this.events = new VsysEvents(opts.log);
    this.slots = new Slots(opts.limits.maxCallsPerSlice);
    this.services = new ServicesDirectory(opts.servicesDir, this.events, () => this.sync());
    this.fifos = new FifoMaker(opts.sliceRoot, {
      ready: () => this.verify(),
      problem: (message) => this.events.record('error', {}, message),
    });
  }

  get limits(): VsysLimits {
    return this.opts.limits;
  }

  /** Check and create the directories (refusing a services directory others could write), then serve. */
  start(): void {
    ensureRootDirectory(this.opts.servicesDir, 0o700, 'vsys services directory');
    ensureRootDirectory(this.opts.sliceRoot, 0o755, 'vsys slice directory root');
    this.fifos.start();
    const slices = new Set(this.source.sliceUsers().keys());
    this.fifos.prune(slices);
    this.removeLeftDirectories(slices);
    this.services.start();
    this.sync();
    this.verifier = setInterval(() => this.verify(), VERIFY_MS);
    this.verifier.unref();
  }

  /** Stop every script; FIFOs stay, so slices find them intact after a restart. */
  async close(): Promise<void> {
    this.closed = true;
    this.services.close();
    this.fifos.close();
    if (this.verifier) clearInterval(this.verifier);
    await Promise.all([...this.slices.values()].flatMap((s) => [...s.channels.values()].map((c) => c.close())));
  }

  /** Make every slice's directory and channels match the slices and the services offered. */
  sync(): void {
    if (this.closed) return;
    const users = this.source.sliceUsers();
    const grants = grantsBySlice(this.services.services, users.keys());
    for (const [name, rec] of this.slices) {
      const user = users.get(name);
      if (!user || user.uid !== rec.uid || user.gid !== rec.gid) this.dropSlice(rec, users.has(name));
    }
    for (const [name, user] of users) {
      if (!user) continue;
      try {
        let rec = this.slices.get(name);
        if (!rec) {
          rec = this.addSlice(name, user);
          this.reconcile(rec, grants.get(name) ?? new Map(), true);
        } else {
          this.reconcile(rec, grants.get(name) ?? new Map(), false);
        }
      } catch (err) {
        this.events.record('error', { slice: name }, `cannot set up the slice's vsys directory: ${(err as Error).message}`);
      }
    }
  }

  /**
   * The directories of slices deleted while sliced was down or killed before it removed them
   * (a kill between the deletion and its removal): a directory with a slice's name, owned by
   * a user (not root), holding nothing but FIFOs. Anything else in the root is not ours.
   */
  private removeLeftDirectories(slices: ReadonlySet<string>): void {
    for (const name of readdirSync(this.opts.sliceRoot)) {
      if (slices.has(name) || nameProblem(name) !== null) continue;
      const dir = join(this.opts.sliceRoot, name);
      try {
        const stats = lstatSync(dir);
        if (!stats.isDirectory() || stats.uid === 0) continue;
        if (!readdirSync(dir).every((f) => lstatSync(join(dir, f)).isFIFO())) continue;
      } catch {
        continue; // gone meanwhile
      }
      removeDirectory(this.opts.sliceRoot, name);
      this.events.record('info', { slice: name }, 'removed the vsys directory of a slice that no longer exists');
    }
  }

  private addSlice(name: string, user: UnixUser): SliceVsys {
    const dir = ensureOwnedDirectory(this.opts.sliceRoot, name, user.uid, user.gid, 0o700);
    const rec: SliceVsys = {
      name,
      uid: user.uid,
      gid: user.gid,
      dir,
      files: new Map(),
      refused: new Map(),
      grants: new Map(),
      channels: new Map(),
    };
    this.slices.set(name, rec);
    return rec;
  }

  private dropSlice(rec: SliceVsys, sliceStillExists: boolean): void {
    for (const channel of rec.channels.values()) void channel.close();
    this.slices.delete(rec.name);
    // The slice's processes are stopped before a deletion is published, so nothing races this.
    if (!sliceStillExists) {
      removeDirectory(this.opts.sliceRoot, rec.name);
      this.fifos.forget(rec.name);
    }
  }

  private reconcile(rec: SliceVsys, grants: Map<string, Grant>, first: boolean): void {
    rec.grants = grants;
    const wanted = wantedFiles(grants);
    for (const [file, ino] of rec.files) {
      if (wanted.has(file)) continue;
      this.fifos.remove(rec.name, file, rec.uid, ino);
      rec.files.delete(file);
    }
    for (const file of rec.refused.keys()) if (!wanted.has(file)) rec.refused.delete(file);
    if (first) this.sweep(rec, wanted);

    // Make what is missing. At a slice's first sync (e.g. after a restart) the FIFOs sliced
    // made and recorded are adopted instead; anything else at their names is refused.
    const missing = [...wanted].filter((file) => !rec.files.has(file) && !(rec.refused.has(file) && exists(join(rec.dir, file))));
    const opened = new Map<string, OpenedFifo>();
    const refusedNow = new Set<string>();
    const take = (file: string, open: () => OpenedFifo | null): void => {
      try {
        const fifo = open();
        if (fifo !== null) opened.set(file, fifo);
      } catch (err) {
        refusedNow.add(file);
        this.refuse(rec, file, err);
      }
    };
    if (first) for (const file of missing) take(file, () => this.fifos.adopt(rec.name, file, rec.uid));
    const toMake = missing.filter((file) => !opened.has(file) && !refusedNow.has(file));
    // For a channel that exists already, a FIFO made now replaces one the slice removed.
    const remade = new Set<string>();
    // All at once or none yet (they are made when the stock is filled again): a slice sees
    // a service's FIFOs appear together.
    if (this.fifos.reserve(toMake.length)) {
      for (const file of toMake) {
        take(file, () => this.fifos.make(rec.name, file, rec));
        if (opened.has(file)) remade.add(file.slice(0, file.lastIndexOf('.')));
      }
    }
    const readers = new Map<string, number>();
    for (const [file, fifo] of opened) {
      rec.files.set(file, fifo.ino);
      rec.refused.delete(file);
      if (file.endsWith('.in')) readers.set(file, fifo.fd);
      else closeSync(fifo.fd);
    }

    for (const [service, channel] of rec.channels) {
      const grant = grants.get(service);
      if (grant && grantKey(grant) === grantKey(channel.grant)) continue;
      void channel.close();
      rec.channels.delete(service);
    }
    for (const [service, grant] of grants) {
      const reader = readers.get(`${service}.in`) ?? null;
      readers.delete(`${service}.in`);
      const channel = rec.channels.get(service);
      if (channel) {
        if (reader !== null || remade.has(service)) channel.fifosReplaced(reader);
        continue;
      }
      const created = new Channel(grant, {
        slice: rec.name,
        uid: rec.uid,
        dir: rec.dir,
        limits: this.opts.limits,
        slots: this.slots,
        events: this.events,
        inode: (file) => rec.files.get(file) ?? null,
        procsFiles: () => this.source.procsFiles(rec.name),
      });
      rec.channels.set(service, created);
      created.start(reader);
    }
    for (const fd of readers.values()) closeSync(fd);
  }

  /**
   * At a slice's first sync: remove its FIFOs of services it no longer has, and the FIFOs of
   * a former user of the slice's name (a slice deleted and made again while sliced was down
   * or before it synced: another uid, never root), wanted or not, so that fresh ones are made.
   * A root-owned FIFO is never touched here: it is refused and reported (refuse()).
   */
  private sweep(rec: SliceVsys, wanted: ReadonlySet<string>): void {
    this.fifos.forget(rec.name, wanted);
    for (const file of readdirSync(rec.dir)) {
      if (!/\.(in|out)$/.test(file)) continue;
      const path = join(rec.dir, file);
      try {
        const stats = lstatSync(path);
        if (!stats.isFIFO() || stats.uid === 0) continue;
        if (stats.uid !== rec.uid || !wanted.has(file)) unlinkSync(path);
      } catch {
        // Gone meanwhile.
      }
    }
  }

  private refuse(rec: SliceVsys, file: string, err: unknown): void {
    const message = err instanceof RefusedFile ? err.message : `${join(rec.dir, file)}: ${(err as Error).message}`;
    if (rec.refused.get(file) !== message) {
      this.events.record(
        'warn',
        { slice: rec.name, service: file.replace(/\.(in|out)$/, '') },
        `${message}; the slice gets nothing through it until it is removed`,
      );
    }
    rec.refused.set(file, message);
  }

  /** Look at every FIFO again: re-make removed ones (and ones not made yet), refuse substitutes. */
  private verify(): void {
    if (this.closed) return;
    for (const rec of this.slices.values()) {
      let changed = [...wantedFiles(rec.grants)].some((file) => !rec.files.has(file) && !rec.refused.has(file));
      for (const [file, ino] of rec.files) {
        const found = checkFifo(join(rec.dir, file), rec.uid, ino);
        if (found === 'ok') continue;
        rec.files.delete(file);
        if (found instanceof RefusedFile) this.refuse(rec, file, found);
        changed = true;
      }
      for (const file of rec.refused.keys()) if (!exists(join(rec.dir, file))) changed = true;
      if (!changed) continue;
      try {
        this.reconcile(rec, rec.grants, false);
      } catch (err) {
        this.events.record('error', { slice: rec.name }, `cannot repair the slice's vsys directory: ${(err as Error).message}`);
      }
    }
  }

  // ---- views and administration ----------------------------------------------------------

  /** Where services come from, and why none is offered when the directory is refused. */
  status(): VsysStatus {
    return { servicesDir: this.opts.servicesDir, sliceRoot: this.opts.sliceRoot, withdrawn: this.services.withdrawn };
  }

  listServices(): ServiceView[] {
    const granted = new Map<string, Record<string, AccessMode>>();
    for (const rec of this.slices.values()) {
      for (const grant of rec.grants.values()) {
        const key = `${grant.private ? rec.name : ''}/${grant.service}`;
        granted.set(key, { ...granted.get(key), [rec.name]: grant.mode });
      }
    }
    return this.services.services.map((s) => ({
      name: s.name,
      private: s.owner,
      script: s.script,
      stateful: s.acl?.stateful ?? false,
      acl: s.acl ? Object.fromEntries(s.acl.entries) : null,
      slices: granted.get(`${s.owner ?? ''}/${s.name}`) ?? {},
    }));
  }

  sliceView(slice: string): SliceVsysView {
    const rec = this.slices.get(slice);
    if (!rec) throw new SlicedError('ENOENT', `slice ${slice} does not exist (or its user is missing)`);
    return {
      slice,
      dir: rec.dir,
      services: [...rec.channels.values()].map((c) => c.status()).sort((a, b) => a.service.localeCompare(b.service)),
      refused: Object.fromEntries(rec.refused),
    };
  }

  log(filter: EventFilter): VsysEvent[] {
    return this.events.list(filter);
  }

  /**
   * `slicectl vsys call`: run a service for a slice as its FIFOs would, with the same ACL,
   * limits and concurrency slot, the output collected instead of written to `NAME.out`. A
   * stateful service runs as a fresh instance that gets EOF after the input; the slice's
   * own instance is left alone.
   */
  async adminCall(slice: string, service: string, input: Buffer): Promise<AdminCallResult> {
    if (!this.slices.has(slice)) throw new SlicedError('ENOENT', `slice ${slice} does not exist (or its user is missing)`);
    const grant = this.slices.get(slice)!.grants.get(service);
    if (!grant) {
      const known = this.services.services.some((s) => s.name === service);
      if (!known) throw new SlicedError('ENOENT', `no vsys service ${service} in ${this.opts.servicesDir}`);
      throw new SlicedError('EPERM', `slice ${slice} may not use vsys service ${service}: its ACL does not list the slice`);
    }
    if (input.length > 0 && !canWrite(grant.mode)) {
      throw new SlicedError(
        'EPERM',
        `slice ${slice} has only read access (r) to ${service}, so it cannot send input; call it with empty input`,
      );
    }
    if (input.length > this.opts.limits.maxInputBytes) {
      throw new SlicedError(
        'EINVAL',
        `input of ${input.length} bytes is over the vsys input limit of ${this.opts.limits.maxInputBytes} bytes`,
      );
    }
    const visible = canRead(grant.mode);
    const sink = visible ? new BufferSink() : new DiscardSink();
    const release = await this.slots.acquire(slice);
    const result = await runCall({
      grant,
      slice,
      input,
      sink,
      limits: this.opts.limits,
      events: this.events,
      procsFiles: this.source.procsFiles(slice),
      onExit: release,
    });
    const summary = describeCall(result, this.opts.limits);
    this.events.record(callFailed(result) ? 'warn' : 'info', { service, slice }, `${summary} (slicectl vsys call)`, { call: result });
    const output = sink instanceof BufferSink ? Buffer.concat(sink.chunks).toString('base64') : '';
    return { ...result, output, outputVisible: visible, summary, failed: callFailed(result) };
  }
}

/** The FIFOs a slice's grants call for: `NAME.in` to write to a service, `NAME.out` to read it. */
function wantedFiles(grants: ReadonlyMap<string, Grant>): Set<string> {
  const wanted = new Set<string>();
  for (const grant of grants.values()) {
    if (canWrite(grant.mode)) wanted.add(`${grant.service}.in`);
    if (canRead(grant.mode)) wanted.add(`${grant.service}.out`);
  }
  return wanted;
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
