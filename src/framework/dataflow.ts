/**
 * The publish-subscribe path between components. An Output (a probe source or a filter)
 * owns one preallocated Value and an array of subscribers; publishing walks that array and
 * hands each subscriber the same Value. Subscribers are ports and filter inputs; each has
 * at most one source. Nothing on this path allocates: arrays change only when links change.
 */
import type { Value } from './value.js';

export interface Subscriber {
  receive(value: Value, now: number): void;
}

export class Output {
  readonly value: Value;
  subscribers: Subscriber[] = [];
  /** Updates published so far (for `cat` and tests). */
  published = 0;

  constructor(value: Value) {
    this.value = value;
  }

  publish(now: number): void {
    this.value.version++;
    this.published++;
    const subs = this.subscribers;
    for (let i = 0; i < subs.length; i++) subs[i]!.receive(this.value, now);
  }

  subscribe(subscriber: Subscriber): void {
    if (!this.subscribers.includes(subscriber)) this.subscribers = [...this.subscribers, subscriber];
  }

  unsubscribe(subscriber: Subscriber): void {
    this.subscribers = this.subscribers.filter((s) => s !== subscriber);
  }
}
