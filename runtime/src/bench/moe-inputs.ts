/**
 * Real activations for the per-expert error (issue 13, item 4: "over real activations from a run"): the
 * input of every MoE block (the post-attention norm's output, debug name `ffn_norm`, what the router and
 * the experts read) captured from one prefill of the given sequences through the engine's debug hook,
 * then `rows` of them per MoE layer picked evenly over the positions, leaving out each sequence's first
 * position (the BOS token, the same row for every prompt).
 *
 * The result is laid out as the addon's quantFidelity takes per-layer rows: [MoE layers, rows, hidden],
 * MoE layers in model order.
 */
import type { Engine } from '../engine/index.js';

export interface MoeInputs {
  /** fp32 [layers * rows * hidden] */
  x: Float32Array;
  layers: number;
  rows: number;
  /** rows of the capture the picked rows came from (every position but the first of each sequence) */
  candidates: number;
}

/** Indices of `rows` positions spread evenly over `candidates` (the middle of each of `rows` equal parts). */
export function evenPick(candidates: number, rows: number): number[] {
  if (!Number.isInteger(rows) || rows < 1) throw new Error(`evenPick: rows must be a positive integer, got ${rows}`);
  if (candidates < rows) throw new Error(`evenPick: ${rows} rows asked of only ${candidates}`);
  return Array.from({ length: rows }, (_, j) => Math.floor(((j + 0.5) * candidates) / rows));
}

/**
 * One prefill forward of `sequences` with the `ffn_norm` capture on (CUDA forwards run without graphs
 * while a hook is set), then the picked rows. Leaves the capture off.
 */
export async function captureMoeInputs(engine: Engine, sequences: number[][], rows: number): Promise<MoeInputs> {
  const cfg = engine.config;
  const H = cfg.hiddenSize;
  // Rows of a batched prefill are sequence-major (Engine::score): position i of sequence s is row offset[s] + i.
  const candidates: number[] = [];
  let offset = 0;
  for (const s of sequences) {
    for (let i = 1; i < s.length; i++) candidates.push(offset + i);
    offset += s.length;
  }
  const picked = evenPick(candidates.length, rows).map((j) => candidates[j]);
  engine.setDebugCapture(['ffn_norm']);
  let caps;
  try {
    await engine.score(sequences);
    caps = engine.takeDebugCapture();
  } finally {
    engine.setDebugCapture(null);
  }
  const moe = caps.filter((c) => c.name === 'ffn_norm' && c.layer >= cfg.firstKDenseReplace).sort((a, b) => a.layer - b.layer);
  const layers = cfg.numHiddenLayers - cfg.firstKDenseReplace;
  if (moe.length !== layers || moe.some((c, i) => c.layer !== cfg.firstKDenseReplace + i || c.rows !== offset || c.cols !== H)) {
    throw new Error(`captureMoeInputs: expected one ${offset} x ${H} ffn_norm capture for each of the ${layers} MoE layers, got ${moe.map((c) => `layer ${c.layer} ${c.rows} x ${c.cols}`).join(', ') || 'none'}`);
  }
  const x = new Float32Array(layers * rows * H);
  moe.forEach((c, li) => picked.forEach((r, j) => x.set(c.data.subarray(r * H, (r + 1) * H), (li * rows + j) * H)));
  return { x, layers, rows, candidates: candidates.length };
}
