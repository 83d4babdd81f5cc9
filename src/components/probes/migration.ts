/**
 * migration_probe (Kerrighed's): when a task last started to leave this node, and how many are leaving
 * now. Kerrighed's last_migration is a ktime_t in nanoseconds; here it is nanoseconds since
 * the epoch (so freq_limit_filter's last_event compares it with the wall clock).
 */
import type { ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const migration: ProbeType = {
  kind: 'probe',
  name: 'migration_probe',
  description: 'when a cluster task last left this node (by hand, a balancer or a drain; 0 before the first), and moves under way',
  // Read often: freq_limit_filter compares the next load update (once a second) with it.
  defaultPeriodMs: 100,
  sources: [
    { name: 'last_migration', valueType: 'ulong', description: 'nanoseconds since the epoch when a task last started to leave this node' },
    { name: 'migration_on_going', valueType: 'ulong', description: 'tasks leaving this node now (stopping here, not yet handed over)' },
  ],
  create(ctx) {
    const tasks = need(ctx, 'taskMigration');
    return {
      refresh([last, onGoing]) {
        last!.setRows(1);
        last!.set(0, 0, (tasks.lastMigration() ?? 0) * 1e6);
        onGoing!.setRows(1);
        onGoing!.set(0, 0, tasks.migrationsUnderWay());
      },
    };
  },
};

export default migration;
