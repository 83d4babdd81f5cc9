/**
 * mosix_load_balancer: Kerrighed's MOSIX-like balancer (rules in src/core/load-balancing.ts),
 * wired one of two ways.
 *
 * Ours: activated by updates on node_load. With per-CPU loads (rows cpu0.., from
 * /probes/cpu/cpu_load) it balances the processes of its process set across the CPUs of this
 * node by changing their CPU affinity; with node loads from other nodes it decides the same way
 * and moves the chosen migratable cluster task to the target node. The 1.5 x and 2 s rules are
 * its own.
 *
 * Kerrighed's (its legacy setup script runs as it is): activated by updates on local_load,
 * which arrive through Kerrighed's threshold and freq_limit filters (the 1.5 x and 2 s rules
 * live there); remote_load and single_process_load through remote_cache_filter give the other
 * nodes' figures; the process with the second-highest process_load moves to the node with the
 * lowest remote_load + single_process_load x stab_factor / 100, if below the local load.
 *
 * Between nodes a task moves by stopping where it runs and starting again there (live
 * migration is not available: docs/ARCHITECTURE.md, CRIU fails on this kernel); processes that
 * are not migratable tasks are not candidates then.
 */
import { numberAttribute, type PolicyType } from '../../framework/types.js';
import { kerrighedMosixDecision, mosixDecision, type Migration } from '../../core/load-balancing.js';
import type { Value } from '../../framework/value.js';
import { nodeLoads, nodeSums } from './nodes.js';

/** Indices of the ports below that activate the policy. */
const enum Port {
  NodeLoad = 0,
  LocalLoad = 2,
}

const mosix: PolicyType = {
  kind: 'policy',
  name: 'mosix_load_balancer',
  description:
    'moves a process from the most loaded CPU (or node) when the MOSIX rule says it pays: local >= 1.5 x its load, >= 2 s since the ' +
    'last move, target load + stab_factor % of its load below the local load',
  ports: [
    { name: 'node_load', valueType: 'load', description: 'loads of the places to balance: /probes/cpu/cpu_load (CPUs) or node loads' },
    {
      name: 'process_load',
      valueType: 'process_load',
      alsoLinks: ['ulong_by_pid'],
      description: "loads of processes: /probes/cpu/process_load or Kerrighed's /probes/mosix_probe/process_load",
    },
    { name: 'local_load', valueType: 'ulong', description: "Kerrighed's: this node's load, its updates activate the policy" },
    { name: 'remote_load', valueType: 'ulong', description: "Kerrighed's: the nodes' loads, through remote_cache_filter" },
    {
      name: 'single_process_load',
      valueType: 'ulong',
      description: "Kerrighed's: the load one process adds on each node, through remote_cache_filter",
    },
  ],
  attributes: [
    numberAttribute('stab_factor', "percent of the moved process's load counted against the target (Kerrighed's, default 130)", {
      default: 130,
      min: 0,
      max: 10_000,
      integer: true,
    }),
  ],
  create(ctx) {
    // Without the affinity service (a host other than sliced) it advises instead of moving CPUs;
    // without the task service it advises instead of moving tasks between nodes.
    const affinity = ctx.services.affinity;
    const tasks = ctx.services.taskMigration;
    const self = ctx.services.nodeName;
    let lastMigrationAt = -Infinity;
    let last: (Migration & { acted: boolean; at: string; task?: string }) | null = null;
    let migrations = 0;

    /** Processes of the set on the process_load port; between nodes only migratable tasks can move. */
    const candidates = (betweenNodes: boolean): Array<{ pid: number; load: number }> => {
      const procLoads = ctx.ports!.process_load;
      if (!procLoads) return [];
      // A set that handles all processes lists none by pid: every process is a member.
      const all = ctx.processSet!.handleAll;
      const members = new Set(all ? [] : ctx.processSet!.pids());
      const out = [];
      for (let r = 0; r < procLoads.rows; r++) {
        const pid = Number(procLoads.labels[r]);
        if (!all && !members.has(pid)) continue;
        if (betweenNodes && tasks && tasks.taskOf(pid) === null) continue;
        out.push({ pid, load: procLoads.get(r, 0) });
      }
      return out;
    };

    /** Carry out a decision: pin to the CPU, or move the task to the node; else it stays advice. */
    const act = (decision: Migration, perCpu: boolean, now: number): void => {
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
    };

    /** Ours: node_load decides, with the 1.5 x and 2 s rules. */
    const ourRule = (value: Value, now: number): void => {
      let perCpu = value.rows > 0;
      for (let r = 0; r < value.rows; r++) if (!/^cpu\d+$/.test(value.labels[r] ?? `cpu${r}`)) perCpu = false;
      const loads = new Map<string, number>();
      if (perCpu) for (let r = 0; r < value.rows; r++) loads.set(value.labels[r] ?? `cpu${r}`, value.get(r, 0));
      else for (const [node, load] of nodeLoads(value, self)) loads.set(node, load);
      if (loads.size < 2) return;
      const processes = candidates(!perCpu).map((p) => ({
        ...p,
        place: perCpu ? `cpu${affinity?.cpuOf(p.pid)}` : self,
      }));
      const decision = mosixDecision({
        now,
        lastMigrationAt,
        loads,
        processes,
        penalty: (ctx.attrs.stab_factor as number) / 100,
        ...(perCpu ? {} : { local: self }),
      });
      if (decision) act(decision, perCpu, now);
    };

    /** Kerrighed's: an update on local_load (past its filters) decides against the other nodes. */
    const kerrighedRule = (value: Value, now: number): void => {
      if (value.rows === 0) return;
      const localLoad = value.get(0, 0);
      const loads = nodeSums(ctx.ports!.remote_load ?? null, self, 0);
      const singles = nodeSums(ctx.ports!.single_process_load ?? null, self, 0);
      const remote = new Map<string, { load: number; singleProcessLoad: number | undefined }>();
      for (const [node, load] of loads) if (node !== self) remote.set(node, { load, singleProcessLoad: singles.get(node) });
      const decision = kerrighedMosixDecision({
        localLoad,
        remote,
        processes: candidates(true),
        stabFactor: ctx.attrs.stab_factor as number,
      });
      if (decision) act({ ...decision, from: self, localLoad }, false, now);
    };

    return {
      onUpdate(port, value, now) {
        if (port === Port.NodeLoad) ourRule(value, now);
        else if (port === Port.LocalLoad) kerrighedRule(value, now);
      },
      status: () => ({ migrations, last }),
    };
  },
};

export default mosix;
