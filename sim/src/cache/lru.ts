import { RecencyOrderedPolicy } from './recency-policy.js';
import type { EvictionPolicy } from './types.js';

/**
 * Least recently used. Accesses are ordered by (step, expert id) because requests are processed in
 * ascending id within a step, so the cache's access clock already is that order and there are no ties.
 * The cache reports accesses, insertions and evictions so a recency list (oldest first) gives the victim
 * without scanning; pickVictimByScan is the same rule stated on the clock (tests compare the two).
 */
export class LruPolicy extends RecencyOrderedPolicy implements EvictionPolicy {
  readonly name = 'lru' as const;
  /** Hit on a cached expert. */
  accessed(e: number): void {
    this.refresh(e);
  }
  protected orderKey(): Float64Array {
    return this.state.lastAccess;
  }
}
