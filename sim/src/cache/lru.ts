import type { CacheState, EvictionPolicy } from './types.js';

/**
 * Least recently used. Accesses are ordered by (step, expert id) because requests are processed in
 * ascending id within a step, so the cache's access clock already is that order and there are no ties.
 */
export class LruPolicy implements EvictionPolicy {
  readonly name = 'lru' as const;
  readonly evicts = true;
  constructor(private readonly state: CacheState) {}
  requested(): void {}
  evictsBefore(a: number, b: number): boolean {
    return this.state.lastAccess[a] < this.state.lastAccess[b];
  }
}
