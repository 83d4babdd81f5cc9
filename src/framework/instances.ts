/**
 * Live component instances: probes with their periodic refresh, filters and ports with one
 * input slot each, policies, schedulers and their process sets. The tree (tree.ts) creates,
 * links and destroys them; these classes only run the data flow.
 */
import { Output, type FilterStage, type Subscriber } from './dataflow.js';
import { Value, type ValueType } from './value.js';
import type {
  AttributeValue,
  ComponentContext,
  FilterBehaviour,
  FilterType,
  Logger,
  PolicyBehaviour,
  PolicyType,
  PortSpec,
  ProbeBehaviour,
  ProbeType,
} from './types.js';

export interface Timers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
  now(): number;
}

export const realTimers: Timers = {
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms);
    t.unref?.();
    return t;
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
  now: () => performance.now(),
};

/** Where a port or filter gets its updates from: a link to a probe source, or a child filter. */
export type SlotSource = { kind: 'link'; linkName: string; target: string; output: Output } | { kind: 'filter'; filter: FilterInstance };

/** The input side shared by ports and filters. */
export abstract class SlotOwner implements Subscriber {
  source: SlotSource | null = null;
  abstract readonly valueType: ValueType;
  abstract receive(value: Value, now: number): void;

  /** Value types a probe source linked here may have (a port may take more than its own). */
  get linkTypes(): readonly ValueType[] {
    return [this.valueType];
  }

  /**
   * The last value received (what `collected_value` shows), by reference. Every update of a
   * slot arrives in its source's one preallocated Value, so that Value is what the slot
   * collected once the source has delivered anything (a link delivers the current value at
   * once; a filter's output counts what it passed). Derived, so the update path writes nothing.
   */
  get collected(): Value | null {
    const source = this.source;
    if (source === null) return null;
    const output = source.kind === 'link' ? source.output : source.filter.output;
    return output.published > 0 ? output.value : null;
  }
}

export class ProbeInstance {
  readonly outputs: Output[];
  /** What refresh() fills; compared with each output's published value (has_changed). */
  private readonly scratch: Value[];
  periodMs: number;
  private timer: unknown = null;
  refreshes = 0;
  failures = 0;

  constructor(
    readonly type: ProbeType,
    readonly behaviour: ProbeBehaviour,
    readonly ctx: ComponentContext,
    valueTypes: ValueType[],
    private readonly timers: Timers,
  ) {
    this.outputs = valueTypes.map((vt) => new Output(new Value(vt)));
    this.scratch = valueTypes.map((vt) => new Value(vt));
    this.periodMs = type.defaultPeriodMs;
  }

  start(): void {
    this.stop();
    if (this.periodMs > 0) this.timer = this.timers.setInterval(() => this.refresh(this.timers.now()), this.periodMs);
  }

  stop(): void {
    if (this.timer !== null) this.timers.clearInterval(this.timer);
    this.timer = null;
  }

  setPeriod(ms: number): void {
    this.periodMs = ms;
    this.start();
  }

  /** Refresh the sources and publish those that changed. */
  refresh(now: number): void {
    try {
      this.behaviour.refresh(this.scratch, now);
      this.refreshes++;
    } catch (err) {
      this.failures++;
      if (this.failures === 1 || this.failures % 100 === 0)
        this.ctx.log.warn({ probe: this.ctx.path, err: (err as Error).message, failures: this.failures }, 'probe refresh failed');
      return;
    }
    for (let i = 0; i < this.outputs.length; i++) {
      const fresh = this.scratch[i]!;
      const output = this.outputs[i]!;
      // Only publish() changes an output's value, so it still holds what was last published.
      if (!this.type.notifyUnchanged && output.published > 0 && fresh.sameAs(output.value)) continue;
      output.value.copyFrom(fresh);
      output.publish(now);
    }
  }

  destroy(): void {
    this.stop();
    this.behaviour.destroy?.();
  }
}

export class FilterInstance extends SlotOwner implements FilterStage {
  readonly output: Output;
  readonly stage: FilterStage = this;
  /** The filter's own ports (Kerrighed's last_event, second_value). */
  ports: PortInstance[] = [];

  constructor(
    readonly type: FilterType,
    readonly behaviour: FilterBehaviour,
    readonly ctx: ComponentContext,
    readonly valueType: ValueType,
  ) {
    super();
    this.output = new Output(new Value(valueType));
  }

