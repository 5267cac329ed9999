import type { NativeMissSpec } from '../offload/miss-options.js';
import type { NativePrefetchSpec } from '../offload/prefetch-options.js';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../../core/src/errors.js';

/**
 * The typed surface of the native addon (native/addon/addon.cpp). Only this module touches it;
 * everything else uses the Engine class.
 */
export interface NativeModelConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  intermediate_size: number;
  moe_intermediate_size: number;
  first_k_dense_replace: number;
  moe_layer_freq: number;
  n_routed_experts: number;
  num_experts_per_tok: number;
  n_shared_experts: number;
  norm_topk_prob: boolean;
  routed_scaling_factor: number;
  num_attention_heads: number;
  /** 0: no q LoRA */
  q_lora_rank: number;
  kv_lora_rank: number;
  qk_nope_head_dim: number;
  qk_rope_head_dim: number;
  v_head_dim: number;
  rms_norm_eps: number;
  max_position_embeddings: number;
  bos_token_id: number;
  eos_token_id: number;
  tie_word_embeddings: boolean;
  /** 0 in a numeric field means "absent" (the C++ side then follows transformers' defaults) */
  rope: {
    type: 'default' | 'yarn';
    theta: number;
    factor: number;
    original_max_position_embeddings: number;
    beta_fast: number;
    beta_slow: number;
    mscale: number;
    mscale_all_dim: number;
    attention_factor: number;
    truncate: boolean;
  };
}

export interface NativeTensor {
  name: string;
  file: string;
  offset: number;
  nbytes: number;
  dtype: 'BF16' | 'F16' | 'F32';
  shape: number[];
}

export interface NativeRequest {
  prompts: Int32Array[];
  maxNewTokens: number;
  greedy: boolean;
  temperature: number;
  topP: number;
  seed: number;
  stopOnEos: boolean;
}

/** One sequence of continuous batching (Engine::add_sequence). */
export interface NativeSequenceRequest {
  prompt: Int32Array;
  maxNewTokens: number;
  greedy: boolean;
  temperature: number;
  topP: number;
  seed: number;
  stopOnEos: boolean;
  /** trace sequence it replays / is recorded as (default: arrival order) */
  traceSequence?: number;
}

/** finish codes: 0 running, 1 eos, 2 length, 3 free slot (continuous batching); arrays are per slot */
export interface NativeStepResult {
  tokens: Int32Array;
  finish: Int8Array;
  logitsSeq: Int32Array;
}

export interface NativeCapture {
  name: string;
  layer: number;
  rows: number;
  cols: number;
  data: Float32Array;
}

export interface NativeEngineHandle {
  begin(request: NativeRequest): Promise<NativeStepResult>;
  step(): Promise<NativeStepResult>;
  /** the last begin()/step()'s logits; throws when that step kept none (setKeepLogits(false), all rows greedy) */
  logits(): Float32Array;
  /** whether begin()/step() bring the logits to the host (default true); false lets CUDA sample greedy rows on the GPU */
  setKeepLogits(keep: boolean): void;
  info(): { backend: string; weightBytes: number; cpuFeatures: string; linearKernel: string; device: string };
  /** teacher forcing: logits of every position of request.prompts, read with logits() */
  score(request: NativeRequest & { prefillTokens: number }): Promise<void>;
  /** continuous batching: drops every sequence, makes `slots` slots of `capacity` tokens */
  openSlots(slots: number, capacity: number): Promise<void>;
  /** the slot the sequence took; its prompt is prefilled by the next step() */
  addSequence(request: NativeSequenceRequest): number;
  removeSequence(slot: number): void;
  setDebugCapture(names: string[] | null): void;
  takeDebugCapture(): NativeCapture[];
  /** offloading runtime (runtime/src/offload/offload-spec.ts builds the spec); null detaches */
  setOffload(spec: NativeOffloadSpec | null): void;
  takeRecord(): NativeRecord;
  takeMissLog(): NativeMissLog;
  cacheStats(): NativeCacheStats | null;
  close(): void;
}

export interface NativeOffloadSpec {
  cache?: {
    slotsPerLayer: number;
    policy: string;
    lfruDecay: number;
    pinned?: Int32Array[];
    plannedOffsets?: Int32Array;
    plannedExperts?: Int32Array;
  };
  replay?: { length: number; experts: Int32Array; weights: Float32Array }[];
  record?: { scores: boolean; gateNext: boolean; timings: boolean };
  miss?: NativeMissSpec;
  prefetch?: NativePrefetchSpec;
  tensors?: NativeTensor[];
  /** false: no resident steps (native OffloadOptions::resident_steps; default true) */
  residentSteps?: boolean;
}

/** The miss decisions logged since the last takeMissLog() (issue 12), one row per missed expert. */
export interface NativeMissLog {
  rows: number;
  step: Int32Array;
  layer: Int32Array;
  expert: Int32Array;
  tokens: Int32Array;
  copyBacklogMs: Float32Array;
  viaCopyMs: Float32Array;
  viaCpuMs: Float32Array;
  /** the CPU job's measured time; -1 for fetched experts */
  cpuMeasuredMs: Float32Array;
  /** the run's CPU correction factor the decision used (sim/src/cost/cpu-correction.ts; 1 with --cpu-estimate profile) */
  cpuFactor: Float32Array;
  onCpu: Uint8Array;
  firstOfLayer: Uint8Array;
}

