/** Plain-text tables of an evaluation, for the terminal. */
import { BASELINE_LABELS, type BaselineName } from './baselines.js';
import type { EvalReport } from './evaluate.js';

const pct = (x: number) => (100 * x).toFixed(1);

/**
 * Per target layer: recall at top-k of the predictor and each baseline, and the predictor's lead over the
 * best of the baselines shown (next-layer gate included when the trace has it). minMargin below is a
 * different figure (over previous token and most popular only), and the two are named apart.
 */
export function formatEvalReport(r: EvalReport, topK: number): string {
  const names = Object.keys(r.baselines) as BaselineName[];
  const lines: string[] = [];
  const head = ['layer', ...(r.predictor ? ['predictor'] : []), ...names.map((n) => BASELINE_LABELS[n]), ...(r.predictor ? ['vs best baseline'] : [])];
  lines.push(`recall@${topK} (%) by target layer, k = ${r.lookahead}, ${r.samples} samples`);
  lines.push(head.join('\t'));
  const rows = (r.predictor ?? r.baselines.popularity!).perLayer;
  rows.forEach((row, n) => {
    const base = names.map((b) => r.baselines[b]!.perLayer[n].at[topK].recall);
    const cells = [String(row.layer)];
    if (r.predictor) cells.push(pct(row.at[topK].recall));
    cells.push(...base.map(pct));
    if (r.predictor) cells.push((row.at[topK].recall - Math.max(...base) >= 0 ? '+' : '') + pct(row.at[topK].recall - Math.max(...base)));
    lines.push(cells.join('\t'));
  });
  lines.push('');
  lines.push('overall: recall / precision (%) at each budget');
  lines.push(['budget', ...(r.predictor ? ['predictor'] : []), ...names.map((n) => BASELINE_LABELS[n])].join('\t'));
  for (const b of r.budgets) {
    const cell = (m: { overall: { at: Record<string, { recall: number; precision: number }> } }) => `${pct(m.overall.at[b].recall)} / ${pct(m.overall.at[b].precision)}`;
    lines.push([String(b), ...(r.predictor ? [cell(r.predictor)] : []), ...names.map((n) => cell(r.baselines[n]!))].join('\t'));
  }
  return lines.join('\n');
}

/** The smallest per-layer margin of the predictor's recall at budget over the better of the baselines named. */
export function minMargin(r: EvalReport, budget: number, baselines: BaselineName[] = ['previousToken', 'popularity']): { margin: number; layer: number } {
  if (!r.predictor) throw new Error('internal: no predictor metrics');
  let worst = { margin: Infinity, layer: -1 };
  r.predictor.perLayer.forEach((row, n) => {
    const best = Math.max(...baselines.filter((b) => r.baselines[b]).map((b) => r.baselines[b]!.perLayer[n].at[budget].recall));
    const margin = row.at[budget].recall - best;
    if (margin < worst.margin) worst = { margin, layer: row.layer };
  });
  return worst;
}
