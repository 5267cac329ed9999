import type { CacheOptions } from '../offload/cache-options.js';
import type { MissOptions } from '../offload/miss-options.js';
import type { PrefetchOptions } from '../offload/prefetch-options.js';
import type { RunShape } from '../offload/gpu-budget.js';
import type { RecordOptions } from '../offload/offload-spec.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import type { ExpertDtype } from '../../../sim/src/cost/expert-layout.js';
import { UserError } from '../../../core/src/errors.js';

/** Options of Engine.load. */
export interface EngineLoadOptions {
  /** 'cpu' (default) or 'cuda' (needs a native build with the CUDA backend: native/src/cuda_backend) */
  device?: 'cpu' | 'cuda';
  /** CPU threads for the forward; default: all cores */
  threads?: number;
  /** expert cache per MoE layer (offloading runtime, issue 6; on the CPU engine an accounting layer) */
  cache?: CacheOptions;
  /** force every token's routing from a recorded trace (see runtime/src/offload/routing-replay.ts) */
  routing?: RoutingReplay;
  /** record routing, router scores, gate_next and timings of every forward (takeRecord()) */
  record?: RecordOptions;
  /**
   * device 'cuda': total GPU memory in bytes the run may use (issue 6). The routed experts are offloaded to
   * pinned host memory and the expert slots per MoE layer are what fits (runtime/src/offload/gpu-budget.ts);
   * with `cache` the cache's slots must fit. A budget too small for the non-expert part is refused.
   */
  gpuMemory?: number;
  /** the run the budget must hold (default batch 1, 4096 tokens per sequence) */
  runShape?: RunShape;
  /** device 'cuda', offloaded: what to do with a missed expert (fetch, cpu, hybrid; issue 12) */
  miss?: MissOptions;
  /** with a cache: experts brought in ahead of their request (next-gate, oracle, predicted; issue 12) */
  prefetch?: PrefetchOptions;
  /** device 'cuda' with a cache: GPU slots per MoE layer (default: the cache's); more lets one load serve smaller caches (resetOffload) */
  poolSlots?: number;
  /**
   * routed experts' storage (issue 13): 'bf16' (default, the checkpoint's weights as they are), 'int8' (per
   * output channel) or 'int4' (groups of expertGroup inputs); quantized on 'cuda' only with offloaded experts (the all-resident CUDA engine stays bf16), on 'cpu' the CPU
   * engine's own copy in host memory
   */
  expertDtype?: ExpertDtype;
  /** int4: inputs per group (default 64; must divide hidden_size and moe_intermediate_size) */
  expertGroup?: number;
  /**
   * int8 / int4: the quantized experts file (runtime/src/offload/quantized-file.ts): 'off' (default: quantize
   * at every load), 'auto' (<checkpoint>/moe-offload-experts-<dtype>[-g<group>].safetensors) or a path. The
   * first load writes it, later loads read it; a file from another checkpoint or format is rebuilt.
   */
  quantizedFile?: string;
  /**
   * device 'cuda', offloaded (default true): a decode step in which the cache holds every routed expert of
   * every MoE layer runs as a resident step (no per-layer routing round trip to the host, a CUDA graph;
   * native/src/cuda_backend/cuda_resident_step.cpp); false keeps the per-layer path, to measure the difference
   */
  residentSteps?: boolean;
}

export type Sampling = 'greedy' | { temperature: number; topP?: number; seed?: number };

/** Options of Engine.generate. */
export interface GenerateOptions {
  /** token-id prompts, or text prompts (encoded with the checkpoint's tokenizer, <bos> first) */
  prompts: number[][] | string[];
  maxNewTokens: number;
  /** 'greedy' (default) or seeded temperature / top-p sampling */
  sampling?: Sampling;
  /** stop a sequence when it produces the end-of-sequence token (default true) */
  stopOnEos?: boolean;
  /** keep every step's logits in engine.logits (for tests; costs vocab floats per token) */
  recordLogits?: boolean;
  /**
   * bring every step's logits to the host and sample there, without recording them (bench --sample-on host:
   * the path before device sampling, for A/B). Default: a greedy step on CUDA returns only its tokens.
   */
  keepLogits?: boolean;
}

export interface ResolvedLoadOptions {
  device: 'cpu' | 'cuda';
  threads: number;
}

