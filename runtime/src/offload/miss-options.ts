/**
 * What the offloading runtime does with a missed expert (issue 12), as Engine.load / resetOffload take it:
 * `fetch` (copy it to the GPU, issue 6's behaviour), `cpu` (compute it on the CPU from the pinned host
 * copy) or `hybrid` (per expert, whichever the cost model says finishes first: the rule of
 * sim/src/cost/miss-rule.ts, which native/include/moe/offload/miss_policy.h implements in C++).
 * The cost model is a calibration profile (default: the simulator's, measured by `calibrate` on an H200);
 * the CPU worker pool takes its shape (experts at once x threads each) from it unless told otherwise.
 */
import { availableParallelism } from 'node:os';
import { Costs } from '../../../sim/src/cost/cost-model.js';
import { defaultCalibration, type CostModel } from '../../../sim/src/cost/calibration.js';
import { cpuFillConfig, MISS_MODES, type CpuFill, type MissMode } from '../../../sim/src/timing/engine.js';
import { CPU_ESTIMATES, DEFAULT_CPU_ESTIMATE, type CpuEstimate } from '../../../sim/src/cost/cpu-correction.js';
import { UserError } from '../../../core/src/errors.js';
import { parseChoiceOption } from '../../../core/src/options.js';

export interface MissOptions {
  /** fetch (default), cpu or hybrid */
  mode: MissMode;
  /** CPU experts computed at once (default: the profile's cpu.workers) */
  workers?: number;
  /** threads per CPU worker (default: the machine's threads less one for the host thread, / workers) */
  threadsPerWorker?: number;
  /** fill a CPU-computed expert's cache slot in the background (default true) or lazily, when the GPU needs it */
  fill?: boolean;
  /** false (`--cpu-fill none`, the commands' default: the faster on the H200, reports/bench/offload-h200-2026-12-03):
   *  a miss computed on the CPU is not admitted to the cache at all (nothing copied; fill does not apply); true
   *  (this API's default, as the simulator's SimConfig.cpuAdmit): admitted, and filled as `fill` says */
  admit?: boolean;
  /** how long idle CPU threads poll for the next layer's jobs before sleeping (default 2000 us; 0: sleep at once) */
  spinUs?: number;
  /** how a bf16 miss is computed on the CPU (CPU_ROUNDINGS; default fast) */
  rounding?: CpuRounding;
  /** the cost model the hybrid rule uses (default: the simulator's default profile) */
  profile?: CostModel;
  /** the rule's CPU times: as the profile has them (profile, default) or corrected by the run's finished jobs (measured; sim/src/cost/cpu-correction.ts) */
  cpuEstimate?: CpuEstimate;
  /** keep every decision with its estimates (Engine.takeMissLog) */
  log?: boolean;
}

/** The addon's `miss` spec (native/addon/offload_binding.h). Curves are flat (tokens, ms) pairs. */
export interface NativeMissSpec {
  mode: MissMode;
  workers: number;
  threadsPerWorker: number;
  spinUs: number;
  rounding: CpuRounding;
  fill: boolean;
  admit: boolean;
  /** --cpu-estimate measured */
  correctCpu: boolean;
  log: boolean;
  copyMs: number;
  activationCopyMs: number;
  gpuExpertMs: Float64Array;
  cpuExpertMs: Float64Array;
}

export { CPU_FILLS, DEFAULT_CPU_FILL, type CpuFill } from '../../../sim/src/timing/engine.js';

/**
 * `--cpu-rounding`: how the CPU computes a bf16 miss (native/include/moe/offload/miss_policy.h).
 * fast: the dpbf16 kernel (bf16 activations, fp32 sums in its own order), the kernel every CPU-mode
 * figure so far was measured with; gpu-order: the CUDA decode kernel's rounding exactly
 * (native/src/kernels/expert_gpu_order.h), so the run's logits are the all-resident run's; needs AVX-512BW
 * and bf16 experts.
 */
export const CPU_ROUNDINGS = ['fast', 'gpu-order'] as const;
export type CpuRounding = (typeof CPU_ROUNDINGS)[number];

/** The MissOptions fields of a --cpu-fill value (the simulator's cpuFillConfig, in the runtime's names). */
export function cpuFillOptions(f: CpuFill): { fill: boolean; admit: boolean } {
  const c = cpuFillConfig(f);
  return { fill: c.cpuFill, admit: c.cpuAdmit };
}

