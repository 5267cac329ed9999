/**
 * A prefetcher's precision and recall, the simulator's definitions (TimingResult.prefetch), shared by the
 * simulator's report and the runtime's counters so both sides mean the same: precision = useful / issued
 * (prefetched experts that their layer's step used), recall = useful / needed (the step's experts that were
 * not cached before the prefetch and that a prefetch brought). null where the denominator is 0.
 */
export function prefetchPrecisionRecall(c: { issued: number; useful: number; needed: number }): { precision: number | null; recall: number | null } {
  return { precision: c.issued > 0 ? c.useful / c.issued : null, recall: c.needed > 0 ? c.useful / c.needed : null };
}
