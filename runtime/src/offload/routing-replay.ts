/**
 * Routing replay (`--routing <trace>`): the engine computes every MoE layer with the experts and weights
 * a recorded trace gives instead of its router's choice, so the arithmetic is real while the routing (and
 * hence the expert cache's behaviour) follows the trace.
 *
 * Mapping (normative; docs in runtime/src/offload/README.md):
 *  - sequence g of the trace (in order of first appearance, as toSequences orders them) drives the run's
 *    g-th prompt, counting prompts across batches;
 *  - position p of a prompt (prefill) or of its generated continuation (decode) takes the trace's routing
 *    at position index p of that sequence (the p-th token the trace recorded for it);
 *  - a run that needs more sequences or positions than the trace has is refused before it starts (and
 *    the C++ side throws if it ever gets there): no silent fallback to the model's router;
 *  - the trace's geometry (experts, top-k, MoE layer ids) must equal the model's.
 * Prompt tokens: record-trace takes them from the trace's `token` column when it has one; otherwise the
 * run's own prompts are used with the trace's routing.
 */
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences, type RoutingCorpus } from '../../../traces/src/sequences.js';
import type { ModelConfig } from '../model/config.js';
import { UserError } from '../../../core/src/errors.js';

export interface RoutingReplay {
  path: string;
  corpus: RoutingCorpus;
  /** token ids of each sequence, by position index, when the trace has a `token` column */
  tokens?: Int32Array[];
}

/** Reads a trace for replay and checks its geometry against the model (errors name the file). */
export function loadRoutingReplay(path: string, config: ModelConfig): RoutingReplay {
  const table = readTrace(path);
  const corpus = toSequences(table);
  checkReplayGeometry(path, corpus, config);
  let tokens: Int32Array[] | undefined;
  if (table.token) {
    const bySeq = new Map<number, Map<number, number>>();
    for (let r = 0; r < table.rows; r++) {
      let m = bySeq.get(table.seq[r]);
      if (!m) bySeq.set(table.seq[r], (m = new Map()));
      m.set(table.pos[r], table.token[r]);
    }
    tokens = corpus.sequences.map((s) => Int32Array.from(s.positions, (p) => bySeq.get(s.seq)!.get(p)!));
  }
  return { path, corpus, tokens };
}

/** `option`: the option that named the trace, for the message. */
export function checkReplayGeometry(path: string, corpus: RoutingCorpus, config: ModelConfig, option = '--routing'): void {
  const problems: string[] = [];
  if (corpus.numExperts !== config.nRoutedExperts) problems.push(`${corpus.numExperts} experts per layer, the model has ${config.nRoutedExperts}`);
  if (corpus.topK !== config.numExpertsPerTok) problems.push(`top-${corpus.topK} routing, the model routes top-${config.numExpertsPerTok}`);
  if (corpus.moeLayers.join(',') !== config.moeLayers.join(',')) {
    problems.push(`MoE layers [${corpus.moeLayers.join(', ')}], the model's are [${config.moeLayers.join(', ')}]`);
  }
  if (problems.length > 0) throw new UserError(`option ${option}: ${path} does not fit the model: ${problems.join('; ')}`);
}

/** Refuses a run that needs more than the trace has: `lengths[g]` tokens of sequence g for prompt g. */
export function checkReplayCoverage(replay: RoutingReplay, lengths: readonly number[]): void {
  const seqs = replay.corpus.sequences;
  if (lengths.length > seqs.length) {
    throw new UserError(`option --routing: ${replay.path} has ${seqs.length} sequences, the run has ${lengths.length} prompts (sequence g drives prompt g)`);
  }
  lengths.forEach((need, g) => {
    if (need > seqs[g].length) {
      throw new UserError(`option --routing: sequence ${g} of ${replay.path} has ${seqs[g].length} tokens, the run needs ${need} (prompt plus generated tokens but the last)`);
    }
  });
}

/** The native addon's replay table: sequence g's routing by position index. */
export function toNativeReplay(replay: RoutingReplay): { length: number; experts: Int32Array; weights: Float32Array }[] {
  return replay.corpus.sequences.map((s) => ({ length: s.length, experts: Int32Array.from(s.experts), weights: s.weights }));
}
