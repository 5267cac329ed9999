import { readFileSync } from 'node:fs';
import type { Engine } from '../engine/index.js';
import { summarize, type Summary } from './stats.js';

/**
 * The stated tolerance of the engine against transformers in bf16 on the GPU. transformers-bf16
 * keeps the residual stream and every activation in bf16 (about 3 significant digits; rounding on
 * each of 54 residual additions) while the engine keeps the residual in fp32, so the two differ by
 * bf16 rounding noise, expected around 1e-2 relative; 5e-2 leaves room for its growth over 27 layers
 * but still fails on any real error (a wrong rotary layout, scale or routing gives O(1)).
 */
export const TOLERANCE = { logitsRelErrorMax: 0.05, hiddenRelErrorMax: 0.05, top1AgreementMin: 0.99 } as const;

export interface Disagreement {
  sequence: number;
  position: number;
  ours: number;
  reference: number;
  /** reference logit of its top-1 minus that of our top-1 (small: a near tie) */
  referenceMargin: number;
}

export interface PathAgreement {
  /** prefill: all positions in one forward; decode: teacher-forced single-token steps (graph path) */
  path: 'prefill' | 'decode';
  /** what is compared with what: the engine vs transformers bf16 / fp32, or transformers bf16 vs fp32 (the reference's own noise) */
  compared:
    | 'engine vs transformers-bf16'
    | 'engine vs transformers-fp32'
    | 'transformers-bf16 vs transformers-fp32'
    | 'engine vs llama.cpp'
    | 'quantized experts vs bf16 engine';
  positions: number;
  top1Agreement: number;
  /** per position: ||a - b|| / ||b|| over the vocabulary */
  logitsRelError: Summary;
  /** per layer (prefill rows only): ||a - b|| / ||b|| of the layer's output over all positions */
  hiddenRelError: number[] | null;
  disagreements: Disagreement[];
  /**
   * Top-1 agreement by the reference's own top-1 minus top-2 logit gap: on a random-weight checkpoint
   * many positions are near-ties that any bf16 rounding flips; well-separated positions must agree.
   */
  byReferenceMargin: { margin: string; positions: number; top1Agreement: number }[];
  /** judged against TOLERANCE for the engine-vs-bf16 rows (the criterion); null otherwise */
  pass: boolean | null;
}

