import { RecencyList } from './recency-list.js';
import type { CacheState } from './types.js';

/**
 * What `lru` and `fifo` share: both evict the oldest unprotected expert of an order the cache reports to
 * them (lru: last access, fifo: insertion), kept as a RecencyList so the victim is found without scanning.
 * The subclass says which order it is: the clock array that orders it (`orderKey`) and, for lru, moving
 * an expert to the newest end on a hit. pickVictimByScan states the same rule on that clock array; the
 * tests check that the list and the scan pick the same victim.
 */
export abstract class RecencyOrderedPolicy {
  readonly evicts = true;
  private readonly order: RecencyList;

  constructor(protected readonly state: CacheState) {
    this.order = new RecencyList(state.numExperts);
  }

  /** The clock values this policy's order follows: smallest = oldest = next victim. */
  protected abstract orderKey(): Float64Array;

  requested(): void {}

  inserted(e: number): void {
    this.order.append(e);
  }

  evicted(e: number): void {
    this.order.remove(e);
  }

  /** Makes e the newest (lru's refresh on a hit; fifo never calls it). */
  protected refresh(e: number): void {
    this.order.moveToNewest(e);
  }

  pickVictim(_slots: Int32Array, _used: number, protectedAt: Int32Array, stamp: number): number {
    return this.order.oldestUnprotected(protectedAt, stamp);
  }

  pickVictimByScan(slots: Int32Array, used: number, protectedAt: Int32Array, stamp: number): number {
    const key = this.orderKey();
    let victim = -1;
    let oldest = Infinity;
    for (let s = 0; s < used; s++) {
      const e = slots[s];
      if (protectedAt[e] === stamp) continue;
      const v = key[e];
      if (v < oldest) {
        oldest = v;
        victim = e;
      }
    }
    return victim;
  }
}
