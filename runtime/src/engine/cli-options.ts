import { POLICY_NAMES } from '../../../sim/src/cache/types.js';
import { defaultCalibration, loadCalibration, type CostModel } from '../../../sim/src/cost/calibration.js';
import { MISS_MODES, type MissMode } from '../../../sim/src/timing/engine.js';
import { CPU_ESTIMATES, DEFAULT_CPU_ESTIMATE, type CpuEstimate } from '../../../sim/src/cost/cpu-correction.js';
import { CPU_FILLS, CPU_ROUNDINGS, cpuFillOptions, DEFAULT_CPU_FILL, type CpuFill, type CpuRounding, type MissOptions } from '../offload/miss-options.js';
import type { PrefetchOptions } from '../offload/prefetch-options.js';
import { PREFETCH_NAMES, type PrefetchName } from '../../../sim/src/prefetch/sources.js';
import { existsSync, statSync } from 'node:fs';
import type { ModelConfig } from '../model/config.js';
import { parseByteSize, planGpuMemory, type ExpertFormat, type RunShape } from '../offload/gpu-budget.js';
import { EXPERT_DTYPES } from '../../../sim/src/cost/expert-layout.js';
import { expertFormatOptions } from '../offload/expert-format.js';
import { UserError } from '../../../core/src/errors.js';
import { parseChoiceListOption, parseChoiceOption, parseFloatOption, parseIntOption } from '../../../core/src/options.js';
import type { EngineLoadOptions, Sampling } from './options.js';

/** Raw commander values of the options `generate` and `chat` share. */
export interface RawEngineCliOptions {
  greedy?: boolean;
  temperature?: string;
  topP?: string;
  seed?: string;
  device?: string;
  threads?: string;
}

/** `--greedy | --temperature T [--top-p P] [--seed S]`: greedy unless a temperature is given. */
export function samplingFromCli(o: RawEngineCliOptions): Sampling {
  const sampled = o.temperature !== undefined || o.topP !== undefined || o.seed !== undefined;
  if (o.greedy && sampled) throw new UserError('option --greedy: cannot be combined with --temperature, --top-p or --seed');
  if (!sampled) return 'greedy';
  if (o.temperature === undefined) throw new UserError('option --temperature: required when --top-p or --seed is given');
  return {
    temperature: positiveAtMost('--temperature', o.temperature, 100),
    topP: o.topP === undefined ? 1 : positiveAtMost('--top-p', o.topP, 1),
    seed: o.seed === undefined ? 0 : parseIntOption('--seed', o.seed, 0, Number.MAX_SAFE_INTEGER),
  };
}

/** A number in (0, max], refused in those words (not as a range starting at the smallest double). */
function positiveAtMost(name: string, value: string, max: number): number {
  const v = parseFloatOption(name, value);
  if (!(v > 0 && v <= max)) throw new UserError(`option ${name}: must be above 0 and at most ${max}, got ${value}`);
  return v;
}

export function loadOptionsFromCli(o: RawEngineCliOptions): EngineLoadOptions {
  return {
    device: parseChoiceOption('--device', o.device ?? 'cpu', ['cpu', 'cuda'] as const),
    threads: o.threads === undefined ? 0 : parseIntOption('--threads', o.threads, 0, 1024),
  };
}

/** Streams decoded text: decodes the whole sequence so far and emits only the new suffix, so tokens
 * that only form a character together (byte-level BPE) come out whole. */
export class TextStream {
  private ids: number[] = [];
  private emitted = '';
  constructor(private readonly decode: (ids: number[]) => string) {}

  push(id: number): string {
    this.ids.push(id);
    const text = this.decode(this.ids);
    // An incomplete UTF-8 sequence decodes to U+FFFD at the end: wait for the rest.
    if (text.endsWith('\uFFFD')) return '';
    const delta = text.startsWith(this.emitted) ? text.slice(this.emitted.length) : '';
    this.emitted = text;
    return delta;
  }

  /** Whatever has not been emitted yet (a trailing partial character at the very end). */
  flush(): string {
    const text = this.decode(this.ids);
    const rest = text.startsWith(this.emitted) ? text.slice(this.emitted.length) : '';
    this.emitted = text;
    return rest;
  }

  get text(): string {
    return this.decode(this.ids);
  }
}

/** Raw commander values of the offloading options (`generate`, `chat`, `bench`). */
export interface RawOffloadCliOptions extends RawExpertCliOptions {
  cache?: string;
  policy: string;
  gpuMemory?: string;
}

/** Raw commander values of `--expert-dtype D --expert-group N --quantized-file F` (issue 13). */
export interface RawExpertCliOptions {
  expertDtype?: string;
  expertGroup?: string;
  quantizedFile?: string;
}

