import type { EvictionPolicy } from './types.js';

/**
 * Static placement: the cache starts holding a fixed set of experts (the C most popular of a warm-up
 * trace, see `pinnedFromWarmup`) and never changes; every miss bypasses.
 */
export class StaticPolicy implements EvictionPolicy {
  readonly name = 'static' as const;
  readonly evicts = false;
  requested(): void {}
  pickVictim(): number {
    return -1;
  }
}

/**
 * The `capacity` most requested experts of each layer in `counts` (counts[l * numExperts + e]: how many
 * tokens routed to e at layer l in the warm-up trace), ties to the lowest id, ascending ids per layer.
 */
export function pinnedFromCounts(counts: Float64Array, layers: number, numExperts: number, capacity: number): number[][] {
  const out: number[][] = [];
  const c = Math.min(capacity, numExperts);
  for (let l = 0; l < layers; l++) {
    const ids = Array.from({ length: numExperts }, (_, e) => e);
    ids.sort((a, b) => counts[l * numExperts + b] - counts[l * numExperts + a] || a - b);
    out.push(ids.slice(0, c).sort((a, b) => a - b));
  }
  return out;
}
