/**
 * hysteresis: a threshold with memory. It opens when the largest figure rises above `high`
 * and closes only when it falls below `low`; updates pass while it is open, plus the one
 * that closes it (so the consumer sees the value drop).
 */
import { numberAttribute, type FilterType } from '../../framework/types.js';

const hysteresis: FilterType = {
  kind: 'filter',
  name: 'hysteresis',
  description: 'passes updates from when the largest value rises above `high` until it falls below `low` (inclusive of that last update)',
  attributes: [
    numberAttribute('high', 'open above this value', { default: 0 }),
    numberAttribute('low', 'close below this value (at most high)', { default: 0 }),
  ],
  create(ctx) {
    let open = false;
    return {
      update(input, output) {
        const peak = input.max();
        if (!open && peak > (ctx.attrs.high as number)) open = true;
        else if (open && peak < (ctx.attrs.low as number)) {
          open = false;
          output.copyFrom(input);
          return true;
        }
        if (!open) return false;
        output.copyFrom(input);
        return true;
      },
      configure() {
        if ((ctx.attrs.low as number) > (ctx.attrs.high as number))
          throw new Error(`low ${ctx.attrs.low} must not be above high ${ctx.attrs.high}`);
      },
    };
  },
};

export default hysteresis;
