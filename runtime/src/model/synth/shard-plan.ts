import { encodeSafetensorsHeader } from '../../../../core/src/safetensors.js';
import type { ExpectedTensor } from '../tensor-names.js';
import { bf16Table, BLOCK_ELEMS, tensorSeed, type Distribution } from './random-weights.js';

/** One tensor's place in a synthetic shard. */
export interface PlannedTensor {
  name: string;
  shape: number[];
  elems: number;
  /** offset in the shard's data region */
  begin: number;
  dist: Distribution;
  seed: number;
}

export interface PlannedShard {
  fileName: string;
  tensors: PlannedTensor[];
  /** the complete header bytes: u64 length + JSON padded with spaces to a multiple of 8 */
  header: Buffer;
  dataBytes: number;
}

/** Shards of the real DeepSeek-V2-Lite-Chat are about 8.7 GB; small checkpoints get 3 shards so tests exercise the index. */
export const LARGE_SHARD_BYTES = 8_700_000_000;

/**
 * How the synthetic weights are distributed: projections normal with std 1/sqrt(fan_in) (activations
 * keep their scale through all layers), norms near 1, embeddings unit normal so the residual stream
 * starts at RMS 1. The router gets twice the projection std so routing is decisive rather than
 * near-uniform (trained routers are peaked), while its choices still vary from token to token.
 */
export function distributionFor(t: ExpectedTensor): Distribution {
  if (t.kind === 'norm') return { mean: 1, std: 0.05 };
  if (t.kind === 'embedding') return { mean: 0, std: 1 };
  const std = 1 / Math.sqrt(t.shape[1]);
  return { mean: 0, std: t.name.endsWith('.mlp.gate.weight') ? 2 * std : std };
}

/** DeepSeek's shard naming, as on the Hub: model-00001-of-000004.safetensors. */
export function shardFileName(index: number, count: number): string {
  return `model-${String(index + 1).padStart(5, '0')}-of-${String(count).padStart(6, '0')}.safetensors`;
}

export function planShards(tensors: ExpectedTensor[], seed: number, maxShardBytes?: number): PlannedShard[] {
  const total = tensors.reduce((a, t) => a + 2 * elemsOf(t.shape), 0);
  const limit = maxShardBytes ?? (total > 1e9 ? LARGE_SHARD_BYTES : Math.ceil(total / 3));
  const groups: ExpectedTensor[][] = [[]];
  let used = 0;
  for (const t of tensors) {
    const bytes = 2 * elemsOf(t.shape);
    if (used > 0 && used + bytes > limit) {
      groups.push([]);
      used = 0;
    }
    groups[groups.length - 1].push(t);
    used += bytes;
  }
  return groups.map((group, i) => {
    let begin = 0;
    const planned = group.map((t) => {
      const elems = elemsOf(t.shape);
      const p: PlannedTensor = { name: t.name, shape: t.shape, elems, begin, dist: distributionFor(t), seed: tensorSeed(seed, t.name) };
      begin += 2 * elems;
      return p;
    });
    // The tensors' `begin`s above are the back-to-back layout the header encodes.
    const header = encodeSafetensorsHeader(
      planned.map((t) => ({ name: t.name, dtype: 'BF16' as const, shape: t.shape })),
      { format: 'pt' },
    );
    return { fileName: shardFileName(i, groups.length), tensors: planned, header, dataBytes: begin };
  });
}

export function elemsOf(shape: number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** Blocks of one tensor, as (block index, element count) pairs. */
export function blocksOf(t: PlannedTensor): { block: number; elems: number }[] {
  const out: { block: number; elems: number }[] = [];
  for (let b = 0, start = 0; start < t.elems; b++, start += BLOCK_ELEMS) out.push({ block: b, elems: Math.min(BLOCK_ELEMS, t.elems - start) });
  return out;
}

export function tableFor(t: PlannedTensor): Uint16Array {
  return bf16Table(t.dist);
}
