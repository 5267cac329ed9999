/**
 * What the offloaded runtime's way of running a MoE layer costs beyond the layer's GPU work (profile
 * gpu.eagerLayerOverheadMs, sim/src/cost/calibration.ts). The runtime offloads without CUDA graphs and
 * brings every layer's routing to the host (one stream synchronisation), so the GPU's queue drains at each
 * layer and the next ~15-25 launches pay their launch latency; calibrate's other GPU figures are
 * back-to-back GPU work (graph replays, CUDA events) and do not see it. Measured per decode batch up to the
 * decode expert kernel's rows: the native layer_step_ms of an offloaded-style layer (all experts resident)
 * eagerly with the synchronisation (host clock) and as a graph replay (GPU time); the curve is their
 * difference. The runtime's own host work (cache, placement, miss rule) is not in it: host.layerMs (bench).
 */
import type { TokenCurve } from '../../../sim/src/cost/calibration.js';
import type { Progress } from '../../../core/src/progress.js';
import { median } from './fit.js';
import type { NativeCudaCalibrator } from './native.js';
import type { CalibratePlan } from './plan.js';
import { sampled, type Sampled } from './raw.js';

export interface RawLayerStep extends Sampled {
  batch: number;
  context: number;
  /** true: eager with the per-layer host synchronisation (host clock); false: the graph replay (GPU time) */
  sync: boolean;
}

/** The decode batches measured: the plan's, up to the decode expert kernel's rows (the runtime's kernel there). */
export function layerStepBatches(plan: CalibratePlan): number[] {
  return plan.batches.filter((b) => b <= plan.gemvMaxRows);
}

/** Measurements measureLayerSteps makes (for the progress bar). */
export function layerStepPoints(plan: CalibratePlan): number {
  return 2 * layerStepBatches(plan).length;
}

/** Null when the addon has no layerStepMs (a build before it): the profile then has no such curve. */
export function measureLayerSteps(cal: NativeCudaCalibrator, plan: CalibratePlan, progress: Progress): RawLayerStep[] | null {
  if (typeof cal.layerStepMs !== 'function') {
    for (let i = 0; i < layerStepPoints(plan); i++) progress.tick();
    return null;
  }
  const out: RawLayerStep[] = [];
  for (const batch of layerStepBatches(plan)) {
    for (const sync of [true, false]) {
      out.push({ batch, context: plan.referenceContext, sync, ...sampled(cal.layerStepMs!(batch, plan.referenceContext, sync, plan.repeats), median) });
      progress.tick();
    }
  }
  return out;
}

/**
 * The profile's curve: per batch, the eager synchronised layer's median minus the graph replay's, at 0 when
 * negative (noise; launching cannot make the GPU work faster). Throws when a batch lacks one of the two.
 */
export function eagerOverheadCurve(raw: RawLayerStep[]): TokenCurve {
  const batches = [...new Set(raw.map((r) => r.batch))].sort((a, b) => a - b);
  return batches.map((b) => {
    const at = (sync: boolean) => raw.find((r) => r.batch === b && r.sync === sync);
    const eager = at(true);
    const graph = at(false);
    if (!eager || !graph) throw new Error(`calibrate: layer step at batch ${b} lacks its ${eager ? 'graph' : 'eager'} measurement`);
    return [b, Number(Math.max(0, eager.medianMs - graph.medianMs).toPrecision(4))] as [number, number];
  });
}

/** What the layer step is and how it is timed (the sources entries' common part). */
export function layerStepDescription(plan: CalibratePlan): string {
  return (
    `an offloaded-style MoE layer step (attention, router + top-k, routing to pinned host memory, upload, shared experts, one decode expert launch over the routed entries, combine; all experts resident) ` +
    `launched eagerly with a stream synchronisation on the routing every layer (host wall clock over runs of ${plan.layerCopies} layer copies cycled) and the same GPU work replayed as a CUDA graph (CUDA events), ` +
    `median of ${plan.repeats} each, at context ${plan.referenceContext}`
  );
}

/** The plain difference's source (a calibration without a launch table: layer-step-terms.ts cannot correct it). */
export function eagerOverheadSource(where: string, raw: RawLayerStep[], plan: CalibratePlan): string {
  const pts = eagerOverheadCurve(raw)
    .map(([b]) => {
      const ms = (sync: boolean) => raw.find((r) => r.batch === b && r.sync === sync)!.medianMs.toFixed(4);
      return `batch ${b}: ${ms(true)} - ${ms(false)} ms`;
    })
    .join(', ');
  return `${where}, ${layerStepDescription(plan)}, eager minus graph (${pts}); negative differences at 0; held at its last batch above it`;
}
