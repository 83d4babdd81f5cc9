/** threshold: passes an update only when its largest figure is above the threshold (the slides' "loads > threshold"). */
import { numberAttribute, type FilterType } from '../../framework/types.js';

const threshold: FilterType = {
  kind: 'filter',
  name: 'threshold',
  description: 'passes updates whose largest value is above `threshold`; drops the others',
  attributes: [numberAttribute('threshold', 'updates at or below this value are dropped', { default: 0 })],
  create(ctx) {
    return {
      update(input, output) {
        if (!(input.max() > (ctx.attrs.threshold as number))) return false;
        output.copyFrom(input);
        return true;
      },
    };
  },
};

export default threshold;
