/**
 * `calibrate` end to end: resolve the model's shapes, measure (CPU always; GPU with device cuda), build
 * the profile, check it with the simulator's own validator, write it atomically with the raw
 * measurements beside it (`<name>.raw.json`), and return both plus the comparison table.
 */
import { cpus } from 'node:os';
import { basename } from 'node:path';
import { calibrationProblems, defaultCalibration, loadCalibration, type CostModel, type ExpertDtypeProfile } from '../../../sim/src/cost/calibration.js';
import { toNativeConfig } from '../engine/native-config.js';
import { loadModelConfig, parseModelConfig, type ModelConfig } from '../model/config.js';
import { resolveGeometry } from '../model/synth/geometries.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { startProgress } from '../../../core/src/progress.js';
import { cpuSteps, measureCpu } from './measure-cpu.js';
import { cpuUnderCopySteps, measureCpuUnderCopy } from './measure-cpu-under-copy.js';
import { gpuSteps, measureGpu } from './measure-gpu.js';
import { loadCalibrateNative, NO_CUDA_MESSAGE, type NativeCalibrate } from './native.js';
import { makePlan } from './plan.js';
import { dtypeSteps, measureDtype, type RawDtype } from './measure-dtype.js';
import { costModelForDtype } from '../../../sim/src/cost/expert-dtype.js';
import { expertBlobBytes } from '../../../sim/src/cost/expert-layout.js';
import type { ExpertFormat } from '../offload/gpu-budget.js';
import type { CpuRounding } from '../offload/miss-options.js';
import { buildProfile } from './profile.js';
import { setLayerStepTerms, type LayerStepShape } from './layer-step-terms.js';
import { launchSource, launchTable } from './measure-launch.js';
import { RAW_FORMAT, type RawDocument } from './raw.js';
import { comparisonTable } from './table.js';

export interface CalibrateOptions {
  out: string;
  device: 'cuda' | 'cpu';
  /** explicit --threads (validated against the hardware threads here) */
  threads?: number[];
  quick: boolean;
  /** checkpoint directory (config.json), or else a synthetic geometry name */
  model?: string;
  geometry: string;
  cpuOnly: boolean;
  base?: string;
  name?: string;
  quiet?: boolean;
  command: string;
  /** issue 13: expert formats to measure besides bf16 (the top-level figures); each gets a byExpertDtype entry */
  expertFormats?: ExpertFormat[];
  /** the bf16 CPU expert kernel the curves are measured with: the runtime's --cpu-rounding (default fast) */
  cpuRounding?: CpuRounding;
}

export interface CalibrateResult {
  profile: CostModel;
  raw: RawDocument;
  rawPath: string;
  table: string;
}

/** Where the raw measurements go: `x.json` -> `x.raw.json`. */
export function rawPathFor(out: string): string {
  return out.replace(/\.json$/i, '') + '.raw.json';
}

function resolveModel(o: CalibrateOptions): { config: ModelConfig; source: string } {
  if (o.model) return { config: loadModelConfig(o.model), source: `config.json of ${o.model}` };
  const g = resolveGeometry(o.geometry);
  return { config: parseModelConfig(g.config, `geometry ${g.name}`), source: `built-in geometry '${g.name}'` };
}