/** `--expert-dtype bf16|int8|int4 [--expert-group N]`: refused by name before anything loads. */
export function expertFormatFromCli(o: RawExpertCliOptions): ExpertFormat {
  const dtype = parseChoiceOption('--expert-dtype', o.expertDtype ?? 'bf16', EXPERT_DTYPES);
  return { dtype, group: parseIntOption('--expert-group', o.expertGroup ?? '64', 2, 1 << 16) };
}

/** bench / validate: `--expert-dtype` as a list (a grid dimension). */
export function expertDtypeListFromCli(o: RawExpertCliOptions): ExpertFormat[] {
  const group = parseIntOption('--expert-group', o.expertGroup ?? '64', 2, 1 << 16);
  return parseChoiceListOption('--expert-dtype', o.expertDtype ?? 'bf16', EXPERT_DTYPES).map((dtype) => ({ dtype, group }));
}

/**
 * Engine.load's expertDtype / expertGroup (and quantizedFile, `--quantized-file`) for a format; nothing for
 * bf16: the pre-issue-13 load, which has no quantized experts file.
 */
export function expertLoadOptions(f: ExpertFormat, quantizedFile?: string): Pick<EngineLoadOptions, 'expertDtype' | 'expertGroup' | 'quantizedFile'> {
  if (f.dtype === 'bf16') return {};
  return { ...expertFormatOptions(f), ...(quantizedFile === undefined || quantizedFile === 'off' ? {} : { quantizedFile }) };
}

/**
 * `--quantized-file auto|off|PATH` beside the formats it would serve: refused without a quantized format,
 * and a PATH with several (one file holds one format; auto names one per format).
 */
export function quantizedFileFromCli(o: RawExpertCliOptions, formats: readonly ExpertFormat[]): string | undefined {
  const v = o.quantizedFile;
  if (v === undefined || v === 'off') return undefined;
  if (v.length === 0) throw new UserError('option --quantized-file: must be auto, off or a file path');
  const quantized = formats.filter((f) => f.dtype !== 'bf16');
  if (quantized.length === 0) throw new UserError("option --quantized-file: only with --expert-dtype int8 or int4 (bf16 experts are the checkpoint's own weights)");
  if (v !== 'auto' && quantized.length > 1) throw new UserError(`option --quantized-file ${v}: one file holds one format, and ${quantized.map((f) => f.dtype).join(', ')} are asked for; use --quantized-file auto (one file per format)`);
  return v;
}

/**
 * `--cache C --policy P --gpu-memory SIZE` -> Engine.load's cache / gpuMemory / runShape. With only
 * --gpu-memory the cache gets the slots that fit (policy --policy); both: C must fit. The budget needs the
 * run's shape (batch, tokens per sequence), so callers pass it. --gpu-memory is for device cuda only.
 */
export function offloadOptionsFromCli(o: RawOffloadCliOptions, config: ModelConfig, device: 'cpu' | 'cuda', shape: RunShape): Pick<EngineLoadOptions, 'cache' | 'gpuMemory' | 'runShape' | 'expertDtype' | 'expertGroup' | 'quantizedFile'> {
  const policy = parseChoiceOption('--policy', o.policy, POLICY_NAMES);
  const format = expertFormatFromCli(o);
  const quantizedFile = quantizedFileFromCli(o, [format]);
  if (format.dtype !== 'bf16' && device === 'cuda' && o.cache === undefined && o.gpuMemory === undefined) {
    throw new UserError(`option --expert-dtype ${format.dtype}: needs offloaded experts (--cache C or --gpu-memory SIZE); all-resident experts stay bf16`);
  }
  const gpuMemory = o.gpuMemory === undefined ? undefined : parseByteSize('--gpu-memory', o.gpuMemory);
  if (gpuMemory !== undefined && device !== 'cuda') throw new UserError('option --gpu-memory: only with --device cuda (the CPU engine keeps every weight in host memory)');
  let slotsPerLayer = o.cache === undefined ? undefined : parseIntOption('--cache', o.cache, 0, config.nRoutedExperts);
  // the budget's slots follow the dtype: int8 / int4 blobs are about a half / a quarter of bf16's
  if (slotsPerLayer === undefined && gpuMemory !== undefined) slotsPerLayer = planGpuMemory(config, gpuMemory, shape, format).slotsPerLayer;
  return {
    cache: slotsPerLayer === undefined ? undefined : { slotsPerLayer, policy },
    gpuMemory,
    runShape: shape,
    ...expertLoadOptions(format, quantizedFile),
  };
}

/** Raw commander values of the miss options (`generate`, `chat`, `record-trace`, `bench`). */
export interface RawMissCliOptions {
  miss?: string;
  cpuWorkers?: string;
  cpuThreads?: string;
  cpuSpinUs?: string;
  cpuFill?: string;
  cpuRounding?: string;
  cpuEstimate?: string;
  calibration?: string;
}

