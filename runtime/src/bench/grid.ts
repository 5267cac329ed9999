import { UserError } from '../../../core/src/errors.js';

/** One point of the benchmark grid: `batch` prompts of `prompt` tokens, `newTokens` generated each. */
export interface GridPoint {
  batch: number;
  prompt: number;
  newTokens: number;
}

/** Every combination, smallest work first (buffers only grow, so memory figures stay per point). */
export function makeGrid(batches: number[], prompts: number[], newTokens: number[]): GridPoint[] {
  const grid: GridPoint[] = [];
  for (const batch of batches) for (const prompt of prompts) for (const n of newTokens) grid.push({ batch, prompt, newTokens: n });
  return grid.sort((a, b) => a.batch * (a.prompt + a.newTokens) - b.batch * (b.prompt + b.newTokens));
}

/** xorshift32: a tiny seeded generator so prompts are the same on every machine and in both engines. */
export function seededIds(seed: number, count: number, vocab: number, avoid: ReadonlySet<number>): number[] {
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  const out: number[] = [];
  while (out.length < count) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const id = x % vocab;
    if (!avoid.has(id)) out.push(id);
  }
  return out;
}

/**
 * Prompts of a grid point: <bos> then random ids (never bos/eos), different per sequence, the same
 * for a given seed. Random ids, not text: a synthetic checkpoint has no meaningful vocabulary.
 */
export function makePrompts(point: GridPoint, seed: number, vocab: number, bos: number, eos: number): number[][] {
  if (point.prompt < 1) throw new UserError('option --prompt: prompt lengths must be >= 1');
  const avoid = new Set([bos, eos]);
  return Array.from({ length: point.batch }, (_, s) => [bos, ...seededIds(seed * 7919 + s * 104729 + point.prompt, point.prompt - 1, vocab, avoid)]);
}
