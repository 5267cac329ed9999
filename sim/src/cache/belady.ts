import type { EvictionPolicy } from './types.js';

/** Next use that never comes. */
export const NEVER = 0x7fffffff;

/**
 * Belady's MIN: evict the expert whose next request (strictly after the current step, at this layer) is
 * farthest away; never again is infinitely far; ties go to the lowest id. It needs the future, given as
 * `nextStep[requestIndex]`: the step of the same expert's next request at the same layer (NEVER if none).
 * A cached expert not requested this step was last requested at some earlier request r, and
 * nextStep[r] is then exactly its next request after the current step.
 */
export class BeladyPolicy implements EvictionPolicy {
  readonly evicts = true;
  /** Next request step of each expert as of its last request; NEVER before its first request. */
  private readonly next: Int32Array;
  constructor(
    numExperts: number,
    private readonly nextStep: Int32Array,
    readonly name: 'belady' | 'opt' = 'belady',
  ) {
    this.next = new Int32Array(numExperts).fill(NEVER);
  }

  /**
   * `opt` only: admit `expert` in place of `victim` when it is needed strictly sooner than the victim.
   * The canonical semantics make every policy admit on a miss when a victim exists, so `belady` is optimal
   * only among policies that must admit; a policy allowed to bypass (like `static`, which never admits)
   * can beat it when the cache is no larger than a step's request set. `opt` is Belady's MIN with bypass,
   * the offline optimum for caches that may decline to admit. It is a simulator policy (it needs the future).
   */
  admitsOver(expert: number, victim: number): boolean {
    return this.next[expert] < this.next[victim];
  }
  requested(expert: number, _step: number, requestIndex: number): void {
    this.next[expert] = this.nextStep[requestIndex];
  }
  pickVictim(slots: Int32Array, used: number, protectedAt: Int32Array, stamp: number): number {
    const next = this.next;
    let victim = -1;
    let farthest = -1;
    for (let s = 0; s < used; s++) {
      const e = slots[s];
      if (protectedAt[e] === stamp) continue;
      const n = next[e];
      if (n > farthest || (n === farthest && e < victim)) {
        farthest = n;
        victim = e;
      }
    }
    return victim;
  }
}
