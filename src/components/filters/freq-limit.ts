/** freq_limit: passes at most one update per interval; the others are dropped. */
import { numberAttribute, type FilterType } from '../../framework/types.js';

const freqLimit: FilterType = {
  kind: 'filter',
  name: 'freq_limit',
  description: 'passes at most one update every `min_interval_ms` milliseconds',
  attributes: [numberAttribute('min_interval_ms', 'minimum time between two passed updates', { default: 1000, min: 0, max: 3_600_000 })],
  create(ctx) {
    let last = -Infinity;
    return {
      update(input, output, now) {
        if (now - last < (ctx.attrs.min_interval_ms as number)) return false;
        last = now;
        output.copyFrom(input);
        return true;
      },
    };
  },
};

export default freqLimit;