export function runCalibrate(o: CalibrateOptions, native: NativeCalibrate = loadCalibrateNative()): CalibrateResult {
  const base = o.base ? { model: loadCalibration(o.base), file: o.base } : undefined;
  if (o.device === 'cuda' && !native.cudaBuilt()) throw new UserError(NO_CUDA_MESSAGE);
  if (o.device === 'cpu' && !base) throw new UserError('option --device cpu: needs --cpu-only --base <profile> (the GPU figures come from there)');
  const { config, source } = resolveModel(o);
  const nc = toNativeConfig(config);
  const info = native.cpuInfo();
  const hw = info.hardwareThreads;
  const threads = o.threads ?? [...new Set([1, 4, 8, 16].filter((t) => t <= hw))];
  const tooMany = threads.filter((t) => t > hw);
  if (tooMany.length > 0) throw new UserError(`option --threads: ${tooMany.join(', ')} exceed the ${hw} hardware threads of this machine`);
  const plan = makePlan(o.quick);
  // Routed experts are bf16 in the checkpoints this project runs (gate, up: [d_ff, hidden]; down: [hidden, d_ff]).
  const expertBytes = expertBlobBytes('bf16', config.hiddenSize, config.moeIntermediateSize);
  const hasDense = config.firstKDenseReplace > 0 && config.intermediateSize > 0;
  const quant = (o.expertFormats ?? []).filter((f) => f.dtype !== 'bf16');
  const quantBytes = quant.map((f) => expertBlobBytes(f.dtype, config.hiddenSize, config.moeIntermediateSize, f.group));
  const total = cpuSteps(plan, threads) + (o.device === 'cuda' ? gpuSteps(plan, hasDense, config.nRoutedExperts) + cpuUnderCopySteps(plan) : 0) + quant.reduce((n) => n + dtypeSteps(plan, o.device === 'cuda', config.nRoutedExperts), 0);
  if (!o.quiet && o.device === 'cpu') process.stderr.write('calibrate: --device cpu measures the CPU figures only; the GPU figures come from --base\n');
  const progress = startProgress('calibrate', total, { quiet: o.quiet });
  const gpu = o.device === 'cuda' ? measureGpu(native, nc, expertBytes, plan, progress) : undefined;
  // 'auto' is the fast kernel (dpbf16 where the CPU has it); gpu-order the CUDA decode kernel's rounding
  const cpuKernel = o.cpuRounding === 'gpu-order' ? 'gpu-order' : 'auto';
  const cpu = measureCpu(native, nc, expertBytes, plan, threads, config.numExpertsPerTok, progress, cpuKernel);
  const cpuUnderCopy = o.device === 'cuda' ? measureCpuUnderCopy(native, nc, expertBytes, plan, cpu, progress, cpuKernel) : undefined;
  const dtypes = quant.map((f, i) => ({ f, bytes: quantBytes[i], ...measureDtype(native, nc, f, quantBytes[i], plan, cpu, o.device === 'cuda', progress) }));
  progress.done();

  const hostLabel = `${cpus()[0]?.model?.trim() || 'unknown CPU'} (${info.features}, ${hw} hardware threads)`;
  const name = o.name ?? basename(o.out).replace(/\.json$/i, '');
  const routing = { experts: config.nRoutedExperts, topK: config.numExpertsPerTok };
  const profile = buildProfile({
    name,
    modelLabel: `${source}: ${config.moeLayers.length} MoE layers x ${config.nRoutedExperts} routed experts (d_ff ${config.moeIntermediateSize}, hidden ${config.hiddenSize}), top-${config.numExpertsPerTok}, ${config.denseLayers.length} dense layer(s), bf16`,
    expertBytes,
    expertBytesSource: `computed: 3 x ${config.moeIntermediateSize} x ${config.hiddenSize} bf16 parameters (${source})`,
    plan,
    cpu,
    gpu,
    cpuUnderCopy,
    base,
    hostLabel,
    routing,
  });
  profile.expertShape = { hidden: config.hiddenSize, dff: config.moeIntermediateSize };
  for (const d of dtypes) addDtypeEntry(profile, d.f, d.bytes, d.gpuCurve, d.cpuCurve, cpu, base, d.raw, o.device === 'cuda' ? gpu!.raw.device.name : hostLabel, plan, routing);
  const problems = calibrationProblems(profile);
  if (problems.length > 0) throw new Error(`calibrate built an invalid profile (a bug): ${problems.join('; ')}`);

  const raw: RawDocument = {
    format: RAW_FORMAT,
    createdAt: new Date().toISOString(),
    command: o.command,
    model: { source, expertBytes },
    quick: o.quick,
    gpu: gpu?.raw ?? null,
    cpu: cpu.raw,
    ...(cpuUnderCopy ? { cpuUnderCopy: cpuUnderCopy.raw } : {}),
    ...(dtypes.length ? { byExpertDtype: dtypes.map((d) => d.raw) } : {}),
    derived: {
      copyFit: gpu?.copyFit ?? null,
      copyPoints: gpu?.copyPoints ?? null,
      twoStreamSpeedup: gpu?.twoStreamSpeedup ?? null,
      cpuCandidates: cpu.candidates,
      cpuChoice: { workers: cpu.workers, threadsPerWorker: cpu.threadsPerWorker, makespanMs: cpu.makespanMs, experts: config.numExpertsPerTok },
      plan,
    },
  };
  const rawPath = rawPathFor(o.out);
  writeFileAtomic(rawPath, JSON.stringify(raw, null, 1) + '\n');
  writeFileAtomic(o.out, formatProfile(profile));
  const reference = base?.model ?? defaultCalibration();
  return { profile, raw, rawPath, table: comparisonTable(profile, reference) };
}

