/**
 * Fills corpus sequences' `predictions` from a trace's `predicted` column (the experts a prefetcher
 * predicted for each (step, layer) row). The column does not say how early the prediction was made;
 * `lookahead` (default 1 layer) is the simulator's assumption and is reported with the results.
 */
import { NO_EXPERT, type RoutingCorpus } from '../../../traces/src/sequences.js';
import type { TraceTable } from '../../../traces/src/reader.js';

export const PREDICTED_COLUMN_LOOKAHEAD = 1;

/** Returns true when the trace had a `predicted` column and predictions were attached. */
export function attachPredictedColumn(table: TraceTable, corpus: RoutingCorpus, lookahead = PREDICTED_COLUMN_LOOKAHEAD): boolean {
  if (!table.predicted) return false;
  const L = corpus.moeLayers.length;
  const layerIndex = new Map(corpus.moeLayers.map((l, i) => [l, i]));
  let width = 1;
  for (const ids of table.predicted) width = Math.max(width, ids.length);
  const bySeq = new Map(corpus.sequences.map((s) => [s.seq, { s, posIndex: new Map(Array.from(s.positions, (p, t) => [p, t])) }]));
  for (const { s } of bySeq.values()) s.predictions = { lookahead, width, ids: new Uint16Array(s.length * L * width).fill(NO_EXPERT) };
  for (let r = 0; r < table.rows; r++) {
    const entry = bySeq.get(table.seq[r])!;
    const t = entry.posIndex.get(table.pos[r])!;
    const l = layerIndex.get(table.layer[r])!;
    entry.s.predictions!.ids.set(table.predicted[r], (t * L + l) * width);
  }
  return true;
}
