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
  evictsBefore(a: number, b: number): boolean {
    const ca = this.counts[a];
    const cb = this.counts[b];
    if (ca !== cb) return ca < cb;
    const ra = this.state.lastAccess[a];
    const rb = this.state.lastAccess[b];
    if (ra !== rb) return ra < rb;
    return a < b;
  }
}
