/**
 * What each prefetcher predicts, as request-set-shaped tables: P(s, l) = the experts it wants resident for
 * step s at MoE layer l, and when it can know them (`lookahead`: issued right after the router of layer
 * l - lookahead of the same step; at the start of the step when that layer index is negative).
 *   next-gate  P(s, l) = union over the step's tokens of gate_next at layer l-1 (the trace column: layer l's
 *              router applied to layer l-1's input); lookahead 1; nothing for the first MoE layer.
 *   predicted  P(s, l) = union of the ids a predictor named for the tokens at layer l (corpus `predictions`,
 *              from a predictor or the trace's `predicted` column); its own lookahead.
 *   oracle     P(s, l) = R(s, l), the true request set; lookahead `oracleLookahead` (default 1).
 */
import { UserError } from '../../../core/src/errors.js';
import { NO_EXPERT, type RoutingCorpus } from '../../../traces/src/sequences.js';
import { collectSets, type RequestSets } from '../replay/requests.js';
import type { Schedule } from '../replay/schedule.js';

export const PREFETCH_NAMES = ['none', 'next-gate', 'predicted', 'oracle'] as const;
export type PrefetchName = (typeof PREFETCH_NAMES)[number];

export interface PrefetchPlan {
  name: Exclude<PrefetchName, 'none'>;
  sets: RequestSets;
  lookahead: number;
}

export function buildPrefetchPlan(
  name: PrefetchName,
  corpus: RoutingCorpus,
  schedule: Schedule,
  requestSets: RequestSets,
  opts: { oracleLookahead?: number; traceName?: string } = {},
): PrefetchPlan | null {
  const L = corpus.moeLayers.length;
  const k = corpus.topK;
  const E = corpus.numExperts;
  const where = opts.traceName ?? corpus.meta.dataset;
  switch (name) {
    case 'none':
      return null;
    case 'oracle': {
      const lookahead = opts.oracleLookahead ?? 1;
      if (!Number.isInteger(lookahead) || lookahead < 1) throw new UserError(`oracle lookahead must be a positive integer, got ${lookahead}`);
      return { name, sets: requestSets, lookahead };
    }
    case 'next-gate': {
      if (corpus.sequences.some((s) => !s.gateNext || !s.gateNextValid)) {
        throw new UserError(`--prefetch next-gate: trace ${where} has no gate_next column (record the trace with gate_next, or use another prefetcher)`);
      }
      const sets = collectSets(schedule, L, E, (token, l, visit) => {
        if (l === 0) return;
        const seq = corpus.sequences[schedule.tokenSeq[token]];
        const t = schedule.tokenPos[token];
        if (!seq.gateNextValid![t * L + l - 1]) return;
        const base = (t * L + l - 1) * k;
        for (let j = 0; j < k; j++) visit(seq.gateNext![base + j]);
      });
      return { name, sets, lookahead: 1 };
    }
    case 'predicted': {
      const first = corpus.sequences[0]?.predictions;
      if (!first || corpus.sequences.some((s) => !s.predictions)) {
        throw new UserError(`--prefetch predicted: trace ${where} carries no predictions (pass --predictor DIR, or use a trace with a 'predicted' column)`);
      }
      for (const s of corpus.sequences) {
        const p = s.predictions!;
        if (p.lookahead !== first.lookahead || p.width !== first.width) throw new UserError(`--prefetch predicted: sequences disagree on prediction lookahead or width`);
        if (p.ids.length !== s.length * L * p.width) throw new UserError(`--prefetch predicted: sequence ${s.seq} has ${p.ids.length} prediction ids, expected ${s.length * L * p.width}`);
        const bad = p.ids.findIndex((id) => id !== NO_EXPERT && id >= E);
        if (bad >= 0) throw new UserError(`--prefetch predicted: sequence ${s.seq} predicts expert ${p.ids[bad]}, but the trace has ${E} experts`);
      }
      if (!Number.isInteger(first.lookahead) || first.lookahead < 1) throw new UserError(`--prefetch predicted: lookahead must be a positive integer, got ${first.lookahead}`);
      const w = first.width;
      const sets = collectSets(schedule, L, E, (token, l, visit) => {
        const p = corpus.sequences[schedule.tokenSeq[token]].predictions!;
        const base = (schedule.tokenPos[token] * L + l) * w;
        for (let j = 0; j < w; j++) visit(p.ids[base + j]);
      });
      return { name, sets, lookahead: first.lookahead };
    }
    default:
      throw new UserError(`unknown prefetcher '${String(name)}' (choose from ${PREFETCH_NAMES.join(', ')})`);
  }
}
