import type { PointResult } from './engine-bench.js';
import type { BaselinePoint } from './transformers-baseline.js';

/** A speed target of issue 5, evaluated when the grid holds its point. */
export interface TargetResult {
  name: string;
  value: number;
  limit: number;
  unit: string;
  pass: boolean;
}

const find = <T extends { batch: number; prompt: number }>(xs: readonly T[], batch: number, prompt: number) =>
  xs.find((x) => x.batch === batch && x.prompt === prompt);

export function evaluateTargets(points: readonly PointResult[], baseline: readonly BaselinePoint[] | null): TargetResult[] {
  const out: TargetResult[] = [];
  const b1 = find(points, 1, 128);
  if (b1) {
    out.push({ name: 'batch 1, prompt 128: ms per output token', value: b1.msPerToken.mean, limit: 5, unit: 'ms (<=)', pass: b1.msPerToken.mean <= 5 });
    const hf = baseline ? find(baseline, 1, 128) : undefined;
    if (hf) {
      const x = hf.msPerToken.mean / b1.msPerToken.mean;
      out.push({ name: 'batch 1, prompt 128: speed-up over transformers', value: x, limit: 8, unit: 'x (>=)', pass: x >= 8 });
    }
  }
  const b16 = find(points, 16, 128);
  if (b16) {
    out.push({ name: 'batch 16, prompt 128: output tokens/s', value: b16.decodeTokensPerSecond, limit: 1000, unit: 'tok/s (>=)', pass: b16.decodeTokensPerSecond >= 1000 });
  }
  const p16 = find(points, 16, 512);
  if (p16) {
    out.push({ name: 'prefill of 16 x 512 tokens', value: p16.prefillMs.mean, limit: 150, unit: 'ms (<)', pass: p16.prefillMs.mean < 150 });
  }
  return out;
}
