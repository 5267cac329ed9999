/**
 * GPU memory budget of the offloading runtime (issue 6): `--gpu-memory 12GiB` is the total the process may
 * use on the GPU; from it and the model's sizes this module derives the expert slots per MoE layer (C):
 *
 *   budget = CUDA context reserve + non-expert weights + KV cache + workspace + staging + C x (MoE layers x one expert)
 *
 * Sizes come from config.json alone (bf16 everywhere but the routed experts, whose blob follows the expert
 * dtype: sim/src/cost/expert-layout.ts mirrors the native layout; int8/int4 give 2x/3.6x the slots), so the arithmetic
 * runs before anything is loaded and a budget too small for the non-expert part (with C = 0, every expert
 * streamed) is refused up front, saying how much is needed. The workspace is an upper estimate of the CUDA
 * backend's buffers (native/src/cuda_backend/cuda_backend.cpp ensure_workspace) for the run's shape; the
 * native side checks its real allocations against the same budget (less the context reserve) and fails
 * with the figures if they ever exceed it.
 */
import type { ModelConfig } from '../model/config.js';
import { DEFAULT_EXPERT_GROUP, expertBlobBytes, type ExpertDtype } from '../../../sim/src/cost/expert-layout.js';
import { UserError } from '../../../core/src/errors.js';

/** How the routed experts are stored (issue 13): bf16 (default) or quantized, int4 with its group size. */
export interface ExpertFormat {
  dtype: ExpertDtype;
  group: number;
}
export const BF16_EXPERTS: ExpertFormat = { dtype: 'bf16', group: DEFAULT_EXPERT_GROUP };

const MiB = 1 << 20;
const GiB = 1 << 30;

/**
 * The CUDA context, cuBLAS handles and loaded kernels: device memory the process uses that is not the
 * engine's own allocations. Measured on the device (the bench reports deviceUsedPeakBytes - enginePeakBytes).
 */
export const CONTEXT_RESERVE_BYTES = 768 * MiB;
/** cuBLAS workspace of the CUDA backend (kCublasWorkspace). */
const CUBLAS_WORKSPACE_BYTES = 32 * MiB;
/** Staging buffers for experts the cache bypasses (CudaBackendOptions::staging_buffers). */
export const STAGING_BUFFERS = 4;
/** Decode-attention workspace allowance (split-K partials for up to 64 rows). */
const ATTENTION_WORKSPACE_BYTES = 64 * MiB;
const ROWS_CUBLAS = 2048;
const ROWS_GEMV = 32;

/** The run the budget must hold: `batch` sequences of up to `contextTokens` tokens (prompt + generated), prefilled together. */
export interface RunShape {
  batch: number;
  /** tokens per sequence: prompt plus generated */
  contextTokens: number;
  /** rows of the largest forward (default batch x contextTokens, a whole prefill) */
  prefillRows?: number;
}

export interface GpuMemoryPlan {
  budgetBytes: number;
  contextReserveBytes: number;
  nonExpertBytes: number;
  kvCacheBytes: number;
  workspaceBytes: number;
  stagingBytes: number;
  /** the routed experts' storage format */
  expertDtype: ExpertDtype;
  /** one expert blob (gate | up | down, plus scales and zeros when quantized) */
  expertBytes: number;
  /** one slot in every MoE layer */
  slotBytes: number;
  slotsPerLayer: number;
  /** everything but the slots: the least budget that runs at all (C = 0) */
  fixedBytes: number;
  /** fixedBytes + slotsPerLayer x slotBytes */
  totalBytes: number;
}

const aligned = (n: number) => Math.ceil(n / 256) * 256;

/** Bytes of one routed expert blob in `format` (default bf16: 3 x d_ff x hidden x 2). */
export function expertBytes(c: ModelConfig, format: ExpertFormat = BF16_EXPERTS): number {
  try {
    return expertBlobBytes(format.dtype, c.hiddenSize, c.moeIntermediateSize, format.group);
  } catch (err) {
    throw new UserError(`option --expert-group: ${(err as Error).message}`);
  }
}

/**
 * Quantized experts: a bf16 buffer of one expert for the >= 2048-row path, which dequantizes each expert
 * before its cuBLAS GEMMs (moe_cuda_quant.h dequantize_expert_bf16), twice for double buffering. An upper
 * estimate like the rest of the workspace; the native side checks its real allocations against the budget.
 */
function quantWorkspaceBytes(c: ModelConfig, format: ExpertFormat, rows: number): number {
  return format.dtype === 'bf16' || rows < ROWS_CUBLAS ? 0 : 2 * expertBytes(c);
}

