/**
 * bench --check-quant int8,int4 (issue 13): fidelity of quantized routed experts against the bf16 engine on
 * the same prompts, teacher-forced: seeded prompts and the all-resident bf16 engine's greedy continuation
 * of them are run through the bf16 engine (the reference) and through the engine with each quantized dtype
 * (on cuda offloaded behind a cache, with the offloading session attached: OffloadSession::score; on cpu the
 * CPU engine's own quantized copy) by Engine.score, so every
 * position is compared on the same inputs, however early the quantized engine's own greedy tokens would
 * diverge: the prompt's positions come from one prefill forward (path 'prefill'), the continuation's from
 * one decode step per position (path 'decode'). Compared by agreement.ts's compareLogits: per position
 * ||a - b|| / ||b|| of the logits, top-1 agreement overall and by the bf16 top-1/top-2 gap.
 *
 * Thresholds, stated before the run (QUANT_THRESHOLDS): where the bf16 gap is >= 0.1 the top-1 must agree
 * at >= 99% (int8) / >= 95% (int4), and the median logits relative error stay <= 0.05 (int8) / <= 0.15
 * (int4). int8 per channel keeps about 2 significant digits per weight, int4 in groups of 64 about one, so
 * int4's bar is lower; these are engineering bars for a synthetic checkpoint, not a task-quality claim
 * (README "Quantized experts": random weights cannot say what a format costs on a trained model).
 *
 * With the addon's `quantFidelity` (native/addon/quant_binding.cpp) it also reports the per-expert output
 * relative error over every expert of the checkpoint: min/p50/p90/p99/max, on seeded random activations
 * and on real ones (each MoE layer's inputs in the bf16 reference's prefill of the same prompts,
 * moe-inputs.ts). That part is reported, not judged, and is skipped with a message on a build without the
 * function; it runs on the CPU (expert-fidelity.ts). Documents written before the CPU engine had quantized
 * experts may hold a logitsNote instead of cases (the logits part not run, pass null).
 */
import { Engine } from '../engine/index.js';
import { openCheckpoint } from '../model/checkpoint.js';
import type { ExpertFormat } from '../offload/gpu-budget.js';
import { expertLoadOptions } from '../engine/cli-options.js';
import { compareLogits, MARGIN_BINS, type PathAgreement } from './agreement.js';
import { seededIds } from './grid.js';
import { ACTIVATION_WORDS, expertErrorTable, hostName, measureExpertErrors, type ExpertErrors, type GivenActivations } from './expert-fidelity.js';
import { captureMoeInputs } from './moe-inputs.js';

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
  /** where the engines ran (absent in documents before the CPU engine had quantized experts: cuda) */
  device?: 'cpu' | 'cuda';
  /** documents before the CPU engine had quantized experts: why the logits comparison did not run (--device cpu), else absent */
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

/**
 * score()'s rows ([sequences x length, vocab], every sequence `length` long) of positions [from, to) of
 * each sequence, flattened as compareLogits takes them.
 */
export function positionRows(all: Float32Array, sequences: number, length: number, vocab: number, from: number, to: number): { rows: Float32Array; lengths: number[] } {
  if (all.length !== sequences * length * vocab) throw new Error(`positionRows: ${all.length} logits are not ${sequences} x ${length} x ${vocab}`);
  if (!(0 <= from && from <= to && to <= length)) throw new Error(`positionRows: positions [${from}, ${to}) outside [0, ${length})`);
  const n = to - from;
  const rows = new Float32Array(sequences * n * vocab);
  for (let s = 0; s < sequences; s++) rows.set(all.subarray((s * length + from) * vocab, (s * length + to) * vocab), s * n * vocab);
  return { rows, lengths: Array.from({ length: sequences }, () => n) };
}

