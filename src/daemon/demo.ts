/**
 * `sliced --demo`: the daemon plus a live demonstration. It creates a few slices with
 * different reservations, limits and shares and a capped scheduling domain, runs CPU
 * burners in all of them, and redraws a table of entitlement against measured use every
 * second. Half-way through each minute the reserved slice goes idle and its guarantee is
 * lent to the others, then it comes back. Ctrl-C removes every demo object.
 */
import type { ChildProcess } from 'node:child_process';
import type { Daemon } from './daemon.js';
import { spawnInSlice } from '../kernel/spawn.js';
import { statusTable, type StatusDocument } from '../wire/status.js';
import { parseInput, sliceCreateSchema, domainCreateSchema } from '../core/model.js';

const DOMAIN = { name: 'demo-batch', cpu: { limit: '600m' } };
const SLICES = [
  { name: 'demo-web', cpu: { reservation: '800m', shares: 100 }, burners: 2 },
  { name: 'demo-db', cpu: { shares: 400 }, burners: 2 },
  { name: 'demo-ci', cpu: { limit: '300m', shares: 100 }, burners: 2 },
  { name: 'demo-batch-a', cpu: { shares: 100 }, domain: DOMAIN.name, burners: 2 },
  { name: 'demo-batch-b', cpu: { shares: 300 }, domain: DOMAIN.name, burners: 2 },
];
const BURN = ['/bin/sh', '-c', 'while :; do :; done'];
const IDLE_SLICE = 'demo-web';

export interface DemoHandle {
  stop(): Promise<void>;
}

export async function runDemo(daemon: Daemon): Promise<DemoHandle> {
  const { agent, views } = daemon;
  await removeDemoObjects(daemon);
  await daemon.changes.run({ kind: 'domain.create', input: parseInput(domainCreateSchema, DOMAIN, 'demo domain') }, null);
  const burners = new Map<string, ChildProcess[]>();
  const startBurners = (slice: string, count: number): void => {
    const plan = agent.execPlan(slice, process.pid);
    const children: ChildProcess[] = [];
    for (let i = 0; i < count; i++) children.push(spawnInSlice(plan, BURN, { stdio: 'ignore' }));
    burners.set(slice, children);
  };
  for (const slice of SLICES) {
    const { burners: count, ...spec } = slice;
    await daemon.changes.run({ kind: 'slice.create', input: parseInput(sliceCreateSchema, spec, 'demo slice') }, null);
    startBurners(slice.name, count);
  }

  const started = Date.now();
  let phase = 'all slices busy';
  const draw = (): void => {
    const seconds = Math.floor((Date.now() - started) / 1000);
    const idleNow = seconds % 60 >= 30;
    const webRunning = (burners.get(IDLE_SLICE) ?? []).length > 0;
    if (idleNow && webRunning) {
      for (const child of burners.get(IDLE_SLICE) ?? []) child.kill('SIGKILL');
      burners.set(IDLE_SLICE, []);
      phase = `${IDLE_SLICE} idle: its 800m reservation is lent to the others`;
    } else if (!idleNow && !webRunning) {
      startBurners(IDLE_SLICE, 2);
      phase = `${IDLE_SLICE} busy again: it gets its reservation back within a control period or two`;
    }
    const status: StatusDocument = {
      node: views.node() as unknown as StatusDocument['node'],
      slices: views.slices(true),
      domains: views.domains(true),
    };
    process.stdout.write('\x1b[H\x1b[2J');
    process.stdout.write(`sliced demo — ${seconds}s — ${phase}\n`);
    process.stdout.write(`${statusTable(status)}\n\n`);
    process.stdout.write(
      `logs: ${daemon.config.logFile ?? 'stderr'}   API: ${daemon.config.socket}   try: slicectl status, slicectl top, slicectl tree   stop: Ctrl-C\n`,
    );
    if (daemon.web) process.stdout.write(`dashboard: ${daemon.web.signInUrl}\n`);
  };
  const timer = setInterval(draw, 1000);
  draw();

  return {
    async stop() {
      clearInterval(timer);
      process.stdout.write('\nremoving demo slices...\n');
      await removeDemoObjects(daemon);
    },
  };
}

async function removeDemoObjects(daemon: Daemon): Promise<void> {
  const { agent } = daemon;
  for (const name of [...agent.state.slices.keys()])
    if (name.startsWith('demo-')) await daemon.changes.run({ kind: 'slice.delete', name }, null);
  for (const name of [...agent.state.domains.keys()])
    if (name.startsWith('demo-')) await daemon.changes.run({ kind: 'domain.delete', name }, null);
}
