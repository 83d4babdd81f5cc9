/**
 * swap_avoidance: under memory pressure (some_avg10 at or above `high` percent on its
 * memory_pressure port, from /probes/psi/memory) it refuses new tasks of the processes it
 * holds and freezes the lowest-priority busy slice (fewest shares); when pressure falls
 * below `low` it thaws every slice it froze, in reverse order.
 *
 * With the nodes' pressures (through remote_cache) it places a cluster task away from the
 * nodes under pressure: no opinion while none of the task's nodes is, the least pressured
 * of the others when some are (or one it has not heard from), a refusal naming each node's
 * pressure when all are.
 */
import { numberAttribute, type NewTask, type PlacementAnswer, type PolicyType } from '../../framework/types.js';
import { swapVictim } from '../../core/load-balancing.js';
import { bestOf, nodeSums } from './nodes.js';

const swapAvoidance: PolicyType = {
  kind: 'policy',
  name: 'swap_avoidance',
  description: 'under memory pressure refuses new tasks and freezes the lowest-priority busy slice; thaws when pressure falls',
  ports: [{ name: 'memory_pressure', valueType: 'pressure', description: 'memory pressure: /probes/psi/memory' }],
  attributes: [
    numberAttribute('high', 'memory pressure (some avg10, percent) at which it acts', { default: 10, min: 0, max: 100 }),
    numberAttribute('low', 'memory pressure below which it thaws what it froze (at most high)', { default: 2, min: 0, max: 100 }),
  ],
  create(ctx) {
    // Without the freezer service it only refuses new tasks under pressure.
    const freezer = ctx.services.sliceFreezer;
    const frozen: string[] = [];
    let pressure = 0;
    let underPressure = false;
    return {
      onUpdate(_port, value) {
        pressure = nodeSums(value, ctx.services.nodeName, 0).get(ctx.services.nodeName) ?? 0;
        if (pressure >= (ctx.attrs.high as number)) {
          underPressure = true;
          if (!freezer) return;
          const victim = swapVictim(freezer.candidates(), new Set(frozen));
          if (victim && frozen.length === 0) {
            freezer.setFrozen(victim, true);
            frozen.push(victim);
            ctx.log.warn({ policy: ctx.path, pressure, slice: victim }, 'swap_avoidance: memory pressure; slice frozen');
          }
        } else if (pressure < (ctx.attrs.low as number)) {
          underPressure = false;
          while (frozen.length > 0) {
            const slice = frozen.pop()!;
            try {
              freezer?.setFrozen(slice, false);
              ctx.log.info({ policy: ctx.path, pressure, slice }, 'swap_avoidance: pressure fell; slice thawed');
            } catch (err) {
              ctx.log.warn({ policy: ctx.path, slice, err: (err as Error).message }, 'swap_avoidance: cannot thaw (slice gone?)');
            }
          }
        }
      },
      newTaskNode(task: NewTask): PlacementAnswer {
        const high = ctx.attrs.high as number;
        const pressures = nodeSums(ctx.ports?.memory_pressure ?? null, ctx.services.nodeName, 0);
        const known = task.nodes?.filter((n) => pressures.has(n)) ?? [];
        // A local new task, or a cluster task none of whose nodes it knows: this node's pressure.
        if (known.length === 0) return underPressure ? { refuse: `memory pressure ${pressure}% is at or above ${high}%` } : null;
        const pressed = known.filter((n) => pressures.get(n)! >= high);
        if (pressed.length === 0) return null;
        const calm = new Map([...pressures].filter(([n, p]) => known.includes(n) && p < high));
        if (calm.size > 0) return bestOf(calm, known, 'smallest');
        // A node whose pressure it has not heard is no worse than those it knows are pressed.
        const unheard = task.nodes!.find((n) => !pressures.has(n));
        if (unheard !== undefined) return unheard;
        const each = pressed.map((n) => `${n} ${pressures.get(n)}%`).join(', ');
        return { refuse: `memory pressure is at or above ${high}% on every node of the task: ${each}` };
      },
      configure() {
        if ((ctx.attrs.low as number) > (ctx.attrs.high as number))
          throw new Error(`low ${ctx.attrs.low} must not be above high ${ctx.attrs.high}`);
      },
      destroy() {
        // Never leave a slice frozen behind a policy that no longer exists.
        while (frozen.length > 0) {
          try {
            freezer?.setFrozen(frozen.pop()!, false);
          } catch {
            // slice gone
          }
        }
      },
      status: () => ({ pressure, underPressure, frozen }),
    };
  },
};

export default swapAvoidance;
