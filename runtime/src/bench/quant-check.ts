/**
 * bench --check-quant int8,int4 (issue 13): fidelity of quantized routed experts against the bf16 engine on
 * the same prompts. Greedy generation of seeded prompts through the all-resident bf16 engine (the
 * reference) and through the offloaded engine with each quantized dtype (Engine.score, teacher forcing, is
 * not available while an offloading session is attached), with the logits of every step recorded: step 0's
 * come from the prefill forward (path 'prefill'), the later ones from decode steps (path 'decode'). A step
 * is compared while the two generations' tokens so far are equal (after a divergence the inputs differ),
 * by agreement.ts's compareLogits: per position ||a - b|| / ||b|| of the logits, top-1 agreement overall
 * and by the bf16 top-1/top-2 gap.
 *
 * Thresholds, stated before the run (QUANT_THRESHOLDS): where the bf16 gap is >= 0.1 the top-1 must agree
 * at >= 99% (int8) / >= 95% (int4), and the median logits relative error stay <= 0.05 (int8) / <= 0.15
 * (int4). int8 per channel keeps about 2 significant digits per weight, int4 in groups of 64 about one, so
 * int4's bar is lower; these are engineering bars for a synthetic checkpoint, not a task-quality claim
 * (README "Quantized experts": random weights cannot say what a format costs on a trained model).
 *
 * With the addon's `quantFidelity` (native/addon/quant_binding.cpp) it also reports the per-expert output
 * relative error over every expert of the checkpoint (random activations): min/p50/p90/p99/max. That part
 * is reported, not judged, and is skipped with a message on a build without the function; it runs on the
 * CPU (expert-fidelity.ts), so on --device cpu it runs alone (checkExpertsOnly) and the logits comparison,
 * which needs the CUDA offload path, is marked as not run (pass null: not judged, not failed).
 */
import { Engine } from '../engine/index.js';
import { openCheckpoint } from '../model/checkpoint.js';
import type { ExpertFormat } from '../offload/gpu-budget.js';
import { expertLoadOptions } from '../engine/cli-options.js';
import { compareLogits, MARGIN_BINS, type PathAgreement } from './agreement.js';
import { seededIds } from './grid.js';
import { expertErrorTable, hostName, measureExpertErrors, type ExpertErrors } from './expert-fidelity.js';

export { distribution, type ExpertErrorDistribution } from './expert-fidelity.js';

export const QUANT_THRESHOLDS = {
  int8: { confidentTop1Min: 0.99, logitsRelErrorP50Max: 0.05 },
  int4: { confidentTop1Min: 0.95, logitsRelErrorP50Max: 0.15 },
} as const;
/** the bf16 top-1/top-2 gap from which a position counts as confident */
export const CONFIDENT_GAP = 0.1;

export interface QuantCheckCase {
  dtype: 'int8' | 'int4';
  group: number;
  path: 'prefill' | 'decode';
  positions: number;
  top1Agreement: number;
  /** positions whose bf16 gap is >= CONFIDENT_GAP, and the share of them whose top-1 agrees */
  confident: number;
  confidentTop1Agreement: number;
  logitsRelError: PathAgreement['logitsRelError'];
  pass: boolean;
}

export interface QuantCheck {
  thresholds: typeof QUANT_THRESHOLDS;
  sequences: number;
  length: number;
  newTokens: number;
  cache: number;
  cases: QuantCheckCase[];
  /** per dtype: the native per-expert error distribution, or why it is absent */
  expertErrors: ExpertErrors[];
  /** activation rows per expert of the per-expert part, and where it ran */
  expertRows?: number;
  expertHost?: string;
  /** why the logits comparison did not run (--device cpu), else absent */
  logitsNote?: string;
  /** null: nothing judged (the logits comparison did not run) */
  pass: boolean | null;
}

