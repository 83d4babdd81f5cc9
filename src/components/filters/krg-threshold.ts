/**
 * Kerrighed's threshold filters: threshold_filter and high_threshold_filter pass an update
 * whose value is at or above `threshold` (the legacy name and the later one of the same
 * module); low_threshold_filter one at or below it. The value passes unchanged.
 */
import { numberAttribute, type FilterType } from '../../framework/types.js';

/** Kerrighed's ULONG_MAX on 64-bit nodes: low_threshold_filter's default passes everything. */
const ULONG_MAX = 2 ** 64 - 1;

function thresholdFilter(name: string, passes: 'at_least' | 'at_most', defaultThreshold: number): FilterType {
  const word = passes === 'at_least' ? 'at or above' : 'at or below';
  return {
    kind: 'filter',
    name,
    description: `Kerrighed's ${name}: passes updates whose value is ${word} \`threshold\`, unchanged`,
    accepts: ['ulong'],
    attributes: [numberAttribute('threshold', `updates ${word} this value pass`, { default: defaultThreshold, min: 0, max: ULONG_MAX })],
    create(ctx) {
      return {
        update(input, output) {
          const limit = ctx.attrs.threshold as number;
          const figure = passes === 'at_least' ? input.max() : input.min();
          if (input.rows === 0 || !(passes === 'at_least' ? figure >= limit : figure <= limit)) return false;
          output.copyFrom(input);
          return true;
        },
      };
    },
  };
}

export const highThresholdFilter = thresholdFilter('high_threshold_filter', 'at_least', 0);
export const lowThresholdFilter = thresholdFilter('low_threshold_filter', 'at_most', ULONG_MAX);
export default thresholdFilter('threshold_filter', 'at_least', 0);
