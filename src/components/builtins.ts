/**
 * The built-in component types, listed beside them (the Kubernetes scheduler's
 * plugins/default_registry.go): the daemon hands this list to the framework's registry, which
 * never imports a component itself. Each module is loaded the first time its type is used.
 */
import type { BuiltinTypes } from '../framework/registry.js';

export const BUILTIN_TYPES: BuiltinTypes = {
  cpu: () => import('./probes/cpu.js'),
  load: () => import('./probes/load.js'),
  mem: () => import('./probes/mem.js'),
  psi: () => import('./probes/psi.js'),
  slice_usage: () => import('./probes/slice-usage.js'),
  slices_load: () => import('./probes/slices-load.js'),
  io_usage: () => import('./probes/io-usage.js'),
  mem_usage: () => import('./probes/mem-usage.js'),
  process_load: () => import('./probes/process-load.js'),
  migration_probe: () => import('./probes/migration.js'),
  mem_alloc: () => import('./probes/mem-alloc.js'),
  fs_space: () => import('./probes/fs-space.js'),
  disk_io: () => import('./probes/disk-io.js'),
  threshold: () => import('./filters/threshold.js'),
  freq_limit: () => import('./filters/freq-limit.js'),
  ewma: () => import('./filters/ewma.js'),
  rate: () => import('./filters/rate.js'),
  hysteresis: () => import('./filters/hysteresis.js'),
  remote_cache: () => import('./filters/remote-cache.js'),
  // Kerrighed's own probes and filters, beside ours (README, "Kerrighed's names").
  mosix_probe: () => import('./probes/mosix-probe.js'),
  mem_probe: () => import('./probes/mem-probe.js'),
  cpu_probe: () => import('./probes/cpu-probe.js'),
  load_probe: () => import('./probes/load-probe.js'),
  threshold_filter: () => import('./filters/krg-threshold.js'),
  high_threshold_filter: async () => ({ default: (await import('./filters/krg-threshold.js')).highThresholdFilter }),
  low_threshold_filter: async () => ({ default: (await import('./filters/krg-threshold.js')).lowThresholdFilter }),
  freq_limit_filter: () => import('./filters/freq-limit-filter.js'),
  remote_cache_filter: async () => ({ default: (await import('./filters/remote-cache.js')).remoteCacheFilter }),
  diff_filter: () => import('./filters/diff-filter.js'),
  constant_filter: () => import('./filters/constant-filter.js'),
  echo_policy: () => import('./policies/echo-policy.js'),
  entitlement: () => import('./policies/entitlement.js'),
  round_robin: () => import('./policies/round-robin.js'),
  random: () => import('./policies/random.js'),
  best_of_two: () => import('./policies/best-of-two.js'),
  least_loaded: () => import('./policies/least-loaded.js'),
  mosix_load_balancer: () => import('./policies/mosix-load-balancer.js'),
  swap_avoidance: () => import('./policies/swap-avoidance.js'),
  memory_affinity: () => import('./policies/memory-affinity.js'),
  scratch_balance: () => import('./policies/scratch-balance.js'),
  io_balance: () => import('./policies/io-balance.js'),
  round_robin_balancer: () => import('./policies/round-robin-balancer.js'),
};