/** The judged figures of one path's comparison. */
export function judge(dtype: 'int8' | 'int4', group: number, a: Omit<PathAgreement, 'hiddenRelError' | 'pass'>): QuantCheckCase {
  let confident = 0;
  let agree = 0;
  a.byReferenceMargin.forEach((b, i) => {
    if (MARGIN_BINS[i] < CONFIDENT_GAP || b.positions === 0) return;
    confident += b.positions;
    agree += b.top1Agreement * b.positions;
  });
  const t = QUANT_THRESHOLDS[dtype];
  const confidentTop1Agreement = confident ? agree / confident : Number.NaN;
  const pass = confident > 0 && confidentTop1Agreement >= t.confidentTop1Min && a.logitsRelError.p50 <= t.logitsRelErrorP50Max;
  return { dtype, group, path: a.path, positions: a.positions, top1Agreement: a.top1Agreement, confident, confidentTop1Agreement, logitsRelError: a.logitsRelError, pass };
}

type Generation = { tokens: number[][]; logits: Float32Array[][] };

/**
 * The steps of one path to compare, flattened as compareLogits takes them: step 0 (the prefill forward's
 * logits) for 'prefill'; for 'decode' steps 1.. while the quantized run's tokens so far equal the reference's.
 */
export function comparedSteps(got: Generation, ref: Generation, path: 'prefill' | 'decode', vocab: number): { ours: Float32Array; theirs: Float32Array; lengths: number[] } {
  const a: Float32Array[] = [];
  const b: Float32Array[] = [];
  const lengths = ref.logits.map((steps, s) => {
    let n = 0;
    const [first, end] = path === 'prefill' ? [0, Math.min(1, steps.length)] : [1, steps.length];
    for (let k = first; k < end; k++) {
      if (k > 0 && got.tokens[s][k - 1] !== ref.tokens[s][k - 1]) break;  // step k's input is token k - 1
      a.push(got.logits[s][k]);
      b.push(steps[k]);
      n++;
    }
    return n;
  });
  const flat = (rows: Float32Array[]) => {
    const out = new Float32Array(rows.length * vocab);
    rows.forEach((r, i) => out.set(r, i * vocab));
    return out;
  };
  return { ours: flat(a), theirs: flat(b), lengths };
}

export async function checkQuantized(
  model: string,
  formats: ExpertFormat[],
  o: { sequences: number; length: number; newTokens: number; cache: number; seed: number; rows?: number },
  log: (line: string) => void,
): Promise<QuantCheck> {
  const rows = o.rows ?? 16;
  const ckpt = openCheckpoint(model);
  const cfg = ckpt.config;
  const avoid = new Set([cfg.bosTokenId, cfg.eosTokenId]);
  const seqs = Array.from({ length: o.sequences }, (_, s) => [cfg.bosTokenId, ...seededIds(o.seed * 389 + 7 + s, o.length - 1, cfg.vocabSize, avoid)]);
  const generate = async (eng: Engine) => {
    const r = await eng.generateAll({ prompts: seqs, maxNewTokens: o.newTokens, stopOnEos: false, recordLogits: true });
    return { tokens: r.tokens, logits: eng.logits!.perSequence };
  };
  const ref = await Engine.load(model, { device: 'cuda' });
  let reference: Awaited<ReturnType<typeof generate>>;
  try {
    reference = await generate(ref);
  } finally {
    ref.close();
  }
  log(`quant check: bf16 reference done (${o.sequences} prompts of ${o.length} tokens, ${o.newTokens} greedy steps)`);
  const cache = Math.min(o.cache, cfg.nRoutedExperts);
  const cases: QuantCheckCase[] = [];
  const expertErrors: QuantCheck['expertErrors'] = [];
  for (const f of formats) {
    if (f.dtype === 'bf16') continue;
    const eng = await Engine.load(model, {
      device: 'cuda',
      cache: { slotsPerLayer: cache, policy: 'lru' },
      runShape: { batch: o.sequences, contextTokens: o.length + o.newTokens, prefillRows: o.sequences * o.length },
      ...expertLoadOptions(f),
    });
    try {
      const got = await generate(eng);
      for (const path of ['prefill', 'decode'] as const) {
        const { ours, theirs, lengths } = comparedSteps(got, reference, path, cfg.vocabSize);
        const c = judge(f.dtype, f.group, compareLogits(path, 'quantized experts vs bf16 engine', ours, theirs, cfg.vocabSize, lengths, 0));
        cases.push(c);
        log(`quant check: ${f.dtype} ${path}: top-1 ${(100 * c.confidentTop1Agreement).toFixed(2)}% where the bf16 gap >= ${CONFIDENT_GAP} (${c.confident} positions), ${(100 * c.top1Agreement).toFixed(2)}% overall, logits rel. error p50 ${c.logitsRelError.p50.toExponential(2)}: ${c.pass ? 'pass' : 'FAIL'}`);
      }
    } finally {
      eng.close();
    }
    expertErrors.push(...(await measureExpertErrors(model, [f], { rows, seed: o.seed, threads: 0 }, log)));
  }
  return { thresholds: QUANT_THRESHOLDS, sequences: o.sequences, length: o.length, newTokens: o.newTokens, cache, cases, expertErrors, expertRows: rows, expertHost: hostName(), pass: cases.length > 0 && cases.every((c) => c.pass) };
}

