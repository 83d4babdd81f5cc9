/**
 * tc driver for slice rates. Everything a slice sends enters the host through its veth; an
 * ingress filter there redirects it to one IFB device, whose HTB root holds the node's
 * capacity. u32 filters on the IFB put each packet into its slice's class by source address
 * (v4 and v6). Each class has the slice's guaranteed rate (net_min_rate) and ceiling
 * (net_max_rate), so guarantees hold under contention and spare capacity is shared; changing
 * a rate is one `class replace`. (skbedit, which could tag the class at the veth, is not in
 * every kernel; u32 and mirred are.)
 */
import { linkExists } from './ip.js';
import { mustRun, runTool } from './run.js';
import { SlicedError } from '../../core/errors.js';

/** Rate of a slice's class when it has no guaranteed rate: it then borrows what is spare. */
export const UNGUARANTEED_RATE = 8000;
const DEFAULT_CLASS = 0xffff;

export interface SliceRate {
  veth: string;
  /** The slice's addresses, without prefix length. */
  v4: string;
  v6: string;
  /** HTB minor number of the slice's class, 2..0xfffe. */
  classMinor: number;
  minRate: number | null;
  maxRate: number | null;
}

export function classMinorFor(index: number): number {
  // HTB minors are 16 bits; 1 is the root class and 0xffff the default one. A v4 pool is at
  // most a /17, so the filter priorities (two per slice, 16 bits) fit too.
  return index + 2;
}

/** Filter priorities of a slice's v4 and v6 classifiers on the IFB (one protocol per priority). */
function priorities(classMinor: number): [number, number] {
  return [classMinor * 2, classMinor * 2 + 1];
}

/** Bytes a class may send per round: scaled with the rate, within what HTB accepts without warnings. */
function quantum(rate: number): number {
  return Math.min(200_000, Math.max(1514, Math.round(rate / 8 / 10)));
}

/** The IFB device and its HTB tree root; idempotent (replace). */
export async function ensureShaper(ifb: string, capacity: number): Promise<void> {
  if (!linkExists(ifb)) await mustRun('ip', ['link', 'add', ifb, 'type', 'ifb']);
  await mustRun('ip', ['link', 'set', ifb, 'up']);
  // HTB refuses "replace" of its own root ("change not supported"): add it only when missing.
  const root = (await hasQdisc(ifb, /^qdisc htb 1: root/m))
    ? []
    : [`qdisc add dev ${ifb} root handle 1: htb default ${DEFAULT_CLASS.toString(16)}`];
  await mustRun(
    'tc',
    ['-b', '-'],
    [
      ...root,
      `class replace dev ${ifb} parent 1: classid 1:1 htb rate ${capacity}bit ceil ${capacity}bit`,
      `class replace dev ${ifb} parent 1:1 classid 1:${DEFAULT_CLASS.toString(16)} htb rate ${UNGUARANTEED_RATE}bit ceil ` +
        `${capacity}bit quantum ${quantum(UNGUARANTEED_RATE)}`,
    ].join('\n'),
  );
}

/**
 * The slice's class, the redirect of its veth's ingress and its classifiers. `fresh`: the
 * veth was just made and the slice's filters do not exist (one tc call); otherwise what
 * exists is checked and rewritten (at start, when adopting).
 */
export async function applySliceRate(ifb: string, capacity: number, rate: SliceRate, fresh: boolean): Promise<void> {
  const minor = rate.classMinor.toString(16);
  const [p4, p6] = priorities(rate.classMinor);
  const lines = [classLine(ifb, capacity, rate)];
  if (fresh || !(await hasQdisc(rate.veth, /^qdisc ingress ffff:/m))) lines.push(`qdisc add dev ${rate.veth} handle ffff: ingress`);
  if (fresh || !(await mustRun('tc', ['filter', 'show', 'dev', rate.veth, 'parent', 'ffff:'])).includes('mirred')) {
    lines.push(`filter add dev ${rate.veth} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ${ifb}`);
  }
  // u32 has no idempotent "replace" by key: adopted classifiers are deleted and added again.
  if (!fresh)
    await runTool(
      'tc',
      ['-b', '-'],
      [`filter del dev ${ifb} parent 1: prio ${p4}`, `filter del dev ${ifb} parent 1: prio ${p6}`].join('\n'),
    );
  lines.push(
    `filter add dev ${ifb} parent 1: protocol ip prio ${p4} u32 match ip src ${rate.v4}/32 flowid 1:${minor}`,
    `filter add dev ${ifb} parent 1: protocol ipv6 prio ${p6} u32 match ip6 src ${rate.v6}/128 flowid 1:${minor}`,
  );
  await mustRun('tc', ['-b', '-'], lines.join('\n'));
}

/** Change a slice's rates at run time: one class replace. */
export async function changeSliceRate(ifb: string, capacity: number, rate: SliceRate): Promise<void> {
  await mustRun('tc', [...classLine(ifb, capacity, rate).split(' ')]);
}

function classLine(ifb: string, capacity: number, rate: SliceRate): string {
  const ceil = rate.maxRate ?? capacity;
  const guaranteed = Math.min(rate.minRate ?? UNGUARANTEED_RATE, ceil);
  return (
    `class replace dev ${ifb} parent 1:1 classid 1:${rate.classMinor.toString(16)} htb rate ${guaranteed}bit ceil ${ceil}bit quantum ` +
    `${quantum(guaranteed)}`
  );
}

async function hasQdisc(dev: string, pattern: RegExp): Promise<boolean> {
  return pattern.test(await mustRun('tc', ['qdisc', 'show', 'dev', dev]));
}

export async function removeSliceRate(ifb: string, classMinor: number): Promise<void> {
  if (!linkExists(ifb)) return;
  const [p4, p6] = priorities(classMinor);
  const batch = [
    `filter del dev ${ifb} parent 1: prio ${p4}`,
    `filter del dev ${ifb} parent 1: prio ${p6}`,
    `class del dev ${ifb} classid 1:${classMinor.toString(16)}`,
  ];
  // -force: go on past filters that are gone already; what matters is that the class is gone.
  const result = await runTool('tc', ['-force', '-b', '-'], batch.join('\n'));
  if (result.code !== 0 && (await listClasses(ifb)).includes(classMinor)) {
    throw new SlicedError('EIO', `tc class del dev ${ifb} classid 1:${classMinor.toString(16)} failed: ${result.stderr.trim()}`);
  }
}

/** Minor numbers of the slice classes on the IFB device (not the root or default class). */
export async function listClasses(ifb: string): Promise<number[]> {
  if (!linkExists(ifb)) return [];
  // tc 6.1 prints htb classes as text even with -j: "class htb 1:2 parent 1:1 ...".
  const out = await mustRun('tc', ['class', 'show', 'dev', ifb]);
  return [...out.matchAll(/^class htb 1:([0-9a-f]+)/gm)]
    .map((m) => parseInt(m[1]!, 16))
    .filter((minor) => minor > 1 && minor !== DEFAULT_CLASS);
}
