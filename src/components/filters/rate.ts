/** rate: turns counters into per-second rates (difference between updates over the time between them). */
import { Value } from '../../framework/value.js';
import type { FilterType } from '../../framework/types.js';

const rate: FilterType = {
  kind: 'filter',
  name: 'rate',
  description: 'per-second rate of change of every figure (for counters); the first update only primes it',
  create(ctx) {
    const previous = new Value(ctx.valueType!);
    let previousAt = NaN;
    return {
      update(input, output, now) {
        const comparable = previous.rows === input.rows && previous.labels === input.labels && now > previousAt;
        if (comparable) {
          const seconds = (now - previousAt) / 1000;
          output.setRows(input.rows, input.labels);
          const cells = input.rows * input.width;
          for (let i = 0; i < cells; i++) output.data[i] = (input.data[i]! - previous.data[i]!) / seconds;
        }
        previous.copyFrom(input);
        previousAt = now;
        return comparable;
      },
    };
  },
};

export default rate;
