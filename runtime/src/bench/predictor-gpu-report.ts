/**
 * Issue 12's "the predictor on the GPU or the CPU, whichever is cheaper": the table and chart of a
 * `predictor_gpu_bench` result (native/bench/predictor_gpu_bench.cu: the in-line predictor's MLP timed per
 * call on the CPU one row after another, on a thread pool, and on the GPU as a full round trip, idle or
 * beside a kernel that keeps every SM busy). Writes table.md and predictor-gpu.{vl.json,svg,png}.
 *
 *   node dist/runtime/src/bench/predictor-gpu-report.js --result predictor-gpu.json --out DIR
 *
 * Nothing is measured here: every figure is read from the result file.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeChart } from '../../../core/src/charts.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { requiredScriptArg } from '../../../core/src/options.js';

export interface PredictorGpuResult {
  benchmark: string;
  device: { name: string };
  host_threads: number;
  model: { width: number; hidden: number[]; budget: number };
  check: { pass: boolean; rows: number; ids: number; max_abs_logit_diff: number };
  results: Array<{ variant: string; rows: number; median_us: number; p90_us: number }>;
}

function readResult(path: string): PredictorGpuResult {
  let doc: PredictorGpuResult;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as PredictorGpuResult;
  } catch (e) {
    throw new UserError(`option --result: cannot read ${path}: ${(e as Error).message}`);
  }
  if (doc.benchmark !== 'predictor_gpu_bench' || !Array.isArray(doc.results)) throw new UserError(`option --result: ${path} is not a predictor_gpu_bench result`);
  return doc;
}

/** The markdown table: median (p90) us per call, one row per row count, one column per variant. */
export function predictorGpuTable(doc: PredictorGpuResult): string {
  const variants = [...new Set(doc.results.map((r) => r.variant))];
  const counts = [...new Set(doc.results.map((r) => r.rows))].sort((a, b) => a - b);
  const cell = (v: string, n: number) => {
    const r = doc.results.find((x) => x.variant === v && x.rows === n);
    return r ? `${r.median_us.toFixed(1)} (${r.p90_us.toFixed(1)})` : '-';
  };
  const best = (n: number) => {
    const here = doc.results.filter((x) => x.rows === n);
    return here.length ? here.reduce((a, b) => (b.median_us < a.median_us ? b : a)).variant : '-';
  };
  return [
    `| rows | ${variants.join(' | ')} | cheapest |`,
    `| --- | ${variants.map(() => '---').join(' | ')} | --- |`,
    ...counts.map((n) => `| ${n} | ${variants.map((v) => cell(v, n)).join(' | ')} | ${best(n)} |`),
  ].join('\n');
}

export async function writePredictorGpuReport(o: { result: string; out: string }): Promise<string[]> {
  const doc = readResult(o.result);
  mkdirSync(o.out, { recursive: true });
  const md = [
    `Median (p90) us per call, ${doc.device.name}, ${doc.host_threads} host threads; the MLP ${doc.model.width} -> ${doc.model.hidden.join(' -> ')} -> experts, budget ${doc.model.budget}.`,
    `Check before timing: ${doc.check.pass ? 'pass' : 'FAIL'} (${doc.check.rows} rows, ${doc.check.ids} ids, largest logit difference GPU vs CPU ${doc.check.max_abs_logit_diff}).`,
    '',
    predictorGpuTable(doc),
    '',
  ];
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `In-line expert predictor per call: CPU or GPU (${doc.device.name})`,
    data: { values: doc.results.map((r) => ({ rows: r.rows, variant: r.variant, us: r.median_us })) },
    width: 420,
    height: 260,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'rows', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'rows predicted at once (decode: the batch)' },
      y: { field: 'us', type: 'quantitative', scale: { type: 'log' }, title: 'median us per call' },
      color: { field: 'variant', type: 'nominal' },
    },
  };
  const w = await writeChart(spec, join(o.out, 'predictor-gpu'));
  writeFileAtomic(join(o.out, 'table.md'), md.join('\n'));
  return [w.spec, w.svg, w.png, join(o.out, 'table.md')];
}

if (process.argv[1] && process.argv[1].endsWith('predictor-gpu-report.js')) {
  writePredictorGpuReport({ result: requiredScriptArg('--result'), out: requiredScriptArg('--out') })
    .then((files) => process.stdout.write(files.join('\n') + '\n'))
    .catch((err: Error) => {
      process.stderr.write(`predictor-gpu-report: ${err.message}\n`);
      process.exitCode = 1;
    });
}
