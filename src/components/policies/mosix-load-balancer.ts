/**
 * mosix_load_balancer: Kerrighed's MOSIX-like balancer (rule in src/core/load-balancing.ts).
 * Activated by updates on node_load. With per-CPU loads (rows cpu0.., from
 * /probes/cpu/cpu_load) it balances the processes of its process set across the CPUs of
 * this node by changing their CPU affinity; with node loads from other nodes it decides the
 * same way and moves the chosen migratable cluster task to the target node: stopped where it
 * runs and started again there (live migration is not available: docs/ARCHITECTURE.md, CRIU
 * fails on this kernel). Processes that are not migratable tasks are not candidates then.
 */
import type { PolicyType } from '../../framework/types.js';
import { mosixDecision, type Migration } from '../../core/load-balancing.js';
import { nodeLoads } from './nodes.js';

const mosix: PolicyType = {
  kind: 'policy',
  name: 'mosix_load_balancer',
  description:
    'moves a process from the most loaded CPU (or node) when the MOSIX rule says it pays: local >= 1.5 x its load, >= 2 s since the ' +
    'last move, target load + 1.3 x its load below the local load',
  ports: [
    { name: 'node_load', valueType: 'load', description: 'loads of the places to balance: /probes/cpu/cpu_load (CPUs) or node loads' },
    { name: 'process_load', valueType: 'process_load', description: 'loads of processes: /probes/cpu/process_load' },
  ],
  create(ctx) {
    // Without the affinity service (a host other than sliced) it advises instead of moving CPUs;
    // without the task service it advises instead of moving tasks between nodes.
    const affinity = ctx.services.affinity;
    const tasks = ctx.services.taskMigration;
    let lastMigrationAt = -Infinity;
    let last: (Migration & { acted: boolean; at: string; task?: string }) | null = null;
    let migrations = 0;
    return {
      onUpdate(port, value, now) {
        if (port !== 0) return;
        const procLoads = ctx.ports!.process_load;
        if (!procLoads) return;
        let perCpu = value.rows > 0;
        for (let r = 0; r < value.rows; r++) if (!/^cpu\d+$/.test(value.labels[r] ?? `cpu${r}`)) perCpu = false;
        const loads = new Map<string, number>();
        if (perCpu) for (let r = 0; r < value.rows; r++) loads.set(value.labels[r] ?? `cpu${r}`, value.get(r, 0));
        else for (const [node, load] of nodeLoads(value, ctx.services.nodeName)) loads.set(node, load);
        if (loads.size < 2) return;
        // A set that handles all processes lists none by pid: every process is a member.
        const all = ctx.processSet!.handleAll;
        const members = new Set(all ? [] : ctx.processSet!.pids());
        const processes = [];
        for (let r = 0; r < procLoads.rows; r++) {
          const pid = Number(procLoads.labels[r]);
          if (!all && !members.has(pid)) continue;
          // Between nodes only a migratable task can move: other processes are not candidates.
          if (!perCpu && tasks && tasks.taskOf(pid) === null) continue;
          const cpu = perCpu ? affinity?.cpuOf(pid) : null;
          processes.push({ pid, load: procLoads.get(r, 0), place: perCpu ? `cpu${cpu}` : ctx.services.nodeName });
        }
        const decision = mosixDecision({ now, lastMigrationAt, loads, processes, ...(perCpu ? {} : { local: ctx.services.nodeName }) });
        if (!decision) return;
        lastMigrationAt = now;
        let acted = false;
        let task: string | undefined;
        if (perCpu && affinity) {
          try {
            affinity.pinToCpu(decision.pid, Number(decision.to.slice(3)));
            acted = true;
            migrations++;
          } catch (err) {
            ctx.log.warn(
              { policy: ctx.path, pid: decision.pid, err: (err as Error).message },
              'mosix_load_balancer: cannot move the process',
            );
          }
        } else if (!perCpu && tasks) {
          task = tasks.taskOf(decision.pid) ?? undefined;
          if (task !== undefined) {
            acted = true;
            migrations++;
            const moving = task;
            tasks
              .migrate(moving, decision.to, 'mosix_load_balancer')
              .catch((err: Error) =>
                ctx.log.warn(
                  { policy: ctx.path, task: moving, to: decision.to, err: err.message },
                  'mosix_load_balancer: cannot move the task',
                ),
              );
          }
        }
        last = { ...decision, acted, at: new Date().toISOString(), ...(task !== undefined ? { task } : {}) };
        ctx.log.info(
          { policy: ctx.path, ...last },
          acted ? 'mosix_load_balancer: moved a process' : 'mosix_load_balancer: migration advised (not possible on this node)',
        );
      },
      status: () => ({ migrations, last }),
    };
  },
};

export default mosix;