/** Rows recorded since the last takeRecord(), trace order; k- and E-wide columns are flat. */
export interface NativeRecord {
  rows: number;
  step: Int32Array;
  phase: Uint8Array;
  layer: Uint16Array;
  seq: Int32Array;
  pos: Int32Array;
  token: Int32Array;
  experts: Int32Array;
  weights: Float32Array;
  scores: Float32Array;
  gateNext: Int32Array;
  gateNextValid: Uint8Array;
  layerUs: Float32Array;
  hits: Uint16Array;
  misses: Uint16Array;
}

/** Per MoE layer (index into the model's MoE layers). */
export interface NativeCacheStats {
  requests: Float64Array;
  hits: Float64Array;
  inserts: Float64Array;
  evictions: Float64Array;
  bypasses: Float64Array;
  /** with prefetch (issue 12): the controller's decisions, the simulator's TimingResult.prefetch counts */
  prefetch?: { issued: number; useful: number; dropped: number; needed: number; alreadyCached: number; /** predicted: the in-line predictor's time (us) and predictions (cumulative since load), decode and prefill forwards */ inferUs?: number; inferPredictions?: number; prefillInferUs?: number; prefillInferPredictions?: number };
}

export interface NativeLoadOptions {
  device: string;
  threads: number;
  /** device 'cuda': routed experts offloaded, this many GPU slots per MoE layer (absent: all resident) */
  offloadSlots?: number;
  /** device 'cuda': cap on the engine's own device allocations (checked natively) */
  gpuBudgetBytes?: number;
  /** issue 13, offloaded experts: 'int8' | 'int4' (absent: bf16) and the int4 group size */
  expertDtype?: string;
  expertGroup?: number;
  /** quantized experts: the quantized experts file to read or write (runtime/src/offload/quantized-file.ts) */
  quantizedFile?: { path: string; mode: 'read' | 'write'; header: Buffer };
}

/** What a load (or expertBlobs) did with the quantized experts file (native/include/moe/quant/quantized_file.h). */
export interface NativeQuantizedFileResult {
  path: string;
  /** the blobs came from the file (those that failed their checksum excepted) */
  read: boolean;
  /** this load (re)wrote the file */
  written: boolean;
  /** blobs whose checksum failed, quantized again */
  rebuiltExperts: number;
  readSeconds: number;
  writeSeconds: number;
  /** why the file was not read or not written; '' when nothing went wrong */
  warning: string;
}

/** One expert blob's byte layout (native/addon/quant_binding.cpp expertLayout). */
export interface NativeExpertLayout {
  dtype: string;
  hidden: number;
  dff: number;
  group: number;
  bytes: number;
  /** the quantizer's id (moe/quant/quantize.h quantizer_id): a quantized experts file of another is rebuilt */
  quantizer?: string;
}

export interface NativeAddon {
  load(spec: { config: NativeModelConfig; tensors: NativeTensor[]; options: NativeLoadOptions }): Promise<NativeEngineHandle>;
  cpuFeatures(): string;
  /** absent in builds before issue 13 */
  expertLayout?(dtype: string, hidden: number, dff: number, group?: number): NativeExpertLayout;
  /** the routed experts' blobs built without a GPU (quantize-experts, tests); absent in builds before the quantized experts file */
  expertBlobs?(spec: {
    config: NativeModelConfig;
    tensors: NativeTensor[];
    dtype: string;
    group?: number;
    file?: { path: string; mode: 'read' | 'write'; header: Buffer };
    returnBlobs?: boolean;
  }): Promise<{ blobs: Buffer | null; bytes: number; quantizeSeconds: number; file: NativeQuantizedFileResult | null }>;
}

/** The repository root: the nearest ancestor of this file holding package.json and native/. */
export function findRepoRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native', 'CMakeLists.txt'))) return dir;
    const up = dirname(dir);
    if (up === dir) return resolve(from, '..', '..', '..');
    dir = up;
  }
}

let cached: NativeAddon | undefined;

/**
 * Loads the addon from native/build/Release/*.node (or MOE_NATIVE_ADDON, a path to a .node file,
 * for bundles that put it elsewhere). A missing build is a UserError telling how to build it.
 */
export function loadNativeAddon(): NativeAddon {
  if (cached) return cached;
  const override = process.env.MOE_NATIVE_ADDON;
  let path: string | undefined;
  if (override) {
    if (!existsSync(override)) throw new UserError(`MOE_NATIVE_ADDON=${override}: no such file`);
    path = override;
  } else {
    const dir = join(findRepoRoot(), 'native', 'build', 'Release');
    const found = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
    if (found.length === 0) {
      throw new UserError(`the native engine is not built (no ${join(dir, '*.node')}); run \`npm run build:native\` first`);
    }
    path = join(dir, found.includes('moe_addon.node') ? 'moe_addon.node' : found[0]);
  }
  const require = createRequire(import.meta.url);
  try {
    cached = require(path) as NativeAddon;
  } catch (err) {
    throw new UserError(`cannot load the native engine ${path} (${(err as Error).message}); rebuild it with \`npm run build:native\``);
  }
  return cached;
}
