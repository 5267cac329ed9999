import { RecencyList } from './recency-list.js';
import type { CacheState, EvictionPolicy } from './types.js';

/**
 * Least recently used. Accesses are ordered by (step, expert id) because requests are processed in
 * ascending id within a step, so the cache's access clock already is that order and there are no ties.
 * The cache reports accesses, insertions and evictions so a recency list (oldest first) gives the victim
 * without scanning; pickVictimByScan is the same rule stated on the clock (tests compare the two).
 */
export class LruPolicy implements EvictionPolicy {
  readonly name = 'lru' as const;
  readonly evicts = true;
  private readonly order: RecencyList;
  constructor(private readonly state: CacheState) {
    this.order = new RecencyList(state.numExperts);
  }
  requested(): void {}
  /** Hit on a cached expert. */
  accessed(e: number): void {
    this.order.moveToNewest(e);
  }
  inserted(e: number): void {
    this.order.append(e);
  }
  evicted(e: number): void {
    this.order.remove(e);
  }
  pickVictim(_slots: Int32Array, _used: number, protectedAt: Int32Array, stamp: number): number {
    return this.order.oldestUnprotected(protectedAt, stamp);
  }
  pickVictimByScan(slots: Int32Array, used: number, protectedAt: Int32Array, stamp: number): number {
    const last = this.state.lastAccess;
    let victim = -1;
    let oldest = Infinity;
    for (let s = 0; s < used; s++) {
      const e = slots[s];
      if (protectedAt[e] === stamp) continue;
      const v = last[e];
      if (v < oldest) {
        oldest = v;
        victim = e;
      }
    }
    return victim;
  }
}