export function readF32(path: string): Float32Array {
  const buf = readFileSync(path);
  const copy = new Uint8Array(buf.byteLength);
  copy.set(buf);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

export function argmax(a: Float32Array, off: number, n: number): number {
  let best = off;
  for (let i = off + 1; i < off + n; i++) if (a[i] > a[best]) best = i;
  return best - off;
}

/** Top-1 minus top-2 logit of one row. */
export function topGap(a: Float32Array, off: number, n: number): number {
  let first = -Infinity;
  let second = -Infinity;
  for (let i = off; i < off + n; i++) {
    const v = a[i];
    if (v > first) {
      second = first;
      first = v;
    } else if (v > second) second = v;
  }
  return first - second;
}

export const MARGIN_BINS = [0, 0.05, 0.1, 0.25, 0.5, 1] as const;

/** Compares logits rows (same layout: sequences in order, every position) at the chosen positions. */
export function compareLogits(
  path: 'prefill' | 'decode',
  compared: PathAgreement['compared'],
  ours: Float32Array,
  ref: Float32Array,
  vocab: number,
  lengths: number[],
  fromPosition: number,
): Omit<PathAgreement, 'hiddenRelError' | 'pass'> {
  if (ours.length !== ref.length) throw new Error(`${path}: ${ours.length / vocab} engine logit rows vs ${ref.length / vocab} reference rows`);
  const errors: number[] = [];
  const disagreements: Disagreement[] = [];
  const binCount = MARGIN_BINS.map(() => 0);
  const binAgree = MARGIN_BINS.map(() => 0);
  let agree = 0;
  let row = 0;
  lengths.forEach((len, s) => {
    for (let p = 0; p < len; p++, row++) {
      if (p < fromPosition) continue;
      const off = row * vocab;
      let d2 = 0;
      let r2 = 0;
      for (let i = 0; i < vocab; i++) {
        const d = ours[off + i] - ref[off + i];
        d2 += d * d;
        r2 += ref[off + i] * ref[off + i];
      }
      errors.push(Math.sqrt(d2 / r2));
      const a = argmax(ours, off, vocab);
      const b = argmax(ref, off, vocab);
      const gap = topGap(ref, off, vocab);
      let bin = MARGIN_BINS.length - 1;
      while (bin > 0 && gap < MARGIN_BINS[bin]) bin--;
      binCount[bin]++;
      if (a === b) binAgree[bin]++;
      if (a === b) agree++;
      else if (disagreements.length < 20) {
        disagreements.push({ sequence: s, position: p, ours: a, reference: b, referenceMargin: ref[off + b] - ref[off + a] });
      }
    }
  });
  const byReferenceMargin = MARGIN_BINS.map((lo, i) => ({
    margin: i + 1 < MARGIN_BINS.length ? `[${lo}, ${MARGIN_BINS[i + 1]})` : `>= ${lo}`,
    positions: binCount[i],
    top1Agreement: binCount[i] ? binAgree[i] / binCount[i] : Number.NaN,
  }));
  return { path, compared, positions: errors.length, top1Agreement: agree / errors.length, logitsRelError: summarize(errors), disagreements, byReferenceMargin };
}

/** Per-layer relative error of the prefill's layer outputs; reference layout [sequence][layer][position][hidden]. */
export function compareHidden(ourLayers: Float32Array[], ref: Float32Array, lengths: number[], hidden: number): number[] {
  const layers = ourLayers.length;
  const out: number[] = [];
  for (let l = 0; l < layers; l++) {
    let d2 = 0;
    let r2 = 0;
    let ourRow = 0;
    let refSeqBase = 0;
    for (const len of lengths) {
      const refBase = refSeqBase + l * len * hidden;
      for (let p = 0; p < len; p++) {
        const o = ourLayers[l].subarray((ourRow + p) * hidden, (ourRow + p + 1) * hidden);
        const r = ref.subarray(refBase + p * hidden, refBase + (p + 1) * hidden);
        for (let i = 0; i < hidden; i++) {
          const d = o[i] - r[i];
          d2 += d * d;
          r2 += r[i] * r[i];
        }
      }
      ourRow += len;
      refSeqBase += layers * len * hidden;
    }
    out.push(Math.sqrt(d2 / r2));
  }
  return out;
}

function judge(a: Omit<PathAgreement, 'hiddenRelError' | 'pass'>, hidden: number[] | null): PathAgreement {
  const judged = a.compared === 'engine vs transformers-bf16';
  return {
    ...a,
    hiddenRelError: hidden,
    pass: judged
      ? a.top1Agreement >= TOLERANCE.top1AgreementMin &&
        a.logitsRelError.max <= TOLERANCE.logitsRelErrorMax &&
        (hidden === null || hidden.every((e) => e <= TOLERANCE.hiddenRelErrorMax))
      : null,
  };
}

/**
 * The engine against the reference's own bf16 noise: is the engine at least as close to the fp32
 * result as transformers-bf16 is (mean logits error, worst layer's hidden error, top-1 agreement)?
 */
export interface NoiseFloor {
  engineVsFp32: { logitsRelErrorMean: number; hiddenRelErrorMax: number; top1Agreement: number };
  bf16VsFp32: { logitsRelErrorMean: number; hiddenRelErrorMax: number; top1Agreement: number };
  engineAtLeastAsAccurate: boolean;
}

export function noiseFloor(paths: readonly PathAgreement[]): NoiseFloor | null {
  const eng = paths.find((p) => p.compared === 'engine vs transformers-fp32' && p.path === 'prefill');
  const ref = paths.find((p) => p.compared === 'transformers-bf16 vs transformers-fp32');
  if (!eng || !ref || !eng.hiddenRelError || !ref.hiddenRelError) return null;
  const pick = (p: PathAgreement) => ({
    logitsRelErrorMean: p.logitsRelError.mean,
    hiddenRelErrorMax: Math.max(...p.hiddenRelError!),
    top1Agreement: p.top1Agreement,
  });
  const a = pick(eng);
  const b = pick(ref);
  return {
    engineVsFp32: a,
    bf16VsFp32: b,
    engineAtLeastAsAccurate: a.logitsRelErrorMean <= b.logitsRelErrorMean && a.hiddenRelErrorMax <= b.hiddenRelErrorMax && a.top1Agreement >= b.top1Agreement,
  };
}

export interface ReferenceFiles {
  logits: string;
  hidden: string;
}

/**
 * Both engine paths against the teacher-forced references written by bench_transformers.py: bf16
 * (the criterion) and, when given, fp32, plus bf16 against fp32 (how far the bf16 reference itself is
 * from the higher-precision result).
 */
export async function checkAgreement(
  engine: Engine,
  sequences: number[][],
  prefillTokens: number,
  bf16: ReferenceFiles,
  fp32: ReferenceFiles | null,
): Promise<PathAgreement[]> {
  const vocab = engine.config.vocabSize;
  const hidden = engine.config.hiddenSize;
  const lengths = sequences.map((s) => s.length);

  engine.setDebugCapture(['h']);
  const prefillLogits = await engine.score(sequences);
  const captured = engine.takeDebugCapture().filter((c) => c.name === 'h');
  engine.setDebugCapture(null);
  const layers = captured.sort((a, b) => a.layer - b.layer).map((c) => c.data);
  const decodeLogits = await engine.score(sequences, prefillTokens);

  const out: PathAgreement[] = [];
  const refs: [ReferenceFiles, 'engine vs transformers-bf16' | 'engine vs transformers-fp32'][] = [[bf16, 'engine vs transformers-bf16']];
  if (fp32) refs.push([fp32, 'engine vs transformers-fp32']);
  for (const [files, compared] of refs) {
    const ref = readF32(files.logits);
    const refHidden = readF32(files.hidden);
    out.push(judge(compareLogits('prefill', compared, prefillLogits, ref, vocab, lengths, 0), compareHidden(layers, refHidden, lengths, hidden)));
    out.push(judge(compareLogits('decode', compared, decodeLogits, ref, vocab, lengths, prefillTokens), null));
  }
  if (fp32) {
    const a = readF32(bf16.logits);
    const b = readF32(fp32.logits);
    const ha = readF32(bf16.hidden);
    const hb = readF32(fp32.hidden);
    // The bf16 reference's hidden file has the reference layout too: turn it into per-layer rows.
    const perLayer: Float32Array[] = [];
    const nLayers = engine.config.numHiddenLayers;
    for (let l = 0; l < nLayers; l++) {
      const rows = new Float32Array(lengths.reduce((x, y) => x + y, 0) * hidden);
      let row = 0;
      let base = 0;
      for (const len of lengths) {
        rows.set(ha.subarray(base + l * len * hidden, base + (l + 1) * len * hidden), row * hidden);
        row += len;
        base += nLayers * len * hidden;
      }
      perLayer.push(rows);
    }
    out.push(judge(compareLogits('prefill', 'transformers-bf16 vs transformers-fp32', a, b, vocab, lengths, 0), compareHidden(perLayer, hb, lengths, hidden)));
  }
  return out;
}
