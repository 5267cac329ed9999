/**
 * How the int4 quantizer chooses a group's scale and zero (native quantize.h Int4Fit): the table and chart of
 * `int4_fit_bench` results (native/bench/int4_fit_bench.cpp: round-to-nearest over [min, max] against the
 * window search, side by side in one run per group size). Writes table.md and int4-fit.{vl.json,svg,png}.
 *
 *   node dist/runtime/src/bench/int4-fit-report.js --results g64.json,g32.json,g128.json --out DIR
 *
 * Nothing is measured here: every figure is read from the result files.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeChart } from '../../../core/src/charts.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { requiredScriptArg } from '../../../core/src/options.js';
import { percentile } from './stats.js';

export interface Int4FitResult {
  bench: string;
  weights: string;
  activations: string;
  hidden: number;
  dFf: number;
  group: number;
  experts: number;
  rows: number;
  fits: Array<{ fit: string; weightError: number; msPerExpert: number; outputErrors: number[] }>;
}

function readResult(path: string): Int4FitResult {
  let doc: Int4FitResult;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as Int4FitResult;
  } catch (e) {
    throw new UserError(`option --results: cannot read ${path}: ${(e as Error).message}`);
  }
  if (doc.bench !== 'int4_fit_bench' || !Array.isArray(doc.fits) || doc.fits.some((f) => f.outputErrors.length === 0)) {
    throw new UserError(`option --results: ${path} is not an int4_fit_bench result`);
  }
  return doc;
}

/** Bits per weight of the int4 format: 4, plus an fp16 scale and an fp16 zero per group. */
export function int4BitsPerWeight(group: number): number {
  return 4 + 32 / group;
}

/** One row per (group, quantizer), groups in the order given. */
export function int4FitTable(docs: Int4FitResult[]): string {
  const pct = (v: number, d = 2) => `${(100 * v).toFixed(d)}%`;
  const rows = docs.flatMap((doc) =>
    doc.fits.map(
      (f) =>
        `| ${doc.group} | ${int4BitsPerWeight(doc.group)} | ${f.fit} | ${pct(f.weightError, 3)} | ${pct(percentile(f.outputErrors, 50))} | ${pct(percentile(f.outputErrors, 90))} | ${pct(Math.max(...f.outputErrors))} | ${f.msPerExpert.toFixed(0)} |`,
    ),
  );
  return [
    '| group | bits per weight | quantizer | weight error | output error p50 | p90 | max | ms to quantize one expert (1 thread) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

export async function writeInt4FitReport(o: { results: string[]; out: string }): Promise<string[]> {
  if (o.results.length === 0) throw new UserError('option --results: no result file given');
  const docs = o.results.map(readResult);
  mkdirSync(o.out, { recursive: true });
  const d = docs[0];
  const md = [
    `int4_fit_bench: ${d.experts} experts of [${d.hidden}, ${d.dFf}] per group size; weights ${d.weights}; activations ${d.activations}, ${d.rows} rows.`,
    'Weight error ||W_q - W|| / ||W||; output error ||y_q - y_bf16|| / ||y_bf16|| per expert (the measure of `bench --check-quant`).',
    '',
    int4FitTable(docs),
    '',
  ];
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'int4 expert output error: round-to-nearest vs window search',
    data: {
      values: docs.flatMap((doc) => doc.fits.map((f) => ({ group: `g${doc.group} (${int4BitsPerWeight(doc.group)} bits)`, quantizer: f.fit, p50: 100 * percentile(f.outputErrors, 50) }))),
    },
    width: 360,
    height: 240,
    mark: 'bar',
    encoding: {
      x: { field: 'group', type: 'nominal', sort: null, axis: { labelAngle: 0 }, title: 'group size (bits per weight)' },
      xOffset: { field: 'quantizer' },
      y: { field: 'p50', type: 'quantitative', title: 'median expert output error (%)' },
      color: { field: 'quantizer', type: 'nominal' },
    },
  };
  const w = await writeChart(spec, join(o.out, 'int4-fit'));
  writeFileAtomic(join(o.out, 'table.md'), md.join('\n'));
  return [w.spec, w.svg, w.png, join(o.out, 'table.md')];
}

if (process.argv[1] && process.argv[1].endsWith('int4-fit-report.js')) {
  writeInt4FitReport({ results: requiredScriptArg('--results').split(','), out: requiredScriptArg('--out') })
    .then((files) => process.stdout.write(files.join('\n') + '\n'))
    .catch((err: Error) => {
      process.stderr.write(`int4-fit-report: ${err.message}\n`);
      process.exitCode = 1;
    });
}
