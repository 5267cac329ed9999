/**
 * calibrate --expert-dtype int8,int4 (issue 13): the expert-time curves of the quantized kernels, written to
 * the profile's byExpertDtype section (sim/src/cost/calibration.ts). Copies need no new measurement: the
 * copy fit is linear in bytes, and the section's expertBytes (the blob's, from the layout) goes through it.
 * GPU: one expert of the dtype with n tokens, decode kernel up to gemvMaxRows rows and grouped above, as
 * for bf16; its multi-expert launches; and the eager launching's overhead of a layer with its decode kernel. CPU: one expert of the dtype at the CPU configuration chosen for bf16 (workers x threads),
 * which keeps the pool shape the runtime uses (it takes the profile's workers) and the measurement short.
 *
 * Native interface used (coded against, added with the quantized kernels): `new CudaCalibrator(config,
 * expertPool, layerCopies, dtype, group)` and `new CpuCalibrator(config, pool, isa, dtype, group)`, each
 * with `expertDtype()` naming the format it measures. An addon without it would ignore the extra arguments
 * and time bf16 experts, so the calibrator's own answer is checked and anything else is refused.
 */
import type { ExpertDtypeProfile } from '../../../sim/src/cost/calibration.js';
import type { NativeModelConfig } from '../engine/native-binding.js';
import type { ExpertFormat } from '../offload/gpu-budget.js';
import type { Progress } from '../../../core/src/progress.js';
import { UserError } from '../../../core/src/errors.js';
import { median } from './fit.js';
import { cpuPoolExperts, cpuSampleIters, type CpuResult } from './measure-cpu.js';
import type { NativeCalibrate } from './native.js';
import type { CalibratePlan } from './plan.js';
import { sampled, type RawCpuExpert, type RawGpuExpert } from './raw.js';
import { launchPoints, measureLaunches, type RawLaunch } from './measure-launch.js';
import { layerStepPoints, measureLayerSteps, type RawLayerStep } from './measure-layer-step.js';

export interface RawDtype {
  dtype: string;
  group: number;
  expertBytes: number;
  gpu: RawGpuExpert[] | null;
  /** multi-expert launches of this dtype (null: not measured: --device cpu, or an addon without launchMs) */
  launches?: RawLaunch[] | null;
  /** offloaded-style layer steps with this dtype's decode kernel, eager and as a graph (gpu.eagerLayerOverheadMs) */
  layerSteps?: RawLayerStep[] | null;
  cpu: RawCpuExpert[];
  cpuIsa: string;
}

export interface DtypeResult {
  entry: ExpertDtypeProfile;
  raw: RawDtype;
}

export function dtypeSteps(plan: CalibratePlan, gpu: boolean, routedExperts: number): number {
  return plan.cpuTokens.length + (gpu ? plan.gpuExpertTokens.length + launchPoints(plan, routedExperts).length + layerStepPoints(plan) : 0);
}

function checkDtype(what: string, cal: { expertDtype?: () => string }, f: ExpertFormat): void {
  const got = typeof cal.expertDtype === 'function' ? cal.expertDtype() : undefined;
  if (got !== f.dtype) {
    throw new UserError(
      `option --expert-dtype ${f.dtype}: this build's ${what} ${got === undefined ? 'cannot measure quantized experts (no expertDtype())' : `measures ${got} experts`}; rebuild the native engine with the quantized kernels`,
    );
  }
}

/** The dtype's curves; `gpuCurve` null on --device cpu (the caller takes the GPU curve from the base profile). */
export function measureDtype(
  native: NativeCalibrate,
  config: NativeModelConfig,
  f: ExpertFormat,
  expertBytes: number,
  plan: CalibratePlan,
  cpu: CpuResult,
  withGpu: boolean,
  progress: Progress,
): { gpuCurve: Array<[number, number]> | null; cpuCurve: Array<[number, number]>; raw: RawDtype } {
  let gpuCurve: Array<[number, number]> | null = null;
  let gpuRaw: RawGpuExpert[] | null = null;
  let launches: RawLaunch[] | null = null;
  let layerSteps: RawLayerStep[] | null = null;
  if (withGpu) {
    const cal = new native.CudaCalibrator(config, plan.gpuExpertPool, plan.layerCopies, f.dtype, f.group);
    try {
      checkDtype('CUDA calibrator', cal, f);
      gpuRaw = [];
      for (const t of plan.gpuExpertTokens) {
        const kernel = t <= plan.gemvMaxRows ? 'decode' : 'grouped';
        gpuRaw.push({ kernel, tokens: t, ...sampled(cal.expertMs(kernel, t, plan.repeats), median) });
        progress.tick();
      }
      gpuCurve = gpuRaw.map((e) => [e.tokens, Number(e.medianMs.toPrecision(4))]);
      launches = measureLaunches(cal, plan, config.n_routed_experts, progress);
      // The eager launching's overhead with this dtype's expert kernel in the layer: how much of the host's
      // launching the GPU waits for depends on how long the layer's kernels run (bf16's is not int4's).
      layerSteps = measureLayerSteps(cal, plan, progress);
    } finally {
      cal.close();
    }
  }
  const cal = new native.CpuCalibrator(config, cpuPoolExperts(plan, expertBytes), 'auto', f.dtype, f.group);
  checkDtype('CPU calibrator', cal, f);
  const cpuRaw: RawCpuExpert[] = [];
  for (const n of plan.cpuTokens) {
    const iters = cpuSampleIters(cal, n, cpu.threadsPerWorker, cpu.workers, plan);
    cpuRaw.push({ tokens: n, threads: cpu.threadsPerWorker, workers: cpu.workers, ...sampled(cal.expertMs(n, cpu.threadsPerWorker, cpu.workers, iters, plan.repeats), median) });
    progress.tick();
  }
  const cpuCurve = cpuRaw.map((e) => [e.tokens, e.medianMs] as [number, number]);
  return { gpuCurve, cpuCurve, raw: { dtype: f.dtype, group: f.group, expertBytes, gpu: gpuRaw, launches, layerSteps, cpu: cpuRaw, cpuIsa: cal.isa() } };
}
