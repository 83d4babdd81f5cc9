/**
 * The vsys log: every call, refusal, instance start/exit and service change, tagged with
 * service and slice. Each event goes to the daemon log and to a bounded in-memory ring that
 * `slicectl vsys log` reads.
 */
import type { Logger } from 'pino';
import type { VsysEvent, VsysLevel } from '../wire/vsys.js';

export interface EventFilter {
  service?: string;
  slice?: string;
  limit?: number;
}

export class VsysEvents {
  private readonly ring: VsysEvent[] = [];

  constructor(
    private readonly log: Logger,
    private readonly capacity = 2000,
  ) {}

  record(
    level: VsysLevel,
    where: { service?: string | null; slice?: string | null },
    message: string,
    details?: Record<string, unknown>,
  ): void {
    const event: VsysEvent = { time: new Date().toISOString(), level, service: where.service ?? null, slice: where.slice ?? null, message };
    if (details !== undefined) event.details = details;
    this.log[level]({ vsys: true, service: event.service, slice: event.slice, ...details }, `vsys: ${message}`);
    if (level === 'debug') return;
    this.ring.push(event);
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
  }

  list(filter: EventFilter = {}): VsysEvent[] {
    const matching = this.ring.filter(
      (e) => (filter.service === undefined || e.service === filter.service) && (filter.slice === undefined || e.slice === filter.slice),
    );
    return filter.limit !== undefined ? matching.slice(-filter.limit) : matching;
  }
}
