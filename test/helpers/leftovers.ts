/**
 * The leftovers audit: every kernel object, file and process on this machine that carries one
 * of sliced's names (cgroups "sliced*", users "sl-*", namespaces "sliced*", links
 * slbr/slv/slifb/sletcd, nft tables "sliced*", loop devices over "sliced*" files, "sliced*"
 * entries of /tmp, /var/tmp and /run, mounts below them, sliced's and the tests' etcd and qemu
 * processes, processes of sl-* users). A test file's objects are those listed at its end that
 * were not there at its start (`since`); test/helpers/leftovers-hook.ts fails every file that
 * leaves one, and the soak and chaos runs call it too.
 *
 * Each object is one line naming its kind and where it is ("cgroup memory:/sliced-t12-1",
 * "process 4242 (sl-web) sleep 60"), so a failure's list can be acted on by hand.
 */
import { readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { basename, join } from 'node:path';

const OURS = /^sliced/;
const LINKS = /^(slbr|slv|slifb|sletcd)/;
const USERS = /^sl-/;
/** How deep below a hierarchy's root a sliced group may sit (under a delegated service's group). */
const CGROUP_DEPTH = 5;
const TEMP_DIRS = ['/tmp', '/var/tmp', '/run'];

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Mounted cgroup hierarchies: "name" (v1 controllers joined by ",", or "unified") → mount point. */
function hierarchies(): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of readText('/proc/self/mounts').split('\n')) {
    const [, point, type, options] = line.split(' ');
    if (point === undefined || options === undefined) continue;
    if (type === 'cgroup2') found.set('unified', point);
    if (type === 'cgroup') {
      const controllers = options.split(',').filter((o) => !['rw', 'ro', 'nosuid', 'nodev', 'noexec', 'relatime'].includes(o));
      found.set(controllers.join(','), point);
    }
  }
  return found;
}

function cgroups(): string[] {
  const found: string[] = [];
  for (const [name, root] of hierarchies()) {
    const walk = (dir: string, depth: number): void => {
      for (const entry of entries(dir)) {
        const path = join(dir, entry);
        let isDir = false;
        try {
          isDir = statSync(path).isDirectory();
        } catch {
          continue; // removed while we looked
        }
        if (!isDir) continue;
        // A sliced group is listed once: what is inside it goes with it.
        if (OURS.test(entry)) found.push(`cgroup ${name}:${path.slice(root.length)}`);
        else if (depth < CGROUP_DEPTH) walk(path, depth + 1);
      }
    };
    walk(root, 1);
  }
  return found;
}

function users(): string[] {
  const passwd = readText('/etc/passwd')
    .split('\n')
    .map((l) => l.split(':')[0] ?? '')
    .filter((n) => USERS.test(n))
    .map((n) => `user ${n}`);
  const groups = readText('/etc/group')
    .split('\n')
    .map((l) => l.split(':')[0] ?? '')
    .filter((n) => USERS.test(n))
    .map((n) => `group ${n}`);
  return [...passwd, ...groups];
}

function network(): string[] {
  const netns = entries('/run/netns')
    .filter((n) => OURS.test(n))
    .map((n) => `netns ${n}`);
  const links = entries('/sys/class/net')
    .filter((l) => LINKS.test(l))
    .map((l) => `link ${l}`);
  const nft = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' });
  const tables = (nft.stdout ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => OURS.test(l.split(' ')[2] ?? ''))
    .map((l) => `nft ${l}`);
  return [...netns, ...links, ...tables];
}

function loopDevices(): string[] {
  const found: string[] = [];
  for (const entry of entries('/sys/block').filter((d) => d.startsWith('loop'))) {
    const backing = readText(`/sys/block/${entry}/loop/backing_file`).trim();
    if (backing !== '' && OURS.test(basename(backing))) found.push(`loop /dev/${entry} over ${backing}`);
  }
  return found;
}

function files(): string[] {
  return TEMP_DIRS.flatMap((dir) =>
    entries(dir)
      .filter((e) => OURS.test(e))
      .map((e) => `path ${join(dir, e)}`),
  );
}

function mounts(): string[] {
  return readText('/proc/self/mountinfo')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((point) => point.split('/').some((part) => OURS.test(part)))
    .map((point) => `mount ${point}`);
}

/** This process and its ancestors: the test runner is never a leftover. */
function ancestors(): Set<number> {
  const found = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !found.has(pid)) {
    found.add(pid);
    const stat = readText(`/proc/${pid}/stat`);
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return found;
}

function processes(): string[] {
  const own = ancestors();
  const slUids = new Map<number, string>();
  for (const line of readText('/etc/passwd').split('\n')) {
    const [name, , uid] = line.split(':');
    if (name !== undefined && USERS.test(name)) slUids.set(Number(uid), name);
  }
  const found: string[] = [];
  for (const entry of entries('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || own.has(pid)) continue;
    const cmdline = readText(`/proc/${pid}/cmdline`).split('\0').filter(Boolean);
    if (cmdline.length === 0) continue; // a kernel thread, or gone
    const status = readText(`/proc/${pid}/status`);
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    const line = cmdline.join(' ');
    let exe = '';
    try {
      exe = basename(readlinkSync(`/proc/${pid}/exe`));
    } catch {
      // A zombie, or gone.
    }
    const sliced = /\/bin\/(sliced|slicectl)\.js\b/.test(line) || /\/sliced[^ ]*\/dist\//.test(line);
    const etcd = exe === 'etcd' && line.includes('/sliced-etcd-');
    const qemu = exe.startsWith('qemu-system') && line.includes('sliced');
    const owner = slUids.get(uid);
    if (sliced || etcd || qemu || owner !== undefined) found.push(`process ${pid}${owner ? ` (${owner})` : ''} ${line.slice(0, 160)}`);
  }
  return found;
}

/** Everything of sliced's on this machine now, one line per object, sorted. */
export function machineObjects(): string[] {
  return [...cgroups(), ...users(), ...network(), ...loopDevices(), ...files(), ...mounts(), ...processes()].sort();
}

/** The objects listed now that `before` did not hold. */
export function since(before: Iterable<string>): string[] {
  const old = new Set(before);
  return machineObjects().filter((o) => !old.has(o));
}

/**
 * The objects new since `before`, after giving what is being torn down (a process being
 * reaped, a group whose last task exits) up to `graceMs` to go.
 */
export async function leftoversSince(before: Iterable<string>, graceMs = 3000): Promise<string[]> {
  const snapshot = [...before];
  const deadline = Date.now() + graceMs;
  for (;;) {
    const left = since(snapshot);
    if (left.length === 0 || Date.now() >= deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * As a command (scripts/test runs it around the whole suite):
 *   node --import tsx test/helpers/leftovers.ts --save FILE    write today's list to FILE
 *   node --import tsx test/helpers/leftovers.ts --since FILE   print what is new since FILE; exit 1 if anything
 *   node --import tsx test/helpers/leftovers.ts                print everything of sliced's
 */
if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  const flag = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const save = flag('--save');
  const before = flag('--since');
  if (save !== undefined) writeFileSync(save, `${JSON.stringify(machineObjects())}\n`);
  else if (before !== undefined) {
    const left = await leftoversSince(JSON.parse(readFileSync(before, 'utf8')) as string[]);
    if (left.length > 0) {
      process.stderr.write(
        `LEFTOVERS of the test run: ${left.length} object(s) of sliced's that were not there before it:\n${left.map((l) => `  ${l}\n`).join('')}`,
      );
      process.exitCode = 1;
    }
  } else for (const object of machineObjects()) process.stdout.write(`${object}\n`);
}
