/**
 * Popularity for the `static` policy: how many tokens routed to each expert at each MoE layer of a warm-up
 * corpus. Without a warm-up trace the simulator uses the first half of the replayed trace's sequences
 * (DEFAULT_WARMUP_LABEL), which are then replayed too: static is favoured by having seen part of the test.
 */
import type { RoutingCorpus } from '../../../traces/src/sequences.js';
import { pinnedFromCounts } from '../cache/static.js';

export function expertCounts(corpus: RoutingCorpus): Float64Array {
  const L = corpus.moeLayers.length;
  const k = corpus.topK;
  const E = corpus.numExperts;
  const counts = new Float64Array(L * E);
  for (const s of corpus.sequences) {
    for (let t = 0; t < s.length; t++) {
      for (let l = 0; l < L; l++) {
        const base = (t * L + l) * k;
        for (let j = 0; j < k; j++) counts[l * E + s.experts[base + j]]++;
      }
    }
  }
  return counts;
}

/** The first half of the sequences (at least one), for the default warm-up. */
export function firstHalf(corpus: RoutingCorpus): RoutingCorpus {
  const n = Math.max(1, Math.floor(corpus.sequences.length / 2));
  return { ...corpus, sequences: corpus.sequences.slice(0, n) };
}

export function defaultWarmupLabel(corpus: RoutingCorpus): string {
  const n = Math.max(1, Math.floor(corpus.sequences.length / 2));
  return `first ${n} of ${corpus.sequences.length} sequences of the same trace (default; they are replayed too)`;
}

export function checkSameGeometry(a: RoutingCorpus, b: RoutingCorpus, what: string): void {
  if (a.numExperts !== b.numExperts || a.topK !== b.topK || a.moeLayers.join(',') !== b.moeLayers.join(',')) {
    throw new Error(
      `${what} has a different geometry (experts ${b.numExperts}, top-${b.topK}, MoE layers ${b.moeLayers.length}) from the trace (experts ${a.numExperts}, top-${a.topK}, MoE layers ${a.moeLayers.length})`,
    );
  }
}

export function pinnedForCorpus(warmup: RoutingCorpus, capacity: number): number[][] {
  return pinnedFromCounts(expertCounts(warmup), warmup.moeLayers.length, warmup.numExperts, capacity);
}