/** Every weight the GPU holds when the routed experts are offloaded, in bf16 (norms fp32). */
export function nonExpertBytes(c: ModelConfig): number {
  const H = c.hiddenSize;
  const heads = c.numAttentionHeads;
  const qOut = heads * (c.qkNopeHeadDim + c.qkRopeHeadDim);
  const sharedFf = c.nSharedExperts * c.moeIntermediateSize;
  let b = aligned(c.vocabSize * H * 2) * 2 + aligned(H * 4);
  for (let l = 0; l < c.numHiddenLayers; l++) {
    b += 2 * aligned(H * 4) + aligned(c.kvLoraRank * 4);
    b += aligned((qOut + c.kvLoraRank + c.qkRopeHeadDim) * H * 2);
    b += aligned(heads * (c.qkNopeHeadDim + c.vHeadDim) * c.kvLoraRank * 2);
    b += aligned(H * heads * c.vHeadDim * 2);
    if (c.moeLayers.includes(l)) {
      b += aligned(c.nRoutedExperts * H * 2);
      if (sharedFf > 0) b += aligned(2 * sharedFf * H * 2) + aligned(H * sharedFf * 2);
    } else {
      b += aligned(2 * c.intermediateSize * H * 2) + aligned(H * c.intermediateSize * 2);
    }
  }
  return b + CUBLAS_WORKSPACE_BYTES;
}

/** The compact MLA cache: [kv_lora + rope] bf16 per token and layer. */
export function kvCacheBytes(c: ModelConfig, tokens: number): number {
  return tokens * (c.kvLoraRank + c.qkRopeHeadDim) * c.numHiddenLayers * 2;
}

/** Upper estimate of the CUDA backend's workspace for forwards of up to `rows` rows and `logitRows` logit rows (offloading on). */
export function workspaceBytes(c: ModelConfig, rows: number, logitRows: number): number {
  const T = rows;
  const H = c.hiddenSize;
  const k = c.numExpertsPerTok;
  const E = c.nRoutedExperts;
  const dff = c.moeIntermediateSize;
  const heads = c.numAttentionHeads;
  const TK = T * k;
  const sharedFf = c.nSharedExperts * dff;
  const qkvWidth = heads * (c.qkNopeHeadDim + c.qkRopeHeadDim) + c.kvLoraRank + c.qkRopeHeadDim;
  const big = T >= ROWS_CUBLAS;
  let b = T * H * 4 + T * H * 2 + T * qkvWidth * 2 + T * (c.kvLoraRank + c.qkRopeHeadDim) * 2;
  b += T * heads * (c.qkNopeHeadDim + c.vHeadDim) * 2 + T * heads * c.vHeadDim * 2 + T * E * 4 + 2 * TK * 4;
  b += Math.max(T * 2 * c.intermediateSize, T * 2 * sharedFf, big ? TK * 2 * dff : 0) * 2;
  b += Math.max(T * c.intermediateSize, T * sharedFf, big ? TK * dff : 0) * 2;
  if (big) b += TK * H * 2 + TK * H * 4 + 4 * TK * 4;
  // routed-expert kernels' own scratch (h and per-entry outputs) for up to 2047 rows
  const kernelEntries = Math.min(T, ROWS_CUBLAS) * k;
  b += Math.max(Math.min(T, ROWS_GEMV) * k, kernelEntries) * (dff * 2 + H * 4) + 64 * 1024;
  b += ATTENTION_WORKSPACE_BYTES;
  b += logitRows * H * 6 + logitRows * c.vocabSize * 4 + T * 8 + T * 40;
  // offloading: routing, pointer table, launch masks and per-entry outputs
  const maskEntries = Math.min(T, ROWS_CUBLAS - 1) * k;
  b += 2 * TK * 4 + 3 * E * 8 + (2 + E) * maskEntries * 4 + maskEntries * H * 4;
  return Math.ceil(b * 1.02) + 4 * MiB;
}

function shapeOf(s: RunShape): { tokens: number; rows: number; logitRows: number } {
  for (const [k, v] of Object.entries(s)) {
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new UserError(`GPU memory plan: ${k} must be a positive integer, got ${String(v)}`);
  }
  return { tokens: s.batch * s.contextTokens, rows: s.prefillRows ?? s.batch * s.contextTokens, logitRows: s.batch };
}