export async function checkQuantized(
  model: string,
  formats: ExpertFormat[],
  o: { sequences: number; length: number; newTokens: number; cache: number; seed: number; rows?: number; device?: 'cpu' | 'cuda'; threads?: number },
  log: (line: string) => void,
): Promise<QuantCheck> {
  // cuda: the quantized experts offloaded behind a cache of o.cache slots; cpu: the CPU engine's own quantized copy
  const device = o.device ?? 'cuda';
  const rows = o.rows ?? 16;
  const ckpt = openCheckpoint(model);
  const cfg = ckpt.config;
  const avoid = new Set([cfg.bosTokenId, cfg.eosTokenId]);
  const seqs = Array.from({ length: o.sequences }, (_, s) => [cfg.bosTokenId, ...seededIds(o.seed * 389 + 7 + s, o.length - 1, cfg.vocabSize, avoid)]);
  // The tokens every engine is forced through: each prompt and the bf16 engine's greedy continuation.
  const ref = await Engine.load(model, { device, ...(device === 'cpu' ? { threads: o.threads ?? 0 } : {}) });
  let forced: number[][];
  let reference: Float32Array;
  let runRows: GivenActivations;
  try {
    const r = await ref.generateAll({ prompts: seqs, maxNewTokens: o.newTokens, stopOnEos: false });
    forced = seqs.map((p, i) => [...p, ...r.tokens[i]]);
    reference = await ref.score(forced, o.length);
    runRows = await captureMoeInputs(ref, seqs, rows);
  } finally {
    ref.close();
  }
  const total = o.length + o.newTokens;
  log(`quant check: bf16 reference done (${o.sequences} prompts of ${o.length} tokens + ${o.newTokens} greedy tokens, teacher-forced)`);
  const cache = Math.min(o.cache, cfg.nRoutedExperts);
  const cases: QuantCheckCase[] = [];
  const expertErrors: QuantCheck['expertErrors'] = [];
  for (const f of formats) {
    if (f.dtype === 'bf16') continue;
    const eng = await Engine.load(
      model,
      device === 'cuda'
        ? { device, cache: { slotsPerLayer: cache, policy: 'lru' }, runShape: { batch: o.sequences, contextTokens: o.length + o.newTokens, prefillRows: o.sequences * o.length }, ...expertLoadOptions(f) }
        : { device, threads: o.threads ?? 0, ...expertLoadOptions(f) },
    );
    try {
      const got = await eng.score(forced, o.length);
      for (const path of ['prefill', 'decode'] as const) {
        const [from, to] = path === 'prefill' ? [0, o.length] : [o.length, total];
        const ours = positionRows(got, o.sequences, total, cfg.vocabSize, from, to);
        const theirs = positionRows(reference, o.sequences, total, cfg.vocabSize, from, to);
        const c = judge(f.dtype, f.group, compareLogits(path, 'quantized experts vs bf16 engine', ours.rows, theirs.rows, cfg.vocabSize, ours.lengths, 0));
        cases.push(c);
        log(`quant check: ${f.dtype} ${path}: top-1 ${(100 * c.confidentTop1Agreement).toFixed(2)}% where the bf16 gap >= ${CONFIDENT_GAP} (${c.confident} positions), ${(100 * c.top1Agreement).toFixed(2)}% overall, logits rel. error p50 ${c.logitsRelError.p50.toExponential(2)}: ${c.pass ? 'pass' : 'FAIL'}`);
      }
    } finally {
      eng.close();
    }
    expertErrors.push(...(await measureExpertErrors(model, [f], { rows, seed: o.seed, threads: 0 }, log)));
    expertErrors.push(...(await measureExpertErrors(model, [f], { rows, seed: o.seed, threads: 0 }, log, runRows)));
  }
  return { thresholds: QUANT_THRESHOLDS, device, sequences: o.sequences, length: o.length, newTokens: o.newTokens, cache: device === 'cuda' ? cache : 0, cases, expertErrors, expertRows: rows, expertHost: hostName(), pass: cases.length > 0 && cases.every((c) => c.pass) };
}

/** bench.md's section. */
export function quantCheckTable(c: QuantCheck): string {
  const t = Object.entries(c.thresholds).map(([d, x]) => `${d}: top-1 >= ${100 * x.confidentTop1Min}% where the bf16 gap >= ${CONFIDENT_GAP}, logits rel. error p50 <= ${x.logitsRelErrorP50Max}`).join('; ');
  const logits = c.logitsNote !== undefined
    ? [`Quantized experts against the bf16 engine: ${c.logitsNote}.`]
    : [
        `Quantized experts against the bf16 engine (teacher-forced: ${c.sequences} prompts of ${c.length} tokens and the bf16 engine's ${c.newTokens} greedy tokens through both engines; the prompt's positions = prefill path (one forward), the next ${c.newTokens} = decode path (one step per position); ${c.device === 'cpu' ? 'CPU engine' : `offloaded on the GPU, cache ${c.cache}`}; thresholds ${t}): ${c.pass ? 'pass' : 'FAIL'}`,
        '',
        '| dtype | path | positions | top-1 where gap >= 0.1 | top-1 overall | logits rel. error p50 | p99 | max | pass |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
        ...c.cases.map((x) => `| ${x.dtype}${x.dtype === 'int4' ? ` g${x.group}` : ''} | ${x.path} | ${x.positions} | ${(100 * x.confidentTop1Agreement).toFixed(2)}% of ${x.confident} | ${(100 * x.top1Agreement).toFixed(2)}% | ${x.logitsRelError.p50.toExponential(2)} | ${x.logitsRelError.p99.toExponential(2)} | ${x.logitsRelError.max.toExponential(2)} | ${x.pass ? 'yes' : 'NO'} |`),
      ];
  const sources = [...new Set(c.expertErrors.map((e) => e.activations ?? 'random'))];
  const rows = c.expertRows !== undefined ? `${c.expertRows} rows per layer, ` : '';
  const where = [`${rows}activations ${sources.map((a) => `${a}: ${ACTIVATION_WORDS[a]}`).join('; ')}`, c.expertHost ? `CPU kernels on ${c.expertHost}` : ''].filter(Boolean).join('; ');
  return [...logits, '', `Per-expert output relative error ||y_q - y_bf16|| / ||y_bf16|| (every routed expert of the checkpoint; ${where}; reported, not judged):`, '', expertErrorTable(c.expertErrors)].join('\n');
}
