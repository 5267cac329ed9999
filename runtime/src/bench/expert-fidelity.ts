/**
 * The per-expert part of bench --check-quant (issue 13, item 4): for every routed expert of the checkpoint,
 * ||y_q - y_bf16|| / ||y_bf16|| over `rows` activation rows, through the addon's quantFidelity
 * (native/src/quant/fidelity.cpp; CPU kernels on both sides, so it runs on any machine with the addon).
 * Reported, not judged: the distribution min/p50/p90/p99/max and a CDF chart per dtype and activations.
 *
 * Activations are either seeded random rows rmsnorm(N(0, 1)) * the layer's post_attention_layernorm (the
 * shape of an expert's real input, not its content; 'random'), or each MoE layer's own inputs captured
 * from a run of the bf16 engine (moe-inputs.ts; 'run'). Every expert of a layer sees the same rows,
 * whether or not the router would have sent them to it.
 */
import { cpus } from 'node:os';
import type { TopLevelSpec } from 'vega-lite';
import { writeChart } from '../../../core/src/charts.js';
import { loadNativeAddon } from '../engine/native-binding.js';
import { toNativeConfig, toNativeTensors } from '../engine/native-config.js';
import { openCheckpoint } from '../model/checkpoint.js';
import type { ExpertFormat } from '../offload/gpu-budget.js';

export interface ExpertErrorDistribution {
  layers: number;
  experts: number;
  rows: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Where the activation rows came from: seeded random rows, or MoE inputs captured from a run. */
export type ActivationSource = 'random' | 'run';

/** Caller-given activations: each MoE layer's own rows, [layers * rows * hidden] (moe-inputs.ts). */
export interface GivenActivations {
  x: Float32Array;
  rows: number;
}

export interface ExpertErrors {
  dtype: string;
  group: number;
  /** absent in files written before real activations were measured: those used random rows */
  activations?: ActivationSource;
  distribution: ExpertErrorDistribution | null;
  /** why the distribution is absent, else null */
  note: string | null;
  /** every expert's error, layer-major (errors[li * experts + e] is expert e of model layer layerIds[li]); for the chart and re-analysis */
  errors?: number[];
  layerIds?: number[];
  seconds?: number;
}

type QuantFidelityFn = (
  o: { config: unknown; tensors: unknown; dtype: string; group: number; rows: number; seed: number; threads: number; x?: Float32Array },
  onProgress?: (done: number, total: number) => void,
) => Promise<{ errors: Float64Array; layers: number; layerIds: Int32Array; experts: number }>;

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** min/p50/p90/p99/max of the errors (nearest-rank quantiles). */
export function distribution(errors: ArrayLike<number>, layers: number, experts: number, rows: number): ExpertErrorDistribution {
  const s = Float64Array.from(errors).sort();
  return { layers, experts, rows, min: s[0], p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s[s.length - 1] };
}

/** The host the per-expert part ran on, as the report names it: /proc/cpuinfo's model name x logical CPUs. */
export function hostName(): string {
  return `${cpus()[0]?.model.trim() || 'unknown CPU'} x ${cpus().length}`;
}

/**
 * Runs quantFidelity for each quantized format (bf16 is skipped: it is the reference), logging progress
 * about every 10% (each call walks every expert's weights, about 29 GB for the lite geometry). With
 * `given`, on those rows (activations 'run'), else on `o.rows` seeded random rows.
 */
export async function measureExpertErrors(
  model: string,
  formats: ExpertFormat[],
  o: { rows: number; seed: number; threads: number },
  log: (line: string) => void,
  given?: GivenActivations,
): Promise<ExpertErrors[]> {
  const activations: ActivationSource = given ? 'run' : 'random';
  const rows = given ? given.rows : o.rows;
  const fidelity = (loadNativeAddon() as unknown as { quantFidelity?: QuantFidelityFn }).quantFidelity;
  const ckpt = openCheckpoint(model);
  const out: ExpertErrors[] = [];
  for (const f of formats) {
    if (f.dtype === 'bf16') continue;
    if (typeof fidelity !== 'function') {
      const note = 'per-expert errors not measured: this build of the addon has no quantFidelity (native/addon/quant_binding.cpp)';
      log(`quant check: ${note}`);
      out.push({ dtype: f.dtype, group: f.group, activations, distribution: null, note });
      continue;
    }
    const t0 = Date.now();
    let shown = 0;
    const r = await fidelity(
      { config: toNativeConfig(ckpt.config), tensors: toNativeTensors(ckpt), dtype: f.dtype, group: f.group, rows, seed: o.seed, threads: o.threads, ...(given ? { x: given.x } : {}) },
      (done, total) => {
        if (done < total && done < shown + total / 10) return;
        shown = done;
        const s = (Date.now() - t0) / 1000;
        log(`quant check: ${f.dtype}${f.dtype === 'int4' ? ` g${f.group}` : ''} per-expert (${activations} activations): ${done}/${total} experts, ${s.toFixed(0)} s (${((1000 * s) / done).toFixed(0)} ms per expert)`);
      },
    );
    const d = distribution(r.errors, r.layers, r.experts, rows);
    const seconds = (Date.now() - t0) / 1000;
    log(`quant check: ${f.dtype} per-expert output relative error (${activations} activations) over ${r.layers} x ${r.experts} experts: min ${d.min.toExponential(2)}, p50 ${d.p50.toExponential(2)}, p90 ${d.p90.toExponential(2)}, p99 ${d.p99.toExponential(2)}, max ${d.max.toExponential(2)} (${seconds.toFixed(0)} s)`);
    out.push({ dtype: f.dtype, group: f.group, activations, distribution: d, note: null, errors: Array.from(r.errors), layerIds: Array.from(r.layerIds), seconds });
  }
  return out;
}

const label = (e: Pick<ExpertErrors, 'dtype' | 'group'>) => (e.dtype === 'int4' ? `int4 g${e.group}` : e.dtype);

/** What each activation source is, in the table's words. */
export const ACTIVATION_WORDS: Record<ActivationSource, string> = {
  random: 'seeded random rows rmsnorm(N(0,1)) * post_attention_layernorm',
  run: "each MoE layer's inputs from the bf16 engine's prefill of the check's prompts",
};

/** The markdown table of the distributions (one row per dtype and activations; the note where one is absent). */
export function expertErrorTable(entries: ExpertErrors[]): string {
  return [
    '| dtype | activations | experts | rows | min | p50 | p90 | p99 | max |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...entries.map((e) => (e.distribution
      ? `| ${label(e)} | ${e.activations ?? 'random'} | ${e.distribution.layers} x ${e.distribution.experts} | ${e.distribution.rows} | ${[e.distribution.min, e.distribution.p50, e.distribution.p90, e.distribution.p99, e.distribution.max].map((v) => v.toExponential(2)).join(' | ')} |`
      : `| ${label(e)} | ${e.activations ?? 'random'} | - | - | ${e.note} | | | | |`)),
  ].join('\n');
}