/** The --cpu-fill value of a bench point's fields (older files have only the fill flag). */
export function cpuFillName(fill: boolean | null | undefined, admit: boolean | null | undefined): CpuFill | null {
  if (fill === null || fill === undefined) return null;
  return admit === false ? 'none' : fill ? 'background' : 'lazy';
}

function flat(curve: Array<[number, number]>): Float64Array {
  return Float64Array.from(curve.flat());
}

/** A spec's flat (tokens, ms) pairs back as a curve. */
export function specCurve(flatPairs: ArrayLike<number>): Array<[number, number]> {
  const c: Array<[number, number]> = [];
  for (let i = 0; i + 1 < flatPairs.length; i += 2) c.push([flatPairs[i], flatPairs[i + 1]]);
  return c;
}

function positiveInt(option: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new UserError(`option ${option}: must be a whole number from 1 to ${max} (got ${String(v)})`);
  return v;
}

/**
 * The threads each CPU worker gets when --cpu-threads is not given: one hardware thread stays with the host
 * thread that queues the GPU's work while the CPU experts run. calibrate measures its worker candidates at
 * this count (measure-cpu.ts), so that the profile's per-expert times are those of the pool the runtime builds.
 */
export function defaultThreadsPerWorker(hardwareThreads: number, workers: number): number {
  return Math.max(1, Math.floor((hardwareThreads - 1) / workers));
}

/** Checks the options against the device; null: fetch (nothing to send). */
export function resolveMissOptions(o: MissOptions | undefined, device: 'cpu' | 'cuda', offloading: boolean): NativeMissSpec | null {
  if (o === undefined) return null;
  if (o === null || typeof o !== 'object') throw new UserError('option miss: must be an object {mode, workers?, threadsPerWorker?, profile?, log?}');
  if (!(MISS_MODES as readonly string[]).includes(o.mode)) throw new UserError(`option --miss: unknown mode '${String(o.mode)}' (choose from ${MISS_MODES.join(', ')})`);
  if (o.mode === 'fetch') return null;
  if (device !== 'cuda') throw new UserError(`option --miss ${o.mode}: needs --device cuda (on the CPU engine every expert is computed on the CPU already)`);
  if (!offloading) throw new UserError(`option --miss ${o.mode}: needs offloaded experts (--cache C or --gpu-memory SIZE)`);
  const profile = o.profile ?? defaultCalibration();
  const hw = availableParallelism();
  const workers = o.workers === undefined ? Math.min(profile.cpu.workers, hw) : positiveInt('--cpu-workers', o.workers, hw);
  const threadsPerWorker = o.threadsPerWorker === undefined ? defaultThreadsPerWorker(hw, workers) : positiveInt('--cpu-threads', o.threadsPerWorker, hw);
  const spinUs = o.spinUs ?? 2000;
  if (!Number.isInteger(spinUs) || spinUs < 0 || spinUs > 100_000) throw new UserError(`option --cpu-spin-us: must be a whole number of microseconds from 0 to 100000 (got ${String(spinUs)})`);
  if (workers * threadsPerWorker > hw) {
    throw new UserError(`options --cpu-workers ${workers} x --cpu-threads ${threadsPerWorker}: ${workers * threadsPerWorker} threads, more than this machine's ${hw}`);
  }
  const cpuEstimate = parseChoiceOption('--cpu-estimate', o.cpuEstimate ?? DEFAULT_CPU_ESTIMATE, CPU_ESTIMATES);
  const rounding = parseChoiceOption('--cpu-rounding', o.rounding ?? 'fast', CPU_ROUNDINGS);
  const costs = new Costs(profile);
  return {
    mode: o.mode,
    workers,
    threadsPerWorker,
    spinUs,
    rounding,
    fill: o.fill ?? true,
    admit: o.admit ?? true,
    correctCpu: cpuEstimate === 'measured',
    log: o.log ?? false,
    copyMs: costs.copyMs,
    activationCopyMs: profile.cpu.activationCopyMs,
    gpuExpertMs: flat(profile.gpu.expertMs),
    cpuExpertMs: flat(profile.cpu.expertMs),
  };
}
