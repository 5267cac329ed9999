/**
 * Vocabulary shared by the cache policies and the replay loop. The semantics are normative and written
 * out in sim/README.md ("Canonical replay semantics"); the runtime's C++ cache must make the same
 * decision on every request, so nothing here may depend on anything but the request sequence.
 */

export const POLICY_NAMES = ['lru', 'lfu', 'fifo', 'lfru', 'belady', 'opt', 'static'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

/** What one request did to a layer's cache (decision log codes, stable: the C++ test compares them). */
export const OUTCOME_HIT = 0;
/** Miss, a free slot was used. */
export const OUTCOME_INSERT = 1;
/** Miss, the policy evicted a victim (not in the step's request set) and the expert took its slot. */
export const OUTCOME_EVICT = 2;
/** Miss, every cached expert was in the step's request set (or the policy pins its slots): used without being cached. */
export const OUTCOME_BYPASS = 3;
export const OUTCOME_NAMES = ['hit', 'insert', 'evict', 'bypass'] as const;
export type OutcomeName = (typeof OUTCOME_NAMES)[number];

/** No victim (outcomes other than evict). */
export const NO_VICTIM = -1;

/**
 * Per-expert bookkeeping of one layer's cache that every policy may read. The cache owns it and updates it
 * before it calls the policy; policies keep only what is theirs (counts, CRF, next use).
 */
export interface CacheState {
  numExperts: number;
  /** Access clock value of each expert's last access (hit, insertion or prefetch insertion); -1 never. */
  lastAccess: Float64Array;
  /** Access clock value of each expert's current insertion; -1 when not cached. */
  insertedAt: Float64Array;
}

/**
 * An eviction policy. The cache calls `requested` once per request (hit or miss, bypass included) in
 * processing order; on a miss with no free slot it asks `pickVictim` for the expert to evict among the
 * candidates: cached experts (slots[0..used)) whose protectedAt is not the current stamp (not in the step's
 * request set). The policy's order must be strict and total so the victim never depends on slot order.
 */
export interface EvictionPolicy {
  readonly name: PolicyName;
  /** False for `static`: its slots are pinned and misses bypass. */
  readonly evicts: boolean;
  requested(expert: number, step: number, requestIndex: number): void;
  /** The victim, or -1 when every cached expert is protected. */
  pickVictim(slots: Int32Array, used: number, protectedAt: Int32Array, stamp: number, step: number): number;
}
