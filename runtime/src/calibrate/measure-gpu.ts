/**
 * GPU measurements (device cuda): pinned host-to-device copies of experts, the routed-expert kernels,
 * the non-expert parts of a decode step at each batch and context, and the activation round trip of a
 * CPU-computed expert. Derives the copy fit and the copy-engine count; curves are taken in profile.ts.
 */
import type { NativeModelConfig } from '../engine/native-binding.js';
import type { Progress } from '../../../core/src/progress.js';
import { chooseCopyEngines, fitCopyCost, median, type CopyFit, type CopyPoint } from './fit.js';
import type { GpuPart, NativeCalibrate } from './native.js';
import type { CalibratePlan } from './plan.js';
import { sampled, type RawCopy, type RawGpu, type RawPart } from './raw.js';
import { launchPoints, measureLaunches } from './measure-launch.js';
import { layerStepPoints, measureLayerSteps } from './measure-layer-step.js';

export interface GpuResult {
  raw: RawGpu;
  copyFit: CopyFit;
  copyPoints: CopyPoint[];
  copyEngines: number;
  twoStreamSpeedup: number;
}

export function gpuParts(hasDense: boolean): GpuPart[] {
  return hasDense ? ['moe', 'dense', 'head'] : ['moe', 'head'];
}

/** How many measurements measureGpu makes (for the progress bar). */
export function gpuSteps(plan: CalibratePlan, hasDense: boolean, routedExperts: number): number {
  const copies = plan.copyExperts.length * 2 + 1;
  const experts = plan.gpuExpertTokens.reduce((n, t) => n + (t <= plan.gemvMaxRows ? 2 : 1), 0);
  const layered = gpuParts(hasDense).filter((p) => p !== 'head').length;
  const parts = plan.batches.length * (layered * plan.contexts.length + 1);
  return copies + experts + launchPoints(plan, routedExperts).length + parts + layerStepPoints(plan, true) + plan.activationTokens.length;
}

/** Whether the CUDA backend replays a decode step of this many rows as a graph (its kGraphMaxRows). */
export function usesGraph(plan: CalibratePlan, batch: number): boolean {
  return batch <= plan.graphMaxRows;
}

export function measureGpu(
  native: NativeCalibrate,
  config: NativeModelConfig,
  expertBytes: number,
  plan: CalibratePlan,
  progress: Progress,
): GpuResult {
  const cal = new native.CudaCalibrator(config, plan.gpuExpertPool, plan.layerCopies);
  try {
    const device = cal.device();
    const R = plan.repeats;
    const copies: RawCopy[] = [];
    const copy = (experts: number, oneCopy: boolean, streams: number) => {
      const r = { experts, oneCopy, streams, ...sampled(cal.copyMs(experts, oneCopy, streams, R), median) };
      copies.push(r);
      progress.tick();
      return r;
    };
    for (const n of plan.copyExperts) copy(n, true, 1);
    for (const n of plan.copyExperts) copy(n, false, 1);
    const nMax = plan.copyExperts[plan.copyExperts.length - 1];
    const two = copy(nMax, false, 2);
    const copyPoints: CopyPoint[] = copies
      .filter((c) => c.streams === 1)
      .map((c) => ({ copies: c.oneCopy ? 1 : c.experts, bytes: c.experts * expertBytes, ms: c.medianMs }));
    const copyFit = fitCopyCost(copyPoints);
    const one = copies.find((c) => c.experts === nMax && !c.oneCopy && c.streams === 1)!;
    const engines = chooseCopyEngines(one.medianMs, two.medianMs);

    const experts: RawGpu['experts'] = [];
    for (const t of plan.gpuExpertTokens) {
      const kernels: Array<'decode' | 'grouped'> = t <= plan.gemvMaxRows ? ['decode', 'grouped'] : ['grouped'];
      for (const kernel of kernels) {
        experts.push({ kernel, tokens: t, ...sampled(cal.expertMs(kernel, t, R), median) });
        progress.tick();
      }
    }

    const launches = measureLaunches(cal, plan, config.n_routed_experts, progress);

    const parts: RawPart[] = [];
    const hasDense = config.first_k_dense_replace > 0 && config.intermediate_size > 0;
    for (const part of gpuParts(hasDense)) {
      const contexts = part === 'head' ? [plan.referenceContext] : plan.contexts;
      for (const batch of plan.batches) {
        for (const context of contexts) {
          // Replayed as a graph where the backend would; if capturing fails here, eager launches are
          // timed instead and the raw file keeps the error (the profile's sources say so).
          let graph = usesGraph(plan, batch);
          let graphError: string | undefined;
          let samples: Float64Array;
          try {
            samples = cal.partMs(part, batch, context, graph, R);
          } catch (err) {
            if (!graph) throw err;
            graphError = (err as Error).message;
            graph = false;
            samples = cal.partMs(part, batch, context, false, R);
          }
          parts.push({ part, batch, context, graph, ...(graphError ? { graphError } : {}), ...sampled(samples, median) });
          progress.tick();
        }
      }
    }

    const layerSteps = measureLayerSteps(cal, plan, progress, true); // with the CPU join (bf16 only: the join's launches follow the drained expert kernel)

    const activation: RawGpu['activation'] = [];
    for (const t of plan.activationTokens) {
      activation.push({ tokens: t, ...sampled(cal.activationMs(t, R), median) });
      progress.tick();
    }
    return {
      raw: { device, copies, experts, launches, parts, layerSteps, activation },
      copyFit,
      copyPoints,
      copyEngines: engines.engines,
      twoStreamSpeedup: engines.speedup,
    };
  } finally {
    cal.close();
  }
}