/** The breakdown for a given slot count (what a run with `--cache C` needs). */
export function gpuMemoryFor(c: ModelConfig, slotsPerLayer: number, shape: RunShape, budgetBytes = 0, format: ExpertFormat = BF16_EXPERTS): GpuMemoryPlan {
  const { tokens, rows, logitRows } = shapeOf(shape);
  const eb = expertBytes(c, format);
  const plan: GpuMemoryPlan = {
    budgetBytes,
    contextReserveBytes: CONTEXT_RESERVE_BYTES,
    nonExpertBytes: nonExpertBytes(c),
    kvCacheBytes: kvCacheBytes(c, tokens),
    workspaceBytes: workspaceBytes(c, rows, logitRows) + quantWorkspaceBytes(c, format, rows),
    stagingBytes: STAGING_BUFFERS * eb,
    expertDtype: format.dtype,
    expertBytes: eb,
    slotBytes: c.moeLayers.length * eb,
    slotsPerLayer,
    fixedBytes: 0,
    totalBytes: 0,
  };
  plan.fixedBytes = plan.contextReserveBytes + plan.nonExpertBytes + plan.kvCacheBytes + plan.workspaceBytes + plan.stagingBytes;
  plan.totalBytes = plan.fixedBytes + slotsPerLayer * plan.slotBytes;
  return plan;
}

export const formatGiB = (b: number) => `${(b / GiB).toFixed(2)} GiB`;

function breakdown(p: GpuMemoryPlan): string {
  return (
    `CUDA context ${formatGiB(p.contextReserveBytes)}, non-expert weights ${formatGiB(p.nonExpertBytes)}, KV cache ${formatGiB(p.kvCacheBytes)}, ` +
    `workspace ${formatGiB(p.workspaceBytes)}, staging ${formatGiB(p.stagingBytes)}, ${p.slotsPerLayer} ${p.expertDtype ?? 'bf16'} expert slots/layer ${formatGiB(p.slotsPerLayer * p.slotBytes)}`
  );
}

/**
 * The most expert slots per MoE layer that fit `budgetBytes` for a run of `shape` (at most the experts per
 * layer). Refuses, naming the amount needed, a budget below the fixed part (C = 0: every expert streamed).
 */
export function planGpuMemory(c: ModelConfig, budgetBytes: number, shape: RunShape, format: ExpertFormat = BF16_EXPERTS): GpuMemoryPlan {
  if (!Number.isFinite(budgetBytes) || budgetBytes <= 0) throw new UserError(`option --gpu-memory: must be a positive size, got ${String(budgetBytes)}`);
  const zero = gpuMemoryFor(c, 0, shape, budgetBytes, format);
  if (budgetBytes < zero.fixedBytes) {
    throw new UserError(
      `option --gpu-memory: ${formatGiB(budgetBytes)} cannot hold the model's non-expert part for this run; at least ${formatGiB(zero.fixedBytes)} is needed ` +
        `(${breakdown(zero)}; every routed expert streamed from host memory)`,
    );
  }
  const slots = Math.min(c.nRoutedExperts, Math.floor((budgetBytes - zero.fixedBytes) / zero.slotBytes));
  return gpuMemoryFor(c, slots, shape, budgetBytes, format);
}

/** Refuses `--cache C` with `--gpu-memory` when C slots do not fit, naming what C needs and the most that fits. */
export function checkSlotsFit(c: ModelConfig, slotsPerLayer: number, budgetBytes: number, shape: RunShape, format: ExpertFormat = BF16_EXPERTS): GpuMemoryPlan {
  const most = planGpuMemory(c, budgetBytes, shape, format);
  const want = gpuMemoryFor(c, slotsPerLayer, shape, budgetBytes, format);
  if (want.totalBytes > budgetBytes) {
    throw new UserError(
      `option --cache: ${slotsPerLayer} slots per layer need ${formatGiB(want.totalBytes)} (${breakdown(want)}), more than --gpu-memory ${formatGiB(budgetBytes)}; ` +
        `at most ${most.slotsPerLayer} slots fit`,
    );
  }
  return want;
}

/** `12GiB`, `12 GB`, `800MiB`, `1.5TiB`, or plain bytes. GiB/MiB are powers of 2, GB/MB powers of 10. */
export function parseByteSize(option: string, text: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B?|B)?\s*$/i.exec(text);
  if (!m) throw new UserError(`option ${option}: '${text}' is not a size (e.g. 12GiB, 800MiB, 16GB)`);
  const value = Number(m[1]);
  const unit = (m[2] ?? 'B').toUpperCase();
  const powers: Record<string, number> = { B: 1, K: 1024, KB: 1e3, KIB: 1024, M: MiB, MB: 1e6, MIB: MiB, G: GiB, GB: 1e9, GIB: GiB, T: 1024 * GiB, TB: 1e12, TIB: 1024 * GiB };
  const mult = powers[unit];
  if (mult === undefined) throw new UserError(`option ${option}: unknown unit in '${text}' (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)`);
  const bytes = Math.floor(value * mult);
  if (bytes <= 0) throw new UserError(`option ${option}: must be positive, got '${text}'`);
  return bytes;
}
