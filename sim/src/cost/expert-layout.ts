/**
 * Bytes of one routed expert per storage format (issue 13): a TypeScript mirror of expert_layout() in
 * native/src/quant/expert_format.cpp (its header, native/include/moe/quant/expert_format.h, documents the
 * blob). The budget (runtime/src/offload/gpu-budget.ts) and the simulator's per-dtype profile need the
 * size before anything is loaded, so it is computed here; runtime/test/offload/expert-bytes.test.ts checks
 * it against the addon's own `expertLayout` when the build exports it.
 *
 * Blob of one expert: q region (gate | up | down), then for int8/int4 the scale region, then for int4 the
 * zero region, each region 256-byte aligned, the whole a multiple of 256 bytes.
 */
export const EXPERT_DTYPES = ['bf16', 'int8', 'int4'] as const;
export type ExpertDtype = (typeof EXPERT_DTYPES)[number];
/** inputs per int4 group (kDefaultInt4Group; hidden 2048 and d_ff 1408 are multiples of 64) */
export const DEFAULT_EXPERT_GROUP = 64;

export interface MatrixLayout {
  rows: number;
  cols: number;
  /** byte offsets from the blob's start (scale/zero 0 where the format has none) */
  q: number;
  scale: number;
  zero: number;
}

export interface ExpertLayout {
  dtype: ExpertDtype;
  hidden: number;
  dff: number;
  /** int4 only (0 otherwise) */
  group: number;
  gate: MatrixLayout;
  up: MatrixLayout;
  down: MatrixLayout;
  bytes: number;
}

const align256 = (n: number) => Math.ceil(n / 256) * 256;

function qBytes(t: ExpertDtype, rows: number, cols: number): number {
  const n = rows * cols;
  return t === 'bf16' ? n * 2 : t === 'int8' ? n : n / 2;
}

function scaleBytes(t: ExpertDtype, rows: number, cols: number, group: number): number {
  // int8: fp32 per output row; int4: fp16 per (row, group) (the zero region has the same size)
  return t === 'bf16' ? 0 : t === 'int8' ? rows * 4 : rows * (cols / group) * 2;
}

/** The layout of one expert; throws (an Error naming the figures) where expert_layout() throws. */
export function expertLayout(dtype: ExpertDtype, hidden: number, dff: number, group = DEFAULT_EXPERT_GROUP): ExpertLayout {
  if (!(EXPERT_DTYPES as readonly string[]).includes(dtype)) throw new Error(`unknown expert dtype '${String(dtype)}' (expected ${EXPERT_DTYPES.join(', ')})`);
  if (!(Number.isInteger(hidden) && hidden > 0 && Number.isInteger(dff) && dff > 0)) throw new Error('expert layout: hidden and d_ff must be positive');
  let g = 0;
  if (dtype === 'int4') {
    if (!Number.isInteger(group) || group <= 0 || group % 2 !== 0) throw new Error(`expert layout: int4 group size must be a positive even number, got ${group}`);
    if (hidden % group !== 0 || dff % group !== 0) throw new Error(`expert layout: int4 group size ${group} must divide hidden (${hidden}) and moe_intermediate_size (${dff})`);
    g = group;
  }
  const gate: MatrixLayout = { rows: dff, cols: hidden, q: 0, scale: 0, zero: 0 };
  const up: MatrixLayout = { rows: dff, cols: hidden, q: 0, scale: 0, zero: 0 };
  const down: MatrixLayout = { rows: hidden, cols: dff, q: 0, scale: 0, zero: 0 };
  up.q = gate.q + qBytes(dtype, dff, hidden);
  down.q = up.q + qBytes(dtype, dff, hidden);
  let end = down.q + qBytes(dtype, hidden, dff);
  if (dtype !== 'bf16') {
    gate.scale = align256(end);
    up.scale = gate.scale + scaleBytes(dtype, dff, hidden, g);
    down.scale = up.scale + scaleBytes(dtype, dff, hidden, g);
    end = down.scale + scaleBytes(dtype, hidden, dff, g);
  }
  if (dtype === 'int4') {
    gate.zero = align256(end);
    up.zero = gate.zero + scaleBytes(dtype, dff, hidden, g);
    down.zero = up.zero + scaleBytes(dtype, dff, hidden, g);
    end = down.zero + scaleBytes(dtype, hidden, dff, g);
  }
  return { dtype, hidden, dff, group: g, gate, up, down, bytes: align256(end) };
}

/** Bytes of one expert blob of this dtype. */
export function expertBlobBytes(dtype: ExpertDtype, hidden: number, dff: number, group = DEFAULT_EXPERT_GROUP): number {
  return expertLayout(dtype, hidden, dff, group).bytes;
}
