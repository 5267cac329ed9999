/**
 * Predicted against measured, per point: each validated configuration's error, the rank correlation of the
 * two orders, and the regret of the simulator's pick; plus the acceptance checks, evaluated (never
 * assumed) from those figures.
 */
import { regret, relativeError, spearman } from './rank-stats.js';
import type { MeasuredRun } from './measure.js';
import type { PlannedRun, RankedConfig, ValidationPlan } from './plan.js';

export interface ValidatedRow extends PlannedRun {
  measured: Omit<MeasuredRun, 'batch' | 'prompt' | 'key'> | null;
  /** predicted / measured - 1, ms per output token */
  error: number | null;
  /** the bench's replay of its lanes gave the plan's hit rate: the same lanes were simulated and run */
  sameLanes: boolean | null;
}

export interface PointValidation {
  batch: number;
  prompt: number;
  newTokens: number;
  warmup: number;
  repeats: number;
  lanes: string;
  rows: ValidatedRow[];
  /** over the rows measured (null: fewer than 2, or an order without spread) */
  spearman: number | null;
  /** the simulator's pick: its best configuration that the runtime can run */
  pick: { key: string; predictedMs: number; measuredMs: number | null } | null;
  measuredBest: { key: string; measuredMs: number } | null;
  /** measured ms of the pick / measured best - 1 */
  regret: number | null;
  /** configurations ranked above the pick that the runtime cannot run, not validated (best first, at most 5) */
  betterButNotRunnable: Pick<RankedConfig, 'key' | 'rank' | 'predictedMs' | 'predictedTokensPerSecond' | 'runtimeGaps'>[];
  notSimulated: { prefetch: string; reason: string }[];
}

export interface Check {
  name: string;
  value: number | null;
  limit: string;
  pass: boolean;
}

export interface ValidationResult {
  format: 'moe-offload-validation-v1';
  /** complete: every planned run was measured; interrupted: some were not (the output says which) */
  status: 'complete' | 'interrupted';
  date: string;
  command: string;
  device: string;
  plan: Omit<ValidationPlan, 'points'>;
  points: PointValidation[];
  checks: Check[];
  /** sims of every configuration, per point (the ranking) */
  ranked: { batch: number; prompt: number; ranked: RankedConfig[] }[];
}

export function buildResult(plan: ValidationPlan, measured: MeasuredRun[], o: { status: 'complete' | 'interrupted'; command: string; date: string }): ValidationResult {
  const points: PointValidation[] = plan.points.map((p) => {
    const rows: ValidatedRow[] = p.runs.map((r) => {
      const m = measured.find((x) => x.batch === p.batch && x.prompt === p.prompt && x.key === r.key);
      if (!m) return { ...r, measured: null, error: null, sameLanes: null };
      const { batch: _b, prompt: _p, key: _k, ...rest } = m;
      return { ...r, measured: rest, error: relativeError(r.predictedMs.mean, m.msPerToken.mean), sameLanes: m.simHitRate === null ? null : Math.abs(m.simHitRate - r.hitRate) < 1e-12 };
    });
    const done = rows.filter((r) => r.measured);
    const rho = spearman(done.map((r) => r.predictedMs.mean), done.map((r) => r.measured!.msPerToken.mean));
    const pickRow = rows.find((r) => r.roles.includes('top 1')) ?? null;
    const best = done.length ? done.reduce((a, b) => (b.measured!.msPerToken.mean < a.measured!.msPerToken.mean ? b : a)) : null;
    const pick = pickRow ? { key: pickRow.key, predictedMs: pickRow.predictedMs.mean, measuredMs: pickRow.measured?.msPerToken.mean ?? null } : null;
    const pickRank = pickRow?.rank ?? Infinity;
    return {
      batch: p.batch,
      prompt: p.prompt,
      newTokens: p.newTokens,
      warmup: p.warmup,
      repeats: p.repeats,
      lanes: p.lanes,
      rows,
      spearman: rho,
      pick,
      measuredBest: best ? { key: best.key, measuredMs: best.measured!.msPerToken.mean } : null,
      regret: pick?.measuredMs != null && done.length ? regret(pick.measuredMs, done.map((r) => r.measured!.msPerToken.mean)) : null,
      betterButNotRunnable: p.ranked
        .filter((r) => r.rank < pickRank && r.runtimeGaps.length > 0)
        .slice(0, 5)
        .map((r) => ({ key: r.key, rank: r.rank, predictedMs: r.predictedMs, predictedTokensPerSecond: r.predictedTokensPerSecond, runtimeGaps: r.runtimeGaps })),
      notSimulated: p.notSimulated,
    };
  });
  const checks: Check[] = [];
  for (const p of points) {
    const at = `batch ${p.batch}, prompt ${p.prompt}`;
    const errs = p.rows.filter((r) => r.error !== null).map((r) => Math.abs(r.error!));
    const worst = errs.length ? Math.max(...errs) : null;
    checks.push({ name: `${at}: largest |predicted / measured - 1| over the validated configurations`, value: worst, limit: '<= 10%', pass: worst !== null && worst <= 0.1 });
    checks.push({ name: `${at}: Spearman rank correlation, predicted vs measured order`, value: p.spearman, limit: '>= 0.8', pass: p.spearman !== null && p.spearman >= 0.8 });
    checks.push({ name: `${at}: regret of the simulator's pick (measured, vs the measured best)`, value: p.regret, limit: '<= 5%', pass: p.regret !== null && p.regret <= 0.05 });
  }
  const { points: planPoints, ...planRest } = plan;
  return {
    format: 'moe-offload-validation-v1',
    status: o.status,
    date: o.date,
    command: o.command,
    device: measured[0]?.device ?? 'none',
    plan: planRest,
    points,
    checks,
    ranked: planPoints.map((p) => ({ batch: p.batch, prompt: p.prompt, ranked: p.ranked })),
  };
}