function missShape(o: RawMissCliOptions): { cpuWorkers?: number; cpuThreads?: number; cpuSpinUs?: number; cpuRounding: CpuRounding; cpuEstimate: CpuEstimate; calibration: CostModel } {
  return {
    cpuRounding: parseChoiceOption('--cpu-rounding', o.cpuRounding ?? 'fast', CPU_ROUNDINGS),
    cpuEstimate: parseChoiceOption('--cpu-estimate', o.cpuEstimate ?? DEFAULT_CPU_ESTIMATE, CPU_ESTIMATES),
    cpuSpinUs: o.cpuSpinUs === undefined ? undefined : parseIntOption('--cpu-spin-us', o.cpuSpinUs, 0, 100_000),
    cpuWorkers: o.cpuWorkers === undefined ? undefined : parseIntOption('--cpu-workers', o.cpuWorkers, 1, 1024),
    cpuThreads: o.cpuThreads === undefined ? undefined : parseIntOption('--cpu-threads', o.cpuThreads, 1, 1024),
    calibration: o.calibration === undefined ? defaultCalibration() : loadCalibration(o.calibration),
  };
}

/** `--miss fetch|cpu|hybrid [--cpu-workers N] [--cpu-threads N] [--calibration F]` -> Engine.load's miss; undefined for fetch. */
export function missOptionsFromCli(o: RawMissCliOptions): MissOptions | undefined {
  const mode = parseChoiceOption('--miss', o.miss ?? 'fetch', MISS_MODES);
  if (mode === 'fetch') {
    const given = ([['--cpu-workers', o.cpuWorkers], ['--cpu-threads', o.cpuThreads], ['--cpu-spin-us', o.cpuSpinUs], ['--cpu-fill', o.cpuFill], ['--cpu-rounding', o.cpuRounding], ['--cpu-estimate', o.cpuEstimate]] as const)
      .filter(([, v]) => v !== undefined)
      .map(([name]) => name);
    if (given.length > 0) throw new UserError(`${given.length > 1 ? 'options' : 'option'} ${given.join(', ')}: only with --miss cpu or hybrid`);
    return undefined;
  }
  const s = missShape(o);
  const fill = cpuFillOptions(parseChoiceOption('--cpu-fill', o.cpuFill ?? DEFAULT_CPU_FILL, CPU_FILLS));
  return { mode, workers: s.cpuWorkers, threadsPerWorker: s.cpuThreads, spinUs: s.cpuSpinUs, rounding: s.cpuRounding, cpuEstimate: s.cpuEstimate, ...fill, profile: s.calibration };
}

/** bench: `--miss` is a list (a grid dimension). */
export function missGridFromCli(o: RawMissCliOptions): { misses: MissMode[]; cpuFills: CpuFill[]; cpuRounding: CpuRounding; cpuEstimate: CpuEstimate; cpuWorkers?: number; cpuThreads?: number; cpuSpinUs?: number; calibration: CostModel } {
  const misses = parseChoiceListOption('--miss', o.miss ?? 'fetch', MISS_MODES);
  const cpuFills = parseChoiceListOption('--cpu-fill', o.cpuFill ?? DEFAULT_CPU_FILL, CPU_FILLS);
  return { misses, cpuFills, ...missShape(o) };
}

/** Raw commander values of the prefetch options (bench, generate, chat; issue 12). */
export interface RawPrefetchCliOptions {
  prefetch?: string;
  predictor?: string;
  predictorBudget?: string;
  predictorMinProb?: string;
  prefetchLookahead?: string;
  prefetchInFlight?: string;
}

/** --predictor must name a folder (what is in it is checked where it is read). */
function checkPredictorDir(o: RawPrefetchCliOptions): void {
  if (o.predictor !== undefined && !(existsSync(o.predictor) && statSync(o.predictor).isDirectory())) throw new UserError(`option --predictor: ${o.predictor}: not a directory`);
}

/** --prefetch-lookahead and --prefetch-in-flight, parsed (callers have checked which prefetcher they go with). */
function prefetchShape(o: RawPrefetchCliOptions): { lookahead?: number; maxInFlight?: number } {
  return {
    ...(o.prefetchLookahead === undefined ? {} : { lookahead: parseIntOption('--prefetch-lookahead', o.prefetchLookahead, 1, 64) }),
    ...(o.prefetchInFlight === undefined ? {} : { maxInFlight: parseIntOption('--prefetch-in-flight', o.prefetchInFlight, 1, 64) }),
  };
}

