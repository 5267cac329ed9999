import type { CacheState, EvictionPolicy } from './types.js';

/**
 * First in, first out: the expert inserted earliest (insertions ordered by step, then expert id) goes
 * first; hits do not refresh it. Insertion times are distinct, so there are no ties.
 */
export class FifoPolicy implements EvictionPolicy {
  readonly name = 'fifo' as const;
  readonly evicts = true;
  constructor(private readonly state: CacheState) {}
  requested(): void {}
  evictsBefore(a: number, b: number): boolean {
    return this.state.insertedAt[a] < this.state.insertedAt[b];
  }
}
