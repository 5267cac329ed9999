/**
 * A grid of configurations over one corpus. Lanes and request sets are built once per batch size and
 * shared; each configuration is otherwise independent (fresh caches, fresh event queue).
 */
import type { RoutingCorpus } from '../../traces/src/sequences.js';
import type { PolicyName } from './cache/types.js';
import type { PrefetchName } from './prefetch/sources.js';
import { prepareReplay } from './replay/replay-corpus.js';
import { runSimulation, validateSimConfig, type SimConfig, type SimResult } from './simulation.js';
import type { MissMode } from './timing/engine.js';

export interface SweepGrid {
  policies: PolicyName[];
  caches: number[];
  batches: number[];
  prefetchers: PrefetchName[];
  misses: MissMode[];
}

export type SweepBase = Omit<SimConfig, 'policy' | 'cacheSize' | 'batch' | 'prefetch' | 'miss' | 'prepared'>;

export function sweepSize(g: SweepGrid): number {
  return g.policies.length * g.caches.length * g.batches.length * g.prefetchers.length * g.misses.length;
}

/** Runs every configuration of the grid (batch, prefetch, miss, policy, cache order); `tick` after each. */
export function runSweep(corpus: RoutingCorpus, grid: SweepGrid, base: SweepBase, tick: () => void = () => {}): SimResult[] {
  // Validate the whole grid before spending time on any of it.
  for (const policy of grid.policies)
    for (const cacheSize of grid.caches)
      for (const batch of grid.batches)
        for (const prefetch of grid.prefetchers)
          for (const miss of grid.misses) validateSimConfig({ ...base, policy, cacheSize, batch, prefetch, miss });
  const out: SimResult[] = [];
  for (const batch of grid.batches) {
    const prepared = prepareReplay(corpus, batch);
    for (const prefetch of grid.prefetchers)
      for (const miss of grid.misses)
        for (const policy of grid.policies)
          for (const cacheSize of grid.caches) {
            out.push(runSimulation(corpus, { ...base, policy, cacheSize, batch, prefetch, miss, prepared }));
            tick();
          }
  }
  return out;
}
