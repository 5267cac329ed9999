/**
 * `calibrate` end to end: resolve the model's shapes, measure (CPU always; GPU with device cuda), build
 * the profile, check it with the simulator's own validator, write it atomically with the raw
 * measurements beside it (`<name>.raw.json`), and return both plus the comparison table.
 */
import { cpus } from 'node:os';
import { basename } from 'node:path';
import { calibrationProblems, defaultCalibration, loadCalibration, type CostModel } from '../../../sim/src/cost/calibration.js';
import { toNativeConfig } from '../engine/native-config.js';
import { loadModelConfig, parseModelConfig, type ModelConfig } from '../model/config.js';
import { resolveGeometry } from '../model/synth/geometries.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { startProgress } from '../../../core/src/progress.js';
import { cpuSteps, measureCpu } from './measure-cpu.js';
import { gpuSteps, measureGpu } from './measure-gpu.js';
import { loadCalibrateNative, NO_CUDA_MESSAGE, type NativeCalibrate } from './native.js';
import { makePlan } from './plan.js';
import { buildProfile } from './profile.js';
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
  const expertBytes = 3 * config.moeIntermediateSize * config.hiddenSize * 2;
  const hasDense = config.firstKDenseReplace > 0 && config.intermediateSize > 0;
  const total = cpuSteps(plan, threads) + (o.device === 'cuda' ? gpuSteps(plan, hasDense) : 0);
  if (!o.quiet && o.device === 'cpu') process.stderr.write('calibrate: --device cpu measures the CPU figures only; the GPU figures come from --base\n');
  const progress = startProgress('calibrate', total, { quiet: o.quiet });
  const gpu = o.device === 'cuda' ? measureGpu(native, nc, expertBytes, plan, progress) : undefined;
  const cpu = measureCpu(native, nc, expertBytes, plan, threads, config.numExpertsPerTok, progress);
  progress.done();

  const hostLabel = `${cpus()[0]?.model?.trim() || 'unknown CPU'} (${info.features}, ${hw} hardware threads)`;
  const name = o.name ?? basename(o.out).replace(/\.json$/i, '');
  const profile = buildProfile({
    name,
    modelLabel: `${source}: ${config.moeLayers.length} MoE layers x ${config.nRoutedExperts} routed experts (d_ff ${config.moeIntermediateSize}, hidden ${config.hiddenSize}), top-${config.numExpertsPerTok}, ${config.denseLayers.length} dense layer(s), bf16`,
    expertBytes,
    expertBytesSource: `computed: 3 x ${config.moeIntermediateSize} x ${config.hiddenSize} bf16 parameters (${source})`,
    plan,
    cpu,
    gpu,
    base,
    hostLabel,
  });
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

/** JSON with each [tokens, ms] pair on one line, as the shipped profiles are written. */
export function formatProfile(p: CostModel): string {
  return JSON.stringify(p, null, 2).replace(/\[\s+(-?[\d.e+-]+),\s+(-?[\d.e+-]+)\s+\]/g, '[$1, $2]') + '\n';
}
