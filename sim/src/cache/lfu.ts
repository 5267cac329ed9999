import type { CacheState, EvictionPolicy } from './types.js';

/**
 * Least frequently used, with the counts of the whole replay: every request counts (hits, misses and
 * bypasses), and an evicted expert keeps its count. Ties go to the least recently accessed, then the
 * lowest id.
 */
export class LfuPolicy implements EvictionPolicy {
  readonly name = 'lfu' as const;
  readonly evicts = true;
  /** Requests of each expert since the start of the replay. */
  readonly counts: Float64Array;
  constructor(private readonly state: CacheState) {
    this.counts = new Float64Array(state.numExperts);
  }
  requested(expert: number): void {
    this.counts[expert]++;
  }
  pickVictim(slots: Int32Array, used: number, protectedAt: Int32Array, stamp: number): number {
    const counts = this.counts;
    const last = this.state.lastAccess;
    let victim = -1;
    let vc = Infinity;
    let vr = Infinity;
    for (let s = 0; s < used; s++) {
      const e = slots[s];
      if (protectedAt[e] === stamp) continue;
      const c = counts[e];
      const r = last[e];
      // fewest requests, then least recent, then lowest id (access times are distinct, so the id rule is a formality)
      if (c < vc || (c === vc && (r < vr || (r === vr && e < victim)))) {
        vc = c;
        vr = r;
        victim = e;
      }
    }
    return victim;
  }
}
