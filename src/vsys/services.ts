/**
 * The services directory: scanned at start and again whenever inotify (fs.watch) reports a
 * change in it, in `pvt/` or in a `pvt/<slice>/` directory (debounced), plus a slow
 * periodic rescan in case an event was missed. Adding, replacing or removing a script or
 * an ACL therefore takes effect well within a second, without a restart.
 *
 * Only root-controlled files are used: the directory (and `pvt/<slice>/`) must belong to
 * root and not be writable by group or others, and so must each script and ACL; anything
 * else is logged and ignored (an ACL that cannot be trusted grants nothing).
 */
import { readdirSync, readFileSync, statSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { join } from 'node:path';
import { nameProblem } from '../core/names.js';
import { isSlicedError } from '../core/errors.js';
import { assertRootOnlyDirectory } from '../kernel/root-only.js';
import { parseAcl, type Acl } from './acl.js';
import type { ScannedService } from './catalog.js';
import type { VsysEvents } from './events.js';

const DEBOUNCE_MS = 50;
const RESCAN_MS = 10_000;
const ACL_SUFFIX = '.acl';
const CONF_SUFFIX = '.conf';

export class ServicesDirectory {
  private current: ScannedService[] = [];
  private signature = '';
  private readonly watchers = new Map<string, FSWatcher>();
  private debounce: NodeJS.Timeout | null = null;
  private periodic: NodeJS.Timeout | null = null;
  /** Last problem reported per file, so a rescan does not repeat it. */
  private reported = new Map<string, string>();
  /** Files looked at in the current scan -> their problem ('' when fine). */
  private seen = new Map<string, string>();
  /** Why nothing is offered at all (the directory itself is unsafe or unreadable), or null. */
  private withdrawnBecause: string | null = null;

  constructor(
    readonly dir: string,
    private readonly events: VsysEvents,
    private readonly onChange: () => void,
  ) {}

  get services(): readonly ScannedService[] {
    return this.current;
  }

  /** Why every service is withdrawn now, or null when the directory is in use. */
  get withdrawn(): string | null {
    return this.withdrawnBecause;
  }

  start(): void {
    this.rescan();
    this.periodic = setInterval(() => this.rescan(), RESCAN_MS);
    this.periodic.unref();
  }

  close(): void {
    if (this.debounce) clearTimeout(this.debounce);
    if (this.periodic) clearInterval(this.periodic);
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  /** Scan now; calls onChange if what is offered changed. */
  rescan(): void {
    const found: ScannedService[] = [];
    this.seen = new Map();
    const dirs: string[] = [];
    this.withdrawnBecause = null;
    try {
      assertRootOnlyDirectory(this.dir, 'vsys services directory');
      dirs.push(this.dir);
      this.scanDirectory(this.dir, null, found, dirs);
    } catch (err) {
      // Never offer anything from a directory someone else could have written.
      if (found.length === 0)
        this.withdrawnBecause = isSlicedError(err) ? err.message : `cannot scan ${this.dir}: ${(err as Error).message}`;
      this.report(
        this.dir,
        'error',
        isSlicedError(err) ? `${err.message}; no service is offered` : `cannot scan: ${(err as Error).message}`,
      );
    }
    // Forget problems that are gone, so they are reported again if they come back.
    this.reported = new Map([...this.reported].filter(([path]) => Boolean(this.seen.get(path))));
    this.watch(dirs);
    const signature = JSON.stringify(found, (_key, value: unknown) => (value instanceof Map ? [...value] : value));
    if (signature === this.signature) return;
    const before = new Set(this.current.map(label));
    const after = new Set(found.map(label));
    this.signature = signature;
    this.current = found;
    const added = [...after].filter((s) => !before.has(s));
    const removed = [...before].filter((s) => !after.has(s));
    this.events.record(
      'info',
      {},
      `services: ${found.length} ` +
        `offered${added.length ? `; added ${added.join(', ')}` : ''}${removed.length ? `; removed ${removed.join(', ')}` : ''}`,
    );
    this.onChange();
  }

  private scanDirectory(dir: string, owner: string | null, found: ScannedService[], dirs: string[]): void {
    const names = readdirSync(dir).sort();
    const present = new Set(names);
    for (const name of names) {
      const path = join(dir, name);
      if (owner === null && name === 'pvt') {
        this.scanPrivate(path, found, dirs);
        continue;
      }
      if (name.endsWith(ACL_SUFFIX)) {
        const script = name.slice(0, -ACL_SUFFIX.length);
        if (!present.has(script)) this.report(path, 'warn', `ACL for ${script}, which does not exist; ignored`);
        continue;
      }
      if (name.endsWith(CONF_SUFFIX)) continue; // a service's own configuration, never a service
      if (nameProblem(name) !== null) continue; // editor backups, hidden files
      const stats = this.trusted(path, 'service script');
      if (!stats) continue;
      if ((stats.mode & 0o111) === 0) {
        this.report(path, 'warn', 'is not executable; not offered');
        continue;
      }
      found.push({
        name,
        owner,
        script: path,
        version: `${stats.ino}:${stats.mtimeMs}:${stats.size}`,
        acl: present.has(name + ACL_SUFFIX) ? this.readAcl(path + ACL_SUFFIX, owner) : null,
      });
    }
  }

  private scanPrivate(pvt: string, found: ScannedService[], dirs: string[]): void {
    if (!this.trustedDirectory(pvt)) return;
    dirs.push(pvt);
    for (const slice of readdirSync(pvt).sort()) {
      const path = join(pvt, slice);
      const problem = nameProblem(slice);
      if (problem !== null) {
        this.report(path, 'warn', `slice name ${JSON.stringify(slice)} ${problem}; ignored`);
        continue;
      }
      if (!this.trustedDirectory(path)) continue;
      dirs.push(path);
      this.scanDirectory(path, slice, found, dirs);
    }
  }

  private trustedDirectory(path: string): boolean {
    try {
      assertRootOnlyDirectory(path, 'vsys directory');
      this.seen.set(path, '');
      return true;
    } catch (err) {
      this.report(path, 'error', `${(err as Error).message}; ignored`);
      return false;
    }
  }

  /** A script or ACL: a regular file of root's that only root can write, else null (reported). */
  private trusted(path: string, what: string): Stats | null {
    let stats: Stats;
    try {
      stats = statSync(path);
    } catch (err) {
      this.report(path, 'warn', `cannot read: ${(err as Error).message}`);
      return null;
    }
    const problem = !stats.isFile()
      ? 'is not a regular file'
      : stats.uid !== 0
        ? `belongs to uid ${stats.uid}, not root`
        : (stats.mode & 0o022) !== 0
          ? `has mode ${(stats.mode & 0o7777).toString(8).padStart(4, '0')}, writable by group or others`
          : null;
    if (problem !== null) {
      this.report(path, 'error', `${what} ${problem}; ignored`);
      return null;
    }
    this.seen.set(path, '');
    return stats;
  }

  private readAcl(path: string, owner: string | null): Acl {
    const untrusted: Acl = { stateful: false, entries: new Map(), problems: [] };
    if (!this.trusted(path, 'ACL')) return untrusted; // fail-closed: grants nothing
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      this.report(path, 'error', `cannot read: ${(err as Error).message}; grants nothing`);
      return untrusted;
    }
    const acl = parseAcl(text);
    const problems = acl.problems.map((p) => `line ${p.line}: ${p.message}`);
    if (owner !== null) {
      for (const slice of acl.entries.keys()) {
        if (slice !== owner) problems.push(`slice ${slice} is listed in the private directory of ${owner}; only ${owner} can use it`);
      }
    }
    if (problems.length > 0) this.report(path, 'warn', `bad lines ignored: ${problems.join('; ')}`);
    return acl;
  }

  /** Log a problem once per file (again only if it changes). */
  private report(path: string, level: 'warn' | 'error', message: string): void {
    this.seen.set(path, message);
    if (this.reported.get(path) === message) return;
    this.reported.set(path, message);
    this.events.record(level, {}, `${path}: ${message}`, { file: path });
  }

  private watch(dirs: string[]): void {
    const wanted = new Set(dirs);
    for (const [dir, watcher] of this.watchers) {
      if (!wanted.has(dir)) {
        watcher.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of wanted) {
      if (this.watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: false }, () => this.changed());
        watcher.on('error', () => {
          watcher.close();
          this.watchers.delete(dir);
          this.changed();
        });
        this.watchers.set(dir, watcher);
      } catch {
        // Gone meanwhile; the next scan settles it.
      }
    }
    // The top directory is watched even when it is refused, so fixing it takes effect at once.
    if (!this.watchers.has(this.dir)) {
      try {
        this.watchers.set(
          this.dir,
          watch(this.dir, { persistent: false }, () => this.changed()),
        );
      } catch {
        // Missing: the periodic rescan notices when it appears.
      }
    }
  }

  private changed(): void {
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.rescan();
    }, DEBOUNCE_MS);
  }
}

function label(service: ScannedService): string {
  return service.owner === null ? service.name : `pvt/${service.owner}/${service.name}`;
}