/**
 * CDF of the per-expert errors, one line per dtype (log x: int8 and int4 differ by about an order of
 * magnitude), solid for random activations and dashed for a run's.
 */
export function expertErrorChartSpec(entries: ExpertErrors[], title: string): TopLevelSpec | null {
  const values: { dtype: string; activations: ActivationSource; error: number; fraction: number }[] = [];
  for (const e of entries) {
    if (!e.errors?.length) continue;
    const s = Float64Array.from(e.errors).sort();
    s.forEach((v, i) => values.push({ dtype: label(e), activations: e.activations ?? 'random', error: v, fraction: (i + 1) / s.length }));
  }
  if (!values.length) return null;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 520,
    height: 300,
    data: { values },
    mark: { type: 'line', interpolate: 'step-after' },
    encoding: {
      x: { field: 'error', type: 'quantitative', scale: { type: 'log' }, title: 'per-expert output relative error ||y_q - y_bf16|| / ||y_bf16||' },
      y: { field: 'fraction', type: 'quantitative', title: 'fraction of experts (CDF)' },
      color: { field: 'dtype', type: 'nominal', title: 'expert dtype' },
      strokeDash: { field: 'activations', type: 'nominal', title: 'activations' },
    },
  };
}

/** Writes `<base>.vl.json/.svg/.png` when some entry has per-expert errors; returns whether it wrote. */
export async function writeExpertErrorChart(entries: ExpertErrors[], title: string, base: string): Promise<boolean> {
  const spec = expertErrorChartSpec(entries, title);
  if (!spec) return false;
  await writeChart(spec, base);
  return true;
}
