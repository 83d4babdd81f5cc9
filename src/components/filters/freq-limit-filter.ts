/**
 * freq_limit_filter (Kerrighed's): drops an update that comes less than `min_interval`
 * nanoseconds after the last event, or while events are under way. The last event is what
 * its last_event port reads (the legacy setup links migration_probe/last_migration there:
 * at most one migration per interval); until a value is read there, the last update it passed.
 */
import { numberAttribute, type FilterType } from '../../framework/types.js';

const freqLimitFilter: FilterType = {
  kind: 'filter',
  name: 'freq_limit_filter',
  description:
    "Kerrighed's freq_limit_filter: drops updates closer than `min_interval` ns to the last event, or while events are under way",
  accepts: ['ulong'],
  attributes: [
    numberAttribute('min_interval', 'nanoseconds after the last event during which updates are dropped (0: none)', {
      default: 0,
      min: 0,
      max: 2 ** 64 - 1,
      integer: true,
    }),
  ],
  ports: [
    {
      name: 'last_event',
      valueType: 'ulong',
      description: 'when the last event happened, ns since the epoch: /probes/migration_probe/last_migration',
    },
    {
      name: 'events_on_going',
      valueType: 'ulong',
      description: 'events under way (updates are dropped while not 0): /probes/migration_probe/migration_on_going',
    },
  ],
  create(ctx) {
    let lastPassedNs = -Infinity;
    return {
      update(input, output) {
        // Nanoseconds of the wall clock, the clock of migration_probe's last_migration.
        const nowNs = Date.now() * 1e6;
        const event = ctx.ports!.last_event;
        const lastNs = event && event.rows > 0 ? event.max() : lastPassedNs;
        const onGoing = ctx.ports!.events_on_going;
        if (onGoing && onGoing.rows > 0 && onGoing.max() !== 0) return false;
        if (nowNs - lastNs < (ctx.attrs.min_interval as number)) return false;
        lastPassedNs = nowNs;
        output.copyFrom(input);
        return true;
      },
    };
  },
};

export default freqLimitFilter;
