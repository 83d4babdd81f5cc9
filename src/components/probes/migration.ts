/** migration_probe (Kerrighed's name): when a task last left this node, as Kerrighed's last_migration. */
import type { ProbeType } from '../../framework/types.js';
import { need } from '../../framework/handle.js';

const migration: ProbeType = {
  kind: 'probe',
  name: 'migration_probe',
  description: 'when a cluster task last left this node (migrated by hand, by a balancer or by a drain); 0 before the first',
  defaultPeriodMs: 1000,
  sources: [
    { name: 'last_migration', valueType: 'time', description: 'seconds since the epoch of the last migration away from this node' },
  ],
  create(ctx) {
    const tasks = need(ctx, 'taskMigration');
    return {
      refresh([out]) {
        out!.setRows(1);
        out!.set(0, 0, (tasks.lastMigration() ?? 0) / 1000);
      },
    };
  },
};

export default migration;