  /** One hop of a chain (see dataflow.ts): the filter's output, or null when it drops the update. */
  process(value: Value, now: number): Value | null {
    const out = this.output;
    if (!this.behaviour.update(value, out.value, now)) return null;
    out.published++;
    return out.value;
  }

  /** Updates this filter passed on. */
  get passed(): number {
    return this.output.published;
  }

  receive(value: Value, now: number): void {
    // Not through publish(): process() already counted the update.
    if (this.process(value, now) !== null) this.forward(now);
  }

  /** One of the filter's own ports got an update; the filter may pass a new output. */
  portReceived(port: number, now: number): void {
    if (!this.behaviour.portUpdate?.(port, this.collected, this.output.value, now)) return;
    this.output.published++;
    this.forward(now);
  }

  /** A filter with a value of its own publishes it (when made, and when an attribute changes). */
  produce(now: number): void {
    if (!this.behaviour.produce?.(this.output.value, now)) return;
    this.output.published++;
    this.forward(now);
  }

  private forward(now: number): void {
    const subs = this.output.subscribers;
    for (let i = 0; i < subs.length; i++) subs[i]!.receive(this.output.value, now);
  }

  destroy(): void {
    this.behaviour.destroy?.();
  }
}

/**
 * A port: a policy's (its updates activate the policy) or a filter's (the filter reads it when
 * its input brings an update, and may compute on its updates: FilterBehaviour.portUpdate).
 */
export class PortInstance extends SlotOwner {
  constructor(
    readonly name: string,
    readonly valueType: ValueType,
    private readonly onUpdate: ((value: Value, now: number) => void) | null,
    /** Value types that may also be linked here (Kerrighed's per-pid figures into process_load). */
    private readonly alsoLinks: readonly ValueType[] = [],
  ) {
    super();
  }

  receive(value: Value, now: number): void {
    this.onUpdate?.(value, now);
  }

  override get linkTypes(): readonly ValueType[] {
    return [this.valueType, ...this.alsoLinks];
  }
}

/** The ports a component type declares, made for an instance; `ports` reads what each collected. */
export function makePorts(
  specs: ReadonlyArray<PortSpec>,
  valueType: (name: string) => ValueType,
  ports: Record<string, Value | null>,
  onUpdate: ((index: number) => (value: Value, now: number) => void) | null,
): PortInstance[] {
  const made = specs.map(
    (p, i) => new PortInstance(p.name, valueType(p.valueType), onUpdate?.(i) ?? null, (p.alsoLinks ?? []).map(valueType)),
  );
  // Ports expose what they collected by reference; the component reads them through ctx.ports.
  for (const port of made) Object.defineProperty(ports, port.name, { get: () => port.collected, enumerable: true });
  return made;
}

export class PolicyInstance {
  ports: PortInstance[] = [];
  activations = 0;
  failures = 0;
  behaviour!: PolicyBehaviour;

  constructor(
    readonly type: PolicyType,
    readonly ctx: ComponentContext,
    readonly scheduler: SchedulerInstance,
    private readonly log: Logger,
  ) {}

  activate(port: number, value: Value, now: number): void {
    this.activations++;
    try {
      this.behaviour.onUpdate?.(port, value, now);
    } catch (err) {
      this.failed(err);
    }
  }

  /** A failing policy must not break the probe or the other subscribers of the source. */
  private failed(err: unknown): void {
    this.failures++;
    if (this.failures === 1 || this.failures % 100 === 0)
      this.log.warn({ policy: this.ctx.path, err: (err as Error).message, failures: this.failures }, 'policy update failed');
  }

  destroy(): void {
    this.behaviour.destroy?.();
  }
}

export interface Membership {
  /** Attach order, for precedence (a later attach takes precedence). */
  seq: number;
}

export class ProcessSet {
  handleAll = false;
  handleAllSeq = 0;
  readonly singles = new Map<number, Membership>();
  readonly sessions = new Map<number, Membership>();
  readonly slices = new Map<string, Membership>();

  isEmpty(): boolean {
    return !this.handleAll && this.singles.size === 0 && this.sessions.size === 0 && this.slices.size === 0;
  }
}

export class SchedulerInstance {
  policy: PolicyInstance | null = null;
  readonly processSet = new ProcessSet();

  constructor(
    readonly name: string,
    readonly seq: number,
  ) {}
}

export type AttributeTable = Record<string, AttributeValue>;