/** Offloading options are checked against the model in runtime/src/offload/offload-spec.ts. */
export const OFFLOAD_LOAD_KEYS = ['cache', 'routing', 'record', 'gpuMemory', 'runShape', 'poolSlots', 'miss', 'prefetch', 'expertDtype', 'expertGroup', 'quantizedFile', 'residentSteps'];

export interface ResolvedSampling {
  greedy: boolean;
  temperature: number;
  topP: number;
  seed: number;
}

function fail(option: string, problem: string): never {
  throw new UserError(`option ${option}: ${problem}`);
}

function isPlainObject(v: unknown): boolean {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function rejectUnknownKeys(o: Record<string, unknown>, known: string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) fail(`${where}${k}`, `unknown option (known: ${known.join(', ')})`);
  }
}

export function resolveLoadOptions(o: EngineLoadOptions | undefined): ResolvedLoadOptions {
  if (o === undefined) return { device: 'cpu', threads: 0 };
  if (!isPlainObject(o)) fail('options', 'must be an object');
  rejectUnknownKeys(o as unknown as Record<string, unknown>, ['device', 'threads', ...OFFLOAD_LOAD_KEYS], '');
  const device = o.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') fail('device', `unknown value '${String(device)}' (choose from cpu, cuda)`);
  const threads = o.threads ?? 0;
  if (!Number.isInteger(threads) || threads < 0 || threads > 1024) fail('threads', `must be an integer in [0, 1024] (0: all cores), got ${String(threads)}`);
  return { device, threads };
}

export function resolveSampling(s: Sampling | undefined): ResolvedSampling {
  if (s === undefined || s === 'greedy') return { greedy: true, temperature: 1, topP: 1, seed: 0 };
  if (!isPlainObject(s)) fail('sampling', `must be 'greedy' or {temperature, topP, seed}, got ${JSON.stringify(s)}`);
  rejectUnknownKeys(s as Record<string, unknown>, ['temperature', 'topP', 'seed'], 'sampling.');
  const { temperature, topP = 1, seed = 0 } = s as { temperature: unknown; topP?: unknown; seed?: unknown };
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature <= 0 || temperature > 100) {
    fail('sampling.temperature', `must be a number in (0, 100], got ${String(temperature)}`);
  }
  if (typeof topP !== 'number' || !Number.isFinite(topP) || topP <= 0 || topP > 1) fail('sampling.topP', `must be in (0, 1], got ${String(topP)}`);
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) fail('sampling.seed', `must be a non-negative integer, got ${String(seed)}`);
  return { greedy: false, temperature: temperature as number, topP: topP as number, seed: seed as number };
}

export function checkGenerateShape(o: GenerateOptions): void {
  if (!isPlainObject(o)) fail('generate', 'options must be an object');
  rejectUnknownKeys(o as unknown as Record<string, unknown>, ['prompts', 'maxNewTokens', 'sampling', 'stopOnEos', 'recordLogits', 'keepLogits'], '');
  if (!Array.isArray(o.prompts) || o.prompts.length === 0) fail('prompts', 'must be a non-empty array of token-id arrays or strings');
  const allText = o.prompts.every((p) => typeof p === 'string');
  const allIds = o.prompts.every((p) => Array.isArray(p));
  if (!allText && !allIds) fail('prompts', 'must be all strings or all token-id arrays');
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1 || o.maxNewTokens > 1_000_000) {
    fail('maxNewTokens', `must be an integer >= 1, got ${String(o.maxNewTokens)}`);
  }
  if (o.stopOnEos !== undefined && typeof o.stopOnEos !== 'boolean') fail('stopOnEos', 'must be a boolean');
  if (o.recordLogits !== undefined && typeof o.recordLogits !== 'boolean') fail('recordLogits', 'must be a boolean');
  if (o.keepLogits !== undefined && typeof o.keepLogits !== 'boolean') fail('keepLogits', 'must be a boolean');
}

/** Token-id prompts checked against the vocabulary; errors name the prompt and the position. */
export function checkPromptIds(prompts: number[][], vocabSize: number): Int32Array[] {
  return prompts.map((p, i) => {
    if (p.length === 0) fail(`prompts[${i}]`, 'is empty');
    p.forEach((id, j) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) fail(`prompts[${i}][${j}]`, `token id ${String(id)} is outside the vocabulary [0, ${vocabSize})`);
    });
    return Int32Array.from(p);
  });
}
