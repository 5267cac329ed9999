/**
 * The two profile terms calibrate reads from its offloaded-style layer steps (measure-layer-step.ts), given
 * the same calibration's expert launch table and non-expert curve:
 *
 * - gpu.eagerLayerOverheadMs: the eager, synchronised layer (host clock) minus its graph replay (GPU time).
 *   Raw files before 2026-12-08 (no `sameExperts`) do not run the same expert work in the two: the eager
 *   run's expert kernel read the routing the router computed on random data (about E(1 - (1 - k/E)^T)
 *   distinct experts at T rows, taken as uniform), the graph's the ids the upload buffer holds, experts
 *   0..k-1 with T tokens each. At T = 1 that is the same work; at 16 rows the eager one reads ~52 experts'
 *   weights against 6, and the plain difference counted those weight reads as launch overhead (0.30 of 0.30 ms
 *   at batch 16 with bf16 on an H100, 0.12 of it weights). The launch table prices both geometries; their
 *   difference is taken off. Since then the eager runs read experts 0..k-1 too (calibrate_cuda.cpp), and the
 *   plain difference is the launching alone: nothing is taken off.
 * - gpu.layerGlueMs: the graph replay minus the layer's non-expert part (moeLayerOther at the step's context)
 *   and its expert launch (the launch table at k experts x T tokens, the graph's own geometry): the routing's
 *   copies down, the upload and the combine, GPU work the simulator's other curves do not hold.
 * - gpu.cpuJoinLayerOverheadMs, where the raw steps have join records: the eager step with a CPU join minus
 *   the eager step (measure-layer-step.ts cpuJoinOverheadCurve), with or without a launch table.
 *
 * Without a launch table (calibrations before it) the first two are not computed: the plain difference
 * stays, no glue (setLayerStepTerms writes that fallback too).
 */
import type { LaunchTable, TokenCurve } from '../../../sim/src/cost/calibration.js';
import { interpolate, interpolateContext } from '../../../sim/src/cost/cost-model.js';
import { cpuJoinOverheadCurve, cpuJoinOverheadSource, eagerOverheadCurve, eagerOverheadSource, layerStepAt, layerStepDescription, type RawLayerStep } from './measure-layer-step.js';
import type { CalibratePlan } from './plan.js';

export interface LayerStepShape {
  /** routed experts per layer (E) and per token (k) */
  experts: number;
  topK: number;
}

export interface NonExpertCurves {
  moeLayerOtherMs: TokenCurve;
  byContext?: { moeLayerOtherMs: Array<[number, TokenCurve]> };
}

export interface LayerStepTermPoint {
  batch: number;
  eagerMs: number;
  graphMs: number;
  /** launch table: the eager run's routing minus the graph's experts 0..k-1 (0 when both read the same experts) */
  routingLaunchMs: number;
  moeOtherMs: number;
  graphLaunchMs: number;
}

export interface LayerStepTerms {
  eagerLayerOverheadMs: TokenCurve;
  layerGlueMs: TokenCurve;
  points: LayerStepTermPoint[];
}

/** Expected distinct experts among T rows of k distinct experts each, drawn uniformly from E. */
export function expectedDistinctExperts(rows: number, experts: number, topK: number): number {
  return Math.min(experts, experts * (1 - Math.pow(1 - topK / experts, rows)));
}

function launchMs(t: LaunchTable, experts: number, pairs: number): number {
  return interpolateContext(t.ms, pairs / experts, experts);
}

const r4 = (x: number) => Number(Math.max(0, x).toPrecision(4));

