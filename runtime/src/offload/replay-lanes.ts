/**
 * Routing for benchmarks that need more (or longer) sequences than one recorded trace has: e.g. a grid
 * at batch 16 x prompt 512 with warm-up and repeats needs dozens of sequences of 575+ tokens, while the
 * ESFT `summary` task has 13 sequences of 273-1402 tokens, `translation` 40 of up to 329, `intent` 127
 * of at most 88.
 *
 * What is done (normative, reported with every figure as `description`): the traces' sequences are put
 * in one pool (traces in the order given, each trace's sequences in order); lane g takes pool sequences
 * from where lane g - 1 stopped, concatenated until it has `length` tokens, and is cut there. A pool
 * sequence long enough alone is used alone. When the pool runs out it starts again from its first
 * sequence (the description counts the reuse). Concatenation joins unrelated documents: the routing of
 * each token is real, the switch between documents is not something the model saw.
 */
import type { RoutingCorpus, SequenceRouting } from '../../../traces/src/sequences.js';
import { UserError } from '../../../core/src/errors.js';
import type { RoutingReplay } from './routing-replay.js';

export interface LaneFill {
  replay: RoutingReplay;
  description: string;
  /** pool sequences used, counting repeats */
  poolSequencesUsed: number;
  concatenatedLanes: number;
  reusedPool: boolean;
}

function cut(s: SequenceRouting, from: number, n: number, w: number): { experts: Uint16Array; weights: Float32Array } {
  return { experts: s.experts.subarray(from * w, (from + n) * w), weights: s.weights.subarray(from * w, (from + n) * w) };
}

/** `count` lanes of exactly `length` tokens from the replays' sequences (see the module comment). */
export function fillLanes(replays: RoutingReplay[], count: number, length: number): LaneFill {
  if (replays.length === 0) throw new UserError('option --routing: no trace given');
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(length) || length < 1) throw new UserError(`routing lanes: count and length must be positive integers (got ${count}, ${length})`);
  const first = replays[0].corpus;
  for (const r of replays) {
    const c = r.corpus;
    if (c.numExperts !== first.numExperts || c.topK !== first.topK || c.moeLayers.join(',') !== first.moeLayers.join(',')) {
      throw new UserError(`option --routing: ${r.path} has another geometry than ${replays[0].path}`);
    }
  }
  const pool = replays.flatMap((r) => r.corpus.sequences.filter((s) => s.length > 0));
  if (pool.length === 0) throw new UserError('option --routing: the traces hold no tokens');
  const w = first.moeLayers.length * first.topK;
  const sequences: SequenceRouting[] = [];
  let at = 0;
  let used = 0;
  let concatenated = 0;
  for (let g = 0; g < count; g++) {
    const experts = new Uint16Array(length * w);
    const weights = new Float32Array(length * w);
    let filled = 0;
    let parts = 0;
    while (filled < length) {
      const s = pool[at % pool.length];
      at++;
      used++;
      parts++;
      const n = Math.min(s.length, length - filled);
      const c = cut(s, 0, n, w);
      experts.set(c.experts, filled * w);
      weights.set(c.weights, filled * w);
      filled += n;
    }
    if (parts > 1) concatenated++;
    sequences.push({ seq: g, length, positions: Int32Array.from({ length }, (_, i) => i), experts, weights });
  }
  const corpus: RoutingCorpus = { ...first, sequences };
  const names = replays.map((r) => r.path.split('/').pop()).join(' + ');
  const reused = used > pool.length;
  const description =
    concatenated === 0 && !reused
      ? `${names}: first ${count} sequences of at least ${length} tokens in trace order, cut to ${length}`
      : `${names}: ${count} lanes of ${length} tokens filled from ${used} concatenated trace sequences (${concatenated} lanes span several sequences${reused ? `; the pool of ${pool.length} was reused` : ''})`;
  return { replay: { path: names, corpus }, description, poolSequencesUsed: used, concatenatedLanes: concatenated, reusedPool: reused };
}