/**
 * The profile's byExpertDtype entry of one measured format. With --device cpu only the CPU curve is measured;
 * the GPU curve is the base profile's (its measured entry, or its bf16 curve scaled by bytes), and the
 * sources say which.
 */
function addDtypeEntry(
  profile: CostModel,
  f: ExpertFormat,
  bytes: number,
  gpuCurve: Array<[number, number]> | null,
  cpuCurve: Array<[number, number]>,
  cpu: { workers: number; threadsPerWorker: number },
  base: { model: CostModel; file: string } | undefined,
  raw: RawDtype,
  where: string,
  plan: ReturnType<typeof makePlan>,
  routing: LayerStepShape,
): void {
  const d = f.dtype as 'int8' | 'int4';
  const sources = (profile.sources ??= {});
  let gpuMs = gpuCurve;
  let launch = raw.launches?.length ? launchTable(raw.launches, plan) : undefined;
  if (launch) sources[`byExpertDtype.${d}.gpu.launch`] = launchSource(`measured by calibrate on ${where}`, `expert_ffn_decode_q_entries, ${d}`, raw.launches!, plan);
  if (!gpuMs) {
    const fromBase = costModelForDtype(base!.model, d, f.group);
    gpuMs = fromBase.model.gpu.expertMs;
    launch = fromBase.basis === 'measured' ? fromBase.model.gpu.launch : undefined;
    if (launch) sources[`byExpertDtype.${d}.gpu.launch`] = `not measured (--cpu-only): taken from ${base!.file}'s measured entry`;
    sources[`byExpertDtype.${d}.gpu.expertMs`] = `not measured (--cpu-only): taken from ${base!.file} (${fromBase.basis === 'measured' ? 'its measured entry' : 'its bf16 curve scaled by bytes, not measured'})`;
  } else {
    sources[`byExpertDtype.${d}.gpu.expertMs`] = `measured by calibrate on ${where}, one ${d} expert with n tokens through the quantized kernels (decode up to the GEMV row limit, grouped above), median of the raw samples (${raw.gpu?.length ?? 0} points)`;
  }
  sources[`byExpertDtype.${d}.cpu.expertMs`] = `measured by calibrate, one ${d} expert through the CPU quantized expert path (kernel ${raw.cpuIsa}) on ${cpu.threadsPerWorker} thread(s) while ${cpu.workers} run at once (bf16's choice)`;
  sources[`byExpertDtype.${d}.expertBytes`] = `computed: expert_layout(${d}${d === 'int4' ? `, group ${f.group}` : ''}) (sim/src/cost/expert-layout.ts, mirror of native/src/quant/expert_format.cpp)`;
  const entryGpu: ExpertDtypeProfile['gpu'] = { expertMs: gpuMs, ...(launch ? { launch } : {}) };
  const stepWhere = `measured by calibrate on ${where} with the ${d} decode expert kernel`;
  if (raw.layerSteps?.length) {
    // only this run's own launch table prices this run's layer steps (not a --cpu-only base's)
    setLayerStepTerms(entryGpu, sources, `byExpertDtype.${d}.gpu`, stepWhere, plan, raw.layerSteps, gpuCurve ? launch : undefined, profile.gpu, routing);
  } else if (!gpuCurve && base?.model.byExpertDtype?.[d]?.gpu.eagerLayerOverheadMs && costModelForDtype(base.model, d, f.group).basis === 'measured') {
    entryGpu.eagerLayerOverheadMs = base.model.byExpertDtype[d]!.gpu.eagerLayerOverheadMs;
    sources[`byExpertDtype.${d}.gpu.eagerLayerOverheadMs`] = `not measured (--cpu-only): taken from ${base.file}'s measured entry`;
  }
  (profile.byExpertDtype ??= {})[d] = {
    expertBytes: bytes,
    ...(d === 'int4' ? { group: f.group } : {}),
    gpu: entryGpu,
    cpu: { expertMs: cpuCurve, workers: cpu.workers },
  };
}

/** JSON with each [tokens, ms] pair on one line, as the shipped profiles are written. */
export function formatProfile(p: CostModel): string {
  return JSON.stringify(p, null, 2).replace(/\[\s+(-?[\d.e+-]+),\s+(-?[\d.e+-]+)\s+\]/g, '[$1, $2]') + '\n';
}