export function layerStepTerms(raw: RawLayerStep[], launch: LaunchTable, gpu: NonExpertCurves, shape: LayerStepShape): LayerStepTerms {
  const batches = [...new Set(raw.map((r) => r.batch))].sort((a, b) => a - b);
  const points = batches.map((b) => {
    const eager = layerStepAt(raw, b, 'eager');
    const graph = layerStepAt(raw, b, 'graph');
    if (!eager || !graph) throw new Error(`calibrate: layer step at batch ${b} lacks its ${eager ? 'graph' : 'eager'} measurement`);
    const pairs = b * shape.topK;
    const graphLaunchMs = launchMs(launch, shape.topK, pairs);
    const routingLaunchMs = eager.sameExperts ? 0 : launchMs(launch, expectedDistinctExperts(b, shape.experts, shape.topK), pairs) - graphLaunchMs;
    const moeOtherMs = gpu.byContext ? interpolateContext(gpu.byContext.moeLayerOtherMs, b, graph.context) : interpolate(gpu.moeLayerOtherMs, b);
    return { batch: b, eagerMs: eager.medianMs, graphMs: graph.medianMs, routingLaunchMs, moeOtherMs, graphLaunchMs };
  });
  return {
    eagerLayerOverheadMs: points.map((p) => [p.batch, r4(p.eagerMs - p.graphMs - p.routingLaunchMs)]),
    layerGlueMs: points.map((p) => [p.batch, r4(p.graphMs - p.moeOtherMs - p.graphLaunchMs)]),
    points,
  };
}

/** The sources entries' text: how each batch's figures were formed. */
export function layerStepTermsSource(where: string, t: LayerStepTerms, sameExperts = false): { eager: string; glue: string } {
  const f = (x: number) => x.toFixed(4);
  return {
    eager: sameExperts
      ? `${where}, the offloaded-style layer step eager with its routing synchronisation (host clock) minus its graph replay, both launching experts 0..k-1 ` +
        `(${t.points.map((p) => `batch ${p.batch}: ${f(p.eagerMs)} - ${f(p.graphMs)} ms`).join(', ')}); at 0 when negative; held past its last batch`
      : `${where}, the offloaded-style layer step eager with its routing synchronisation (host clock) minus its graph replay, minus the launch table's difference between the eager run's routing ` +
        `(uniform distinct experts) and the graph's experts 0..k-1 (${t.points.map((p) => `batch ${p.batch}: ${f(p.eagerMs)} - ${f(p.graphMs)} - ${f(p.routingLaunchMs)} ms`).join(', ')}); at 0 when negative; held past its last batch`,
    glue:
      `${where}, the layer step's graph replay minus moeLayerOther at its context and the launch table at k experts x batch tokens (the routing's copies, the upload, the combine: ` +
      `${t.points.map((p) => `batch ${p.batch}: ${f(p.graphMs)} - ${f(p.moeOtherMs)} - ${f(p.graphLaunchMs)} ms`).join(', ')}); at 0 when negative; held past its last batch`,
  };
}

/**
 * Sets `gpu`'s eagerLayerOverheadMs and layerGlueMs from the layer steps, with their sources entries under
 * `key` (`gpu` or `byExpertDtype.<d>.gpu`): the one place calibrate and layer-terms-from-raw write them.
 * Without a launch table only the plain eager-minus-graph curve is written (no glue). cpuJoinLayerOverheadMs
 * too, where the steps have join records.
 */
export function setLayerStepTerms(
  gpu: { eagerLayerOverheadMs?: TokenCurve; layerGlueMs?: TokenCurve; cpuJoinLayerOverheadMs?: TokenCurve },
  sources: Record<string, string>,
  key: string,
  where: string,
  plan: CalibratePlan,
  raw: RawLayerStep[],
  launch: LaunchTable | undefined,
  nonExpert: NonExpertCurves,
  shape: LayerStepShape,
): void {
  const join = cpuJoinOverheadCurve(raw);
  if (join) {
    gpu.cpuJoinLayerOverheadMs = join;
    sources[`${key}.cpuJoinLayerOverheadMs`] = cpuJoinOverheadSource(`${where}, ${layerStepDescription(plan)}`, raw);
  }
  if (!launch) {
    gpu.eagerLayerOverheadMs = eagerOverheadCurve(raw);
    sources[`${key}.eagerLayerOverheadMs`] = eagerOverheadSource(where, raw, plan);
    return;
  }
  const t = layerStepTerms(raw, launch, nonExpert, shape);
  const text = layerStepTermsSource(`${where}, ${layerStepDescription(plan)}`, t, raw.every((r) => r.sameExperts));
  gpu.eagerLayerOverheadMs = t.eagerLayerOverheadMs;
  gpu.layerGlueMs = t.layerGlueMs;
  sources[`${key}.eagerLayerOverheadMs`] = text.eager;
  sources[`${key}.layerGlueMs`] = text.glue;
}
