/**
 * Issue 12's numerics check for misses computed on the CPU, against the all-resident engine on the same
 * prompts (greedy, same new tokens). With `--cpu-rounding fast` the CPU expert kernel rounds differently
 * from the GPU's (bf16 activations either way, other summation orders), so tokens need not be identical;
 * with `gpu-order` it rounds as the GPU's decode kernel does, so the run must give the all-resident tokens.
 * Measured either way:
 * - top-1 of every decode step equal wherever the all-resident top-1/top-2 logit gap is at least 0.1
 *   (compared while the two sequences' tokens so far are equal: after a divergence the inputs differ);
 * - the logits' largest absolute difference, relative to the largest reference logit of that step;
 * - whether the tokens are identical (required for gpu-order).
 * Prefill forwards fetch their misses (kCpuMaxRows), so the decode steps are where CPU experts run.
 * Each miss mode runs with both fills that change what the cache holds: background (CPU experts admitted)
 * and none (not admitted, the default).
 */
import type { MissMode } from '../../../sim/src/timing/engine.js';
import { Engine } from '../engine/index.js';
import { cpuFillOptions, type CpuFill, type CpuRounding } from '../offload/miss-options.js';
import { argmax, topGap } from './agreement.js';
import { seededIds } from './grid.js';

/** One run's logits against the all-resident reference's, position by position. */
export interface LogitComparison {
  label: string;
  steps: number;
  /** steps whose reference gap is >= 0.1, and of those the ones whose top-1 agrees */
  confident: number;
  confidentAgree: number;
  /** all compared steps whose top-1 agrees */
  agree: number;
  maxRelLogitError: number;
  /** the confident positions whose top-1 differs: sequence, step, the reference's top-1/top-2 gap there */
  flips: Array<{ sequence: number; step: number; gap: number }>;
  identicalTokens: boolean;
}

export interface CpuMissCheckCase extends LogitComparison {
  miss: MissMode;
  fill: CpuFill;
  cpuExperts: number;
}

export interface CpuMissCheck {
  newTokens: number;
  /** how the CPU computed the bf16 misses (absent in older files: fast) */
  rounding?: CpuRounding;
  cache: number;
  cases: CpuMissCheckCase[];
  /**
   * The engine's own rounding noise on the same measure: the all-resident engine again, batch 16's prompts
   * one at a time (other GEMM shapes, so other cuBLAS kernels and summation orders; no CPU expert, nothing
   * offloaded), against the batch-16 reference. Not part of `pass`: it says how far the criterion is above
   * what any change of summation order does on this random-weight checkpoint.
   */
  control: LogitComparison;
  pass: boolean;
}

const GAP = 0.1;
const FILLS: CpuFill[] = ['background', 'none'];
const BATCHES = [
  { label: 'batch 1', promptLengths: [40] },
  { label: 'batch 4', promptLengths: [40, 33, 57, 21] },
  { label: 'batch 16', promptLengths: Array.from({ length: 16 }, (_, i) => 24 + ((i * 7) % 23)) },
];

/** The largest |logit| of a row (the scale its error is measured against). */
function maxAbs(l: Float32Array): number {
  let m = 0;
  for (let v = 0; v < l.length; v++) m = Math.max(m, Math.abs(l[v]));
  return m;
}

interface Reference {
  tokens: number[][];
  logits: Float32Array[][];
}

/** Step k of sequence s compared while every earlier token agrees (after a divergence the inputs differ). */
function compareToReference(label: string, R: Reference, tokens: number[][], logits: Float32Array[][], vocab: number): LogitComparison {
  const c: LogitComparison = { label, steps: 0, confident: 0, confidentAgree: 0, agree: 0, maxRelLogitError: 0, flips: [], identicalTokens: true };
  for (let s = 0; s < R.tokens.length; s++) {
    for (let k = 0; k < R.tokens[s].length; k++) {
      // step k's logits produced token k
      const a = R.logits[s][k], b = logits[s][k];
      const same = argmax(a, 0, vocab) === argmax(b, 0, vocab);
      let maxDiff = 0;
      for (let v = 0; v < vocab; v++) maxDiff = Math.max(maxDiff, Math.abs(a[v] - b[v]));
      c.steps++;
      c.maxRelLogitError = Math.max(c.maxRelLogitError, maxDiff / Math.max(maxAbs(a), 1e-30));
      if (same) c.agree++;
      const gap = topGap(a, 0, vocab);
      if (gap >= GAP) {
        c.confident++;
        if (same) c.confidentAgree++;
        else c.flips.push({ sequence: s, step: k, gap: Number(gap.toFixed(4)) });
      }
      if (R.tokens[s][k] !== tokens[s][k]) {
        c.identicalTokens = false;
        break;
      }
    }
  }
  return c;
}

