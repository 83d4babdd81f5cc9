/**
 * The publish-subscribe path between components. An Output (a probe source or a filter)
 * owns one preallocated Value and an array of subscribers (ports and filter inputs; each
 * has at most one source). Nothing on this path allocates.
 *
 * A filter always forwards to the one slot it sits in, so what a probe source feeds is a
 * set of straight chains "filter, filter, ..., port". Publishing runs each chain in a flat
 * loop (compiled when the source's links change) instead of one nested call per hop, which
 * keeps the hot path short and its call sites monomorphic.
 */
import type { Value } from './value.js';

export interface Subscriber {
  receive(value: Value, now: number): void;
  /** Set on filter inputs: the stage that computes the filter's output. */
  readonly stage?: FilterStage;
}

export interface FilterStage {
  /** Compute the output from `value`; the output Value to pass on, or null to stop here. */
  process(value: Value, now: number): Value | null;
  readonly output: Output;
}

interface Chain {
  stages: FilterStage[];
  end: Subscriber | null;
  failures: number;
}

export class Output {
  readonly value: Value;
  subscribers: Subscriber[] = [];
  /** Updates published so far (for `cat` and tests). */
  published = 0;
  private chains: Chain[] | null = null;

  constructor(value: Value) {
    this.value = value;
  }

  publish(now: number): void {
    this.published++;
    const chains = this.chains ?? this.compile();
    for (let c = 0; c < chains.length; c++) {
      const chain = chains[c]!;
      try {
        let value: Value | null = this.value;
        const stages = chain.stages;
        for (let i = 0; i < stages.length && value !== null; i++) value = stages[i]!.process(value, now);
        if (value !== null && chain.end !== null) chain.end.receive(value, now);
      } catch (err) {
        this.chainFailed(chain, err);
      }
    }
  }

  /** A filter that throws drops that update for its chain only; the other chains still run. */
  private chainFailed(chain: Chain, err: unknown): void {
    chain.failures++;
    if (chain.failures === 1 || chain.failures % 1000 === 0) {
      process.emitWarning(`sliced: a filter failed ${chain.failures} time(s) and dropped the update: ${(err as Error).message}`);
    }
  }

  /**
   * Add a subscriber. When this output has published before, the newcomer receives the
   * current value at once: an unchanging value is not published again (has_changed), and a
   * policy linked late must not wait for a change that may never come.
   */
  subscribe(subscriber: Subscriber, now = performance.now()): void {
    if (!this.subscribers.includes(subscriber)) this.subscribers = [...this.subscribers, subscriber];
    this.chains = null;
    if (this.published === 0) return;
    const chain = this.compile().find((c) => (c.stages[0] ?? c.end) === (subscriber.stage ?? subscriber));
    if (!chain) return;
    try {
      let value: Value | null = this.value;
      for (let i = 0; i < chain.stages.length && value !== null; i++) value = chain.stages[i]!.process(value, now);
      if (value !== null && chain.end !== null) chain.end.receive(value, now);
    } catch (err) {
      this.chainFailed(chain, err);
    }
  }

  unsubscribe(subscriber: Subscriber): void {
    this.subscribers = this.subscribers.filter((s) => s !== subscriber);
    this.chains = null;
  }

  private compile(): Chain[] {
    this.chains = this.subscribers.map((first) => {
      const stages: FilterStage[] = [];
      let next: Subscriber | undefined = first;
      while (next?.stage && stages.length < 64) {
        stages.push(next.stage);
        next = next.stage.output.subscribers[0];
      }
      return { stages, end: next ?? null, failures: 0 };
    });
    return this.chains;
  }
}
