// A sliced component plugin: the `clamp` filter, which caps every figure at `max`.
//
// Install: copy this file into a plugin folder owned by root and not writable by others,
// and start sliced with `--plugin-dir <folder>` (or `pluginDirs:` in sliced.yaml).
// `mkdir .../<port>/clamp` then loads it on first use, like a built-in.
//
// A plugin module's default export is one component type, or { types: [...], valueTypes: [...] }.
// A filter's update(input, output, now) writes its output into `output` (a preallocated
// table of float64 cells) and returns true to pass the update on, false to drop it. It is on
// the hot path: it must not block and should not allocate.

/** @type {import('sliced/dist/framework/types.js').FilterType} */
const clamp = {
  kind: 'filter',
  name: 'clamp',
  description: 'caps every value at `max`',
  attributes: [
    {
      name: 'max',
      description: 'largest value passed on',
      default: 1000,
      parse(text) {
        const value = Number(text.trim());
        if (!Number.isFinite(value)) throw new Error(`max ${JSON.stringify(text.trim())} is not allowed: must be a number`);
        return value;
      },
    },
  ],
  create(ctx) {
    return {
      update(input, output) {
        output.copyFrom(input);
        const max = ctx.attrs.max;
        const cells = output.rows * output.width;
        for (let i = 0; i < cells; i++) if (output.data[i] > max) output.data[i] = max;
        return true;
      },
    };
  },
};

export default clamp;