/** --predictor-budget / --predictor-min-prob (simulate's names): only with --prefetch predicted. */
function predictorShape(o: RawPrefetchCliOptions, predicted: boolean): { predictorBudget?: number; predictorMinProb?: number } {
  for (const [flag, v] of [['--predictor-budget', o.predictorBudget], ['--predictor-min-prob', o.predictorMinProb]] as const) {
    if (v !== undefined && !predicted) throw new UserError(`option ${flag}: only with --prefetch predicted`);
  }
  return {
    ...(o.predictorBudget === undefined ? {} : { predictorBudget: parseIntOption('--predictor-budget', o.predictorBudget, 1, 65535) }),
    ...(o.predictorMinProb === undefined ? {} : { predictorMinProb: parseFloatOption('--predictor-min-prob', o.predictorMinProb, 0, 1) }),
  };
}

/** One prefetcher's options: the predictor (and its budget and gate) for predicted, the lookahead for oracle, the pieces in flight for any. */
function prefetchOptionsOf(name: PrefetchName, o: RawPrefetchCliOptions, shape: { lookahead?: number; maxInFlight?: number }): PrefetchOptions {
  return {
    name,
    ...(name === 'predicted' ? { predictor: o.predictor, ...predictorShape(o, true) } : {}),
    ...(name === 'oracle' && shape.lookahead !== undefined ? { lookahead: shape.lookahead } : {}),
    ...(shape.maxInFlight !== undefined ? { maxInFlight: shape.maxInFlight } : {}),
  };
}

/** bench: `--prefetch` is a list (a grid dimension); `--predictor DIR` feeds predicted. Checked before loading. */
export function prefetchGridFromCli(o: RawPrefetchCliOptions): PrefetchOptions[] {
  const names = parseChoiceListOption('--prefetch', o.prefetch ?? 'none', PREFETCH_NAMES);
  if (o.predictor !== undefined && !names.includes('predicted')) throw new UserError('option --predictor: only with --prefetch predicted');
  if (names.includes('predicted') && o.predictor === undefined) throw new UserError('option --prefetch predicted: needs --predictor DIR (a predictor exported by train-predictor --out DIR)');
  checkPredictorDir(o);
  predictorShape(o, names.includes('predicted'));
  if (o.prefetchLookahead !== undefined && !names.includes('oracle')) throw new UserError('option --prefetch-lookahead: only with --prefetch oracle');
  const shape = prefetchShape(o);
  return names.map((name) => prefetchOptionsOf(name, o, shape));
}

/**
 * generate / chat: `--prefetch P` (one prefetcher) with `--predictor DIR`, `--prefetch-lookahead K`,
 * `--prefetch-in-flight N`, refused by name before anything loads, with bench's rules: a prefetcher needs
 * offloaded experts on device cuda; oracle and predicted need a routing replay (their input), next-gate is
 * refused with one (the model's own gate does not predict a replayed routing). `noRouting` says why the
 * command has no replay (chat: none at all). undefined: no prefetcher.
 */
export function prefetchOptionsFromCli(o: RawPrefetchCliOptions, ctx: { routing: boolean; offloadedCuda: boolean; noRouting?: string }): PrefetchOptions | undefined {
  const name = parseChoiceOption('--prefetch', o.prefetch ?? 'none', PREFETCH_NAMES);
  if (o.predictor !== undefined && name !== 'predicted') throw new UserError('option --predictor: only with --prefetch predicted');
  if (o.prefetchLookahead !== undefined && name !== 'oracle') throw new UserError('option --prefetch-lookahead: only with --prefetch oracle (next-gate looks 1 layer ahead, predicted its predictor\'s k)');
  if (o.prefetchInFlight !== undefined && name === 'none') throw new UserError('option --prefetch-in-flight: only with a prefetcher (--prefetch next-gate, oracle or predicted)');
  predictorShape(o, name === 'predicted');
  if (name === 'none') return undefined;
  if (!ctx.offloadedCuda) throw new UserError(`option --prefetch ${name}: needs offloaded experts on the GPU (--device cuda with --cache C or --gpu-memory SIZE): a prefetch copies experts from host memory into GPU slots`);
  if (name === 'predicted' && o.predictor === undefined) throw new UserError('option --prefetch predicted: needs --predictor DIR (a predictor exported by train-predictor --out DIR)');
  if ((name === 'oracle' || name === 'predicted') && !ctx.routing) {
    throw new UserError(
      `option --prefetch ${name}: needs a routing replay (${ctx.noRouting ?? '--routing F'}): ${name === 'oracle' ? 'the oracle prefetches the replayed routing of the layers ahead' : "the predictor's inputs are the replayed routing"}`,
    );
  }
  if (name === 'next-gate' && ctx.routing) {
    throw new UserError("option --prefetch next-gate: refused under routing replay (--routing): the model's own gate does not predict a replayed routing; use it without --routing");
  }
  checkPredictorDir(o);
  return prefetchOptionsOf(name, o, prefetchShape(o));
}
