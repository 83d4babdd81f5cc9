/** ewma: exponentially weighted moving average of every cell, per row. */
import { numberAttribute, type FilterType } from '../../framework/types.js';

const ewma: FilterType = {
  kind: 'filter',
  name: 'ewma',
  description: 'smooths every figure: out = alpha x in + (1 - alpha) x previous out',
  attributes: [numberAttribute('alpha', 'weight of the newest update, above 0 and at most 1', { default: 0.3, min: 0.001, max: 1 })],
  create(ctx) {
    let primed = false;
    return {
      update(input, output) {
        const alpha = ctx.attrs.alpha as number;
        // A change of shape (a new row) restarts the average.
        if (!primed || output.rows !== input.rows || output.labels !== input.labels) {
          output.copyFrom(input);
          primed = true;
          return true;
        }
        const cells = input.rows * input.width;
        const out = output.data;
        const inp = input.data;
        for (let i = 0; i < cells; i++) out[i] = alpha * inp[i]! + (1 - alpha) * out[i]!;
        return true;
      },
      configure() {
        primed = false;
      },
    };
  },
};

export default ewma;
