import { RecencyOrderedPolicy } from './recency-policy.js';
import type { EvictionPolicy } from './types.js';

/**
 * First in, first out: the expert inserted earliest (insertions ordered by step, then expert id) goes
 * first; hits do not refresh it. Insertion times are distinct, so there are no ties. An insertion-order
 * list gives the victim without scanning; pickVictimByScan states the rule on insertion times.
 */
export class FifoPolicy extends RecencyOrderedPolicy implements EvictionPolicy {
  readonly name = 'fifo' as const;
  protected orderKey(): Float64Array {
    return this.state.insertedAt;
  }
}
