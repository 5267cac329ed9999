/**
 * What the offloaded runtime's way of running a MoE layer costs beyond the layer's GPU work (profile
 * gpu.eagerLayerOverheadMs, sim/src/cost/calibration.ts). The runtime offloads without CUDA graphs and
 * brings every layer's routing to the host (one stream synchronisation), so the GPU's queue drains at each
 * layer and the next ~15-25 launches pay their launch latency; calibrate's other GPU figures are
 * back-to-back GPU work (graph replays, CUDA events) and do not see it. Measured per decode batch up to the
 * decode expert kernel's rows: the native layer_step_ms of an offloaded-style layer (all experts resident)
 * eagerly with the synchronisation (host clock) and as a graph replay (GPU time); the curve is their
 * difference. The runtime's own host work (cache, placement, miss rule) is not in it: host.layerMs (bench).
 *
 * With `join` (the bf16 measurement), the same eager step with a CPU experts' join after its expert launch
 * as well (`eager-join`): the host waits again, uploads and scatters the outputs, then launches the rest of
 * the layer and the next one to a drained GPU. Its difference from the eager step is
 * gpu.cpuJoinLayerOverheadMs (layer-step-terms.ts).
 */
import type { TokenCurve } from '../../../sim/src/cost/calibration.js';
import type { Progress } from '../../../core/src/progress.js';
import { median } from './fit.js';
import type { LayerStepMode, NativeCudaCalibrator } from './native.js';
import type { CalibratePlan } from './plan.js';
import { sampled, type Sampled } from './raw.js';

export interface RawLayerStep extends Sampled {
  batch: number;
  context: number;
  /** true: eager with the per-layer host synchronisation (host clock); false: the graph replay (GPU time) */
  sync: boolean;
  /** eager with a CPU experts' join as well (mode eager-join; sync true). Absent: without one */
  join?: boolean;
  /**
   * true: the eager runs' expert launch read the graph's experts (0..k-1), so eager minus graph is launching
   * alone. Absent (raw files before 2026-12-08): the eager run read the router's ids on random data
   * (layer-step-terms.ts takes the launch table's difference off).
   */
  sameExperts?: boolean;
}

/** The step's record of `mode` at `batch` (a join record is never the plain eager one). */
export function layerStepAt(raw: RawLayerStep[], batch: number, mode: LayerStepMode): RawLayerStep | undefined {
  return raw.find((r) => r.batch === batch && r.sync === (mode !== 'graph') && (r.join === true) === (mode === 'eager-join'));
}

/** The decode batches measured: the plan's, up to the decode expert kernel's rows (the runtime's kernel there). */
export function layerStepBatches(plan: CalibratePlan): number[] {
  return plan.batches.filter((b) => b <= plan.gemvMaxRows);
}

/** The modes measured per batch: eager and graph, and with `join` the eager step with a CPU join. */
function layerStepModes(join: boolean): LayerStepMode[] {
  return join ? ['eager', 'graph', 'eager-join'] : ['eager', 'graph'];
}

/** Measurements measureLayerSteps makes (for the progress bar). */
export function layerStepPoints(plan: CalibratePlan, join = false): number {
  return layerStepModes(join).length * layerStepBatches(plan).length;
}

/** Null when the addon has no layerStepMs (a build before it): the profile then has no such curve. */
export function measureLayerSteps(cal: NativeCudaCalibrator, plan: CalibratePlan, progress: Progress, join = false): RawLayerStep[] | null {
  if (typeof cal.layerStepMs !== 'function') {
    for (let i = 0; i < layerStepPoints(plan, join); i++) progress.tick();
    return null;
  }
  const out: RawLayerStep[] = [];
  for (const batch of layerStepBatches(plan)) {
    for (const mode of layerStepModes(join)) {
      const samples = cal.layerStepMs!(batch, plan.referenceContext, mode, plan.repeats);
      out.push({ batch, context: plan.referenceContext, sync: mode !== 'graph', ...(mode === 'eager-join' ? { join: true } : {}), sameExperts: true, ...sampled(samples, median) });
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
    const eager = layerStepAt(raw, b, 'eager');
    const graph = layerStepAt(raw, b, 'graph');
    if (!eager || !graph) throw new Error(`calibrate: layer step at batch ${b} lacks its ${eager ? 'graph' : 'eager'} measurement`);
    return [b, Number(Math.max(0, eager.medianMs - graph.medianMs).toPrecision(4))] as [number, number];
  });
}

/**
 * gpu.cpuJoinLayerOverheadMs: per batch with a join record, the eager step with the join minus the eager
 * step, at 0 when negative; null when no batch has one (raw files before it, the per-dtype measurements).
 */
export function cpuJoinOverheadCurve(raw: RawLayerStep[]): TokenCurve | null {
  const batches = [...new Set(raw.filter((r) => r.join).map((r) => r.batch))].sort((a, b) => a - b);
  if (batches.length === 0) return null;
  return batches.map((b) => {
    const eager = layerStepAt(raw, b, 'eager');
    if (!eager) throw new Error(`calibrate: layer step at batch ${b} has a join measurement but no eager one`);
    return [b, Number(Math.max(0, layerStepAt(raw, b, 'eager-join')!.medianMs - eager.medianMs).toPrecision(4))] as [number, number];
  });
}

/** cpuJoinOverheadCurve's source text. */
export function cpuJoinOverheadSource(where: string, raw: RawLayerStep[]): string {
  const pts = (cpuJoinOverheadCurve(raw) ?? [])
    .map(([b]) => `batch ${b}: ${layerStepAt(raw, b, 'eager-join')!.medianMs.toFixed(4)} - ${layerStepAt(raw, b, 'eager')!.medianMs.toFixed(4)} ms`)
    .join(', ');
  return (
    `${where}, the same layer step eager with a CPU experts' join after its expert launch (the host waits for the drained GPU, uploads one output row per token ` +
    `with its entry, scatters them, then launches the combine and the next layer) minus the step without it (${pts}); negative differences at 0; held at its last batch above it`
  );
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
    .map(([b]) => `batch ${b}: ${layerStepAt(raw, b, 'eager')!.medianMs.toFixed(4)} - ${layerStepAt(raw, b, 'graph')!.medianMs.toFixed(4)} ms`)
    .join(', ');
  return `${where}, ${layerStepDescription(plan)}, eager minus graph (${pts}); negative differences at 0; held at its last batch above it`;
}