export async function checkCpuMisses(model: string, cache: number, misses: MissMode[], newTokens: number, seed: number, log: (line: string) => void, rounding: CpuRounding = 'fast'): Promise<CpuMissCheck> {
  const ref = await Engine.load(model, { device: 'cuda' });
  const vocab = ref.config.vocabSize;
  const avoid = new Set([ref.config.bosTokenId, ref.config.eosTokenId]);
  const prompts = BATCHES.map((b, bi) => b.promptLengths.map((n, s) => [ref.config.bosTokenId, ...seededIds(seed * 613 + bi * 71 + s, n - 1, vocab, avoid)]));
  const reference: Reference[] = [];
  let control: LogitComparison;
  try {
    for (const p of prompts) {
      const r = await ref.generateAll({ prompts: p, maxNewTokens: newTokens, stopOnEos: false, recordLogits: true });
      reference.push({ tokens: r.tokens, logits: ref.logits!.perSequence });
    }
    // the noise control (CpuMissCheck.control): batch 16's prompts one at a time
    const last = BATCHES.length - 1;
    const tokens: number[][] = [];
    const logits: Float32Array[][] = [];
    for (const p of prompts[last]) {
      const r = await ref.generateAll({ prompts: [p], maxNewTokens: newTokens, stopOnEos: false, recordLogits: true });
      tokens.push(r.tokens[0]);
      logits.push(ref.logits!.perSequence[0]);
    }
    control = compareToReference(`all-resident, ${BATCHES[last].label}'s prompts one at a time`, reference[last], tokens, logits, vocab);
  } finally {
    ref.close();
  }
  log(`cpu-miss check: all-resident reference done (${BATCHES.length} batches x ${newTokens} tokens); noise control (${control.label}): top-1 ${control.confidentAgree}/${control.confident} where the gap >= ${GAP}, max relative logit error ${control.maxRelLogitError.toExponential(2)}`);
  const eng = await Engine.load(model, { device: 'cuda', cache: { slotsPerLayer: cache, policy: 'lru' }, runShape: { batch: 16, contextTokens: 64 + newTokens, prefillRows: 16 * 64 } });
  const cases: CpuMissCheckCase[] = [];
  try {
    for (const miss of misses) for (const fill of FILLS) {
      for (let bi = 0; bi < BATCHES.length; bi++) {
        eng.resetOffload({ cache: { slotsPerLayer: cache, policy: 'lru' }, miss: { mode: miss, rounding, ...cpuFillOptions(fill) } });
        const before = eng.offloadStats()?.cpuExperts ?? 0;
        const r = await eng.generateAll({ prompts: prompts[bi], maxNewTokens: newTokens, stopOnEos: false, recordLogits: true });
        const got = eng.logits!.perSequence;
        const c: CpuMissCheckCase = { miss, fill, cpuExperts: (eng.offloadStats()?.cpuExperts ?? 0) - before, ...compareToReference(BATCHES[bi].label, reference[bi], r.tokens, got, vocab) };
        cases.push(c);
        log(`cpu-miss check: ${miss} (fill ${fill}, rounding ${rounding}) ${c.label}: top-1 ${c.confidentAgree}/${c.confident} where the gap >= ${GAP} (${c.agree}/${c.steps} overall), max relative logit error ${c.maxRelLogitError.toExponential(2)}, ${c.cpuExperts} CPU experts, tokens ${c.identicalTokens ? 'identical' : 'diverge'}${c.flips.length ? `; top-1 differs at gap ${c.flips.map((f) => f.gap).join(', ')}` : ''}`);
      }
    }
  } finally {
    eng.close();
  }
  const pass = cases.every((c) => c.confidentAgree === c.confident && c.cpuExperts > 0 && (rounding !== 'gpu-order' || c.identicalTokens));
  return { newTokens, rounding, cache, cases, control, pass };
}