/**
 * --device cpu: the per-expert part alone (it runs on the CPU); the logits comparison needs the CUDA
 * offload path and is marked as not run rather than judged.
 */
export async function checkExpertsOnly(
  model: string,
  formats: ExpertFormat[],
  o: { rows: number; seed: number; threads: number },
  log: (line: string) => void,
): Promise<QuantCheck> {
  const logitsNote = 'logits comparison not run: it needs --device cuda (quantized experts run only on the offloaded CUDA path); per-expert part only';
  log(`quant check: ${logitsNote}`);
  const expertErrors = await measureExpertErrors(model, formats, o, log);
  return { thresholds: QUANT_THRESHOLDS, sequences: 0, length: 0, newTokens: 0, cache: 0, cases: [], expertErrors, expertRows: o.rows, expertHost: hostName(), logitsNote, pass: null };
}

/** bench.md's section. */
export function quantCheckTable(c: QuantCheck): string {
  const t = Object.entries(c.thresholds).map(([d, x]) => `${d}: top-1 >= ${100 * x.confidentTop1Min}% where the bf16 gap >= ${CONFIDENT_GAP}, logits rel. error p50 <= ${x.logitsRelErrorP50Max}`).join('; ');
  const logits = c.logitsNote !== undefined
    ? [`Quantized experts against the bf16 engine: ${c.logitsNote}.`]
    : [
        `Quantized experts against the bf16 engine (greedy, ${c.sequences} prompts of ${c.length} tokens, ${c.newTokens} steps compared while the tokens agree: step 0 = prefill path, later steps = decode path; cache ${c.cache}; thresholds ${t}): ${c.pass ? 'pass' : 'FAIL'}`,
        '',
        '| dtype | path | positions | top-1 where gap >= 0.1 | top-1 overall | logits rel. error p50 | p99 | max | pass |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
        ...c.cases.map((x) => `| ${x.dtype}${x.dtype === 'int4' ? ` g${x.group}` : ''} | ${x.path} | ${x.positions} | ${(100 * x.confidentTop1Agreement).toFixed(2)}% of ${x.confident} | ${(100 * x.top1Agreement).toFixed(2)}% | ${x.logitsRelError.p50.toExponential(2)} | ${x.logitsRelError.p99.toExponential(2)} | ${x.logitsRelError.max.toExponential(2)} | ${x.pass ? 'yes' : 'NO'} |`),
      ];
  const where = [c.expertRows !== undefined ? `${c.expertRows} seeded random rows rmsnorm(N(0,1)) * post_attention_layernorm per layer` : 'random activations', c.expertHost ? `CPU kernels on ${c.expertHost}` : ''].filter(Boolean).join('; ');
  return [...logits, '', `Per-expert output relative error ||y_q - y_bf16|| / ||y_bf16|| (every routed expert of the checkpoint; ${where}; reported, not judged):`, '', expertErrorTable(c.expertErrors)].join('\n');
}
