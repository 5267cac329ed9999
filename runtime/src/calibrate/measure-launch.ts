/**
 * Launches of the decode expert kernel over several experts at once (sim/src/cost/calibration.ts
 * LaunchTable): the runtime computes a layer's resident experts in one launch, its loaded ones in another,
 * each staged one alone (native/src/cuda_backend/cuda_offload_layer.cpp), and one launch of m experts
 * costs far less than m launches of one. Every point is measured: m distinct cold experts x t tokens each
 * (plan.launchExperts x plan.launchTokens), bf16 and each quantized dtype alike.
 */
import type { LaunchTable, TokenCurve } from '../../../sim/src/cost/calibration.js';
import type { Progress } from '../../../core/src/progress.js';
import { median } from './fit.js';
import type { NativeCudaCalibrator } from './native.js';
import type { CalibratePlan } from './plan.js';
import { sampled, type Sampled } from './raw.js';

export interface RawLaunch extends Sampled {
  experts: number;
  tokens: number;
}

/** The (experts, tokens each) points for a model with `routedExperts` experts (at most the pool). */
export function launchPoints(plan: CalibratePlan, routedExperts: number): Array<[number, number]> {
  const cap = Math.min(routedExperts, plan.gpuExpertPool);
  const experts = plan.launchExperts.filter((m) => m <= cap);
  if (experts[experts.length - 1] !== cap && cap < Math.max(...plan.launchExperts)) experts.push(cap);
  const tokens = plan.launchTokens.filter((t) => t <= plan.gemvMaxRows);
  return experts.flatMap((m) => tokens.map((t) => [m, t] as [number, number]));
}

/** Null when the addon has no launchMs (a build before it): the profile then has no launch table. */
export function measureLaunches(cal: NativeCudaCalibrator, plan: CalibratePlan, routedExperts: number, progress: Progress): RawLaunch[] | null {
  const pts = launchPoints(plan, routedExperts);
  if (typeof cal.launchMs !== 'function') {
    for (let i = 0; i < pts.length; i++) progress.tick();
    return null;
  }
  return pts.map(([experts, tokens]) => {
    const r = { experts, tokens, ...sampled(cal.launchMs!(experts, tokens, plan.repeats), median) };
    progress.tick();
    return r;
  });
}

/** The profile's table: medians, [[experts, [[tokens, ms], ...]], ...], both ascending. */
export function launchTable(raw: RawLaunch[], plan: CalibratePlan): LaunchTable {
  const by = new Map<number, TokenCurve>();
  for (const r of [...raw].sort((a, b) => a.experts - b.experts || a.tokens - b.tokens)) {
    if (!by.has(r.experts)) by.set(r.experts, []);
    by.get(r.experts)!.push([r.tokens, Number(r.medianMs.toPrecision(4))]);
  }
  return { maxRows: plan.gemvMaxRows, ms: [...by.entries()] };
}

export function launchSource(where: string, what: string, raw: RawLaunch[], plan: CalibratePlan): string {
  const e = [...new Set(raw.map((r) => r.experts))].join(', ');
  const t = [...new Set(raw.map((r) => r.tokens))].join(', ');
  return `${where}, one launch of the decode expert kernel (${what}, per-entry outputs, as the offload path) over m = ${e} distinct experts x t = ${t} tokens each (t rows routed to all m), consecutive launches on other experts of a pool of ${plan.gpuExpertPool} (cold in L2), CUDA events, median of ${plan.repeats}; used for steps of at most ${plan.gemvMaxRows} rows`;
}
