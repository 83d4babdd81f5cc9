/** threshold: passes an update only when its largest figure is above the threshold (the slides' "loads > threshold"). */
import { numberAttribute, type ComponentContext, type FilterBehaviour, type FilterType } from '../../framework/types.js';
import type { Value } from '../../framework/value.js';

/** A class, not a closure: one shared update() keeps the hot call site monomorphic. */
class Threshold implements FilterBehaviour {
  private limit: number;

  constructor(private readonly ctx: ComponentContext) {
    this.limit = ctx.attrs.threshold as number;
  }

  update(input: Value, output: Value): boolean {
    if (!(input.max() > this.limit)) return false;
    output.copyFrom(input);
    return true;
  }

  configure(): void {
    this.limit = this.ctx.attrs.threshold as number;
  }
}

const threshold: FilterType = {
  kind: 'filter',
  name: 'threshold',
  description: 'passes updates whose largest value is above `threshold`; drops the others',
  attributes: [numberAttribute('threshold', 'updates at or below this value are dropped', { default: 0 })],
  create: (ctx) => new Threshold(ctx),
};

export default threshold;
