import { RecencyList } from './recency-list.js';
import type { CacheState, EvictionPolicy } from './types.js';

/**
 * First in, first out: the expert inserted earliest (insertions ordered by step, then expert id) goes
 * first; hits do not refresh it. Insertion times are distinct, so there are no ties. An insertion-order
 * list gives the victim without scanning; pickVictimByScan states the rule on insertion times.
 */
export class FifoPolicy implements EvictionPolicy {
  readonly name = 'fifo' as const;
  readonly evicts = true;
  private readonly order: RecencyList;
  constructor(private readonly state: CacheState) {
    this.order = new RecencyList(state.numExperts);
  }
  requested(): void {}
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
    const inserted = this.state.insertedAt;
    let victim = -1;
    let first = Infinity;
    for (let s = 0; s < used; s++) {
      const e = slots[s];
      if (protectedAt[e] === stamp) continue;
      const v = inserted[e];
      if (v < first) {
        first = v;
        victim = e;
      }
    }
    return victim;
  }
}
