/** Durations (ms) from a calibration profile. */
import type { CostModel, TokenCurve } from './calibration.js';


export function interpolate(curve: TokenCurve, tokens: number): number {
  if (curve.length === 1) return curve[0][1];
  let i = 1;
  while (i < curve.length - 1 && curve[i][0] < tokens) i++;
  const [x0, y0] = curve[i - 1];
  const [x1, y1] = curve[i];
  return Math.max(0, y0 + ((y1 - y0) * (tokens - x0)) / (x1 - x0));
}

/**
 * A [[context, curve], ...] table at (tokens, context): each curve at `tokens`, then piecewise linear in
 * the context between the two bracketing contexts, extrapolated linearly past the ends (attention's
 * cost grows about linearly with the context), never below 0.
 */
export function interpolateContext(table: Array<[number, TokenCurve]>, tokens: number, context: number): number {
  if (table.length === 1) return interpolate(table[0][1], tokens);
  let i = 1;
  while (i < table.length - 1 && table[i][0] < context) i++;
  const [c0, k0] = table[i - 1];
  const [c1, k1] = table[i];
  const y0 = interpolate(k0, tokens);
  const y1 = interpolate(k1, tokens);
  return Math.max(0, y0 + ((y1 - y0) * (context - c0)) / (c1 - c0));
}

/** An optional per-layer overhead curve at `tokens`, held at its last point past it; 0 when absent. */
function heldCurve(c: TokenCurve | undefined, tokens: number): number {
  if (!c) return 0;
  return interpolate(c, Math.min(tokens, c[c.length - 1][0]));
}

export class Costs {
  readonly copyMs: number;
  constructor(readonly model: CostModel) {
    this.copyMs = model.transfer.perCopyMs + model.expertBytes / (model.transfer.h2dGBps * 1e6);
  }
  gpuExpert(tokens: number): number {
    return interpolate(this.model.gpu.expertMs, tokens);
  }
  /** Whether GPU expert work is timed per launch (gpu.launch) for steps of `rows` rows; else per expert. */
  launchModel(rows: number): boolean {
    const t = this.model.gpu.launch;
    return t !== undefined && rows <= t.maxRows;
  }
  /**
   * One launch of the expert kernel over `experts` experts serving `tokens` (expert, token) pairs in all:
   * the measured table at `experts` experts x tokens/experts tokens each, piecewise linear in both
   * (mean tokens per expert: the kernels read each expert's weights once, so its cost is about linear in
   * its tokens and the mean gives the sum). Needs gpu.launch (launchModel).
   */
  gpuLaunch(experts: number, tokens: number): number {
    const t = this.model.gpu.launch;
    if (!t) throw new Error('internal: gpuLaunch without a gpu.launch table');
    return interpolateContext(t.ms, tokens / experts, experts);
  }
  /** The miss rule's estimate of a CPU expert: calibrate's per-expert time plus the activations' round trip. */
  cpuExpert(tokens: number): number {
    return this.cpuExpertKernel(tokens) + this.model.cpu.activationCopyMs;
  }
  /** calibrate's per-expert CPU time alone: the part the run's CPU correction scales (cpu-correction.ts). */
  cpuExpertKernel(tokens: number): number {
    return interpolate(this.model.cpu.expertMs, tokens);
  }
  /** How long a CPU expert job runs in the runtime (cpu.jobMs when measured, else calibrate's expertMs). */
  cpuJob(tokens: number): number {
    return interpolate(this.model.cpu.jobMs ?? this.model.cpu.expertMs, tokens);
  }
  /**
   * Host DRAM shared by the copy engine and the CPU workers (profiles with calibrate's side-by-side
   * measurements): a CPU job that starts while copies run lasts cpuJobBesideCopies instead of cpuJob
   * (cpu.expertMsUnderCopy; not when cpu.jobMs is given: those logged times already include it), and a
   * copy that starts while CPU jobs of `tokens` tokens run lasts copySlowdownBesideCpu(tokens) times longer.
   */
  cpuJobBesideCopies(tokens: number): number {
    const under = this.model.cpu.expertMsUnderCopy;
    return under && !this.model.cpu.jobMs ? interpolate(under, tokens) : this.cpuJob(tokens);
  }
  copySlowdownBesideCpu(tokens: number): number {
    const c = this.model.transfer.copySlowdownUnderCpu;
    return c ? interpolate(c, tokens) : 1;
  }
  /** With `context` (cached tokens per row) and a profile with gpu.byContext: that context's time. */
  moeLayerOther(tokens: number, context?: number): number {
    const t = this.model.gpu.byContext?.moeLayerOtherMs;
    if (context !== undefined && t) return interpolateContext(t, tokens, context);
    return interpolate(this.model.gpu.moeLayerOtherMs, tokens);
  }
  denseLayer(tokens: number, context?: number): number {
    const t = this.model.gpu.byContext?.denseLayerMs;
    if (context !== undefined && t) return interpolateContext(t, tokens, context);
    return interpolate(this.model.gpu.denseLayerMs, tokens);
  }
  head(tokens: number): number {
    return interpolate(this.model.gpu.headMs, tokens);
  }
  /**
   * The offloaded runtime's per-MoE-layer cost of eager launches and the routing's host synchronisation
   * (gpu.eagerLayerOverheadMs; 0 without it). Held at the curve's last point past its last row count: it is
   * measured up to the decode kernel's rows only, and a line through two launch-overhead points says nothing
   * about larger steps.
   */
  eagerLayerOverhead(tokens: number): number {
    return heldCurve(this.model.gpu.eagerLayerOverheadMs, tokens);
  }
  /** Per MoE layer of a resident step (gpu.residentLayerOverheadMs; 0 without it), held past its last point. */
  residentLayerOverhead(tokens: number): number {
    return heldCurve(this.model.gpu.residentLayerOverheadMs, tokens);
  }
  /** Per MoE layer of a step whose routing goes to the host: the routing's copies and the combine (gpu.layerGlueMs; 0 without it), held past its last point. */
  layerGlue(tokens: number): number {
    return heldCurve(this.model.gpu.layerGlueMs, tokens);
  }
  /** Per MoE layer with CPU experts: the join's launches on a drained GPU (gpu.cpuJoinLayerOverheadMs; 0 without it), held past its last point. */
  cpuJoinLayerOverhead(tokens: number): number {
    return heldCurve(this.model.gpu.cpuJoinLayerOverheadMs, tokens);
  }
  /** The runtime's host work per MoE layer / per step (0 for a profile without `host`). */
  hostLayer(tokens: number): number {
    return this.model.host ? interpolate(this.model.host.layerMs, tokens) : 0;
  }
  hostStep(tokens: number): number {
    return this.model.host ? interpolate(this.model.host.stepMs, tokens) : 0;
  }
  /** What a decode step on the miss rule's path (cpu, hybrid) adds, per MoE layer / per step (host.cpuPath*; 0 without). */
  cpuPathLayer(tokens: number): number {
    const c = this.model.host?.cpuPathLayerMs;
    return c ? interpolate(c, tokens) : 0;
  }
  cpuPathStep(tokens: number): number {
    const c = this.model.host?.cpuPathStepMs;
    return c ? interpolate(c, tokens) : 0;
  }
}
