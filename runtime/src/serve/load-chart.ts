/**
 * The chart of a serve-bench result (serve-bench.json): output tokens/s by concurrency, the server beside
 * `bench` at the same batch sizes (end-to-end and decode-only). Rendered where the native chart renderer
 * exists (not in the GPU bundle):
 *   node dist/runtime/src/serve/load-chart.js reports/bench/serve-h200/serve-bench.json reports/bench/serve-h200/serve-bench
 */
import { readFileSync } from 'node:fs';
import type { TopLevelSpec } from 'vega-lite';
import { writeChart } from '../../../core/src/charts.js';
import { BadInputError } from '../../../core/src/errors.js';

interface Level {
  concurrency: number;
  outputTokensPerSecond: number;
  bench?: { decodeTokensPerSecond: number; endToEndTokensPerSecond: number } | null;
}

export function serveChartSpec(doc: { model?: string; levels: Level[] }, title: string): TopLevelSpec {
  const values = doc.levels.flatMap((l) => [
    { concurrency: l.concurrency, system: 'serve (streaming clients)', tokS: l.outputTokensPerSecond },
    ...(l.bench ? [
      { concurrency: l.concurrency, system: 'bench, end-to-end (prefill included)', tokS: l.bench.endToEndTokensPerSecond },
      { concurrency: l.concurrency, system: 'bench, decode only', tokS: l.bench.decodeTokensPerSecond },
    ] : []),
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'concurrency', type: 'ordinal', title: 'concurrent streams / batch size' },
      y: { field: 'tokS', type: 'quantitative', title: 'output tokens / s' },
      color: { field: 'system', type: 'nominal', title: null, legend: { orient: 'bottom', labelLimit: 300 } },
    },
    width: 360,
    height: 220,
  };
}

if (process.argv[1] && process.argv[1].endsWith('load-chart.js')) {
  const [file, out] = process.argv.slice(2);
  if (!file || !out) {
    process.stderr.write('usage: load-chart.js serve-bench.json OUT_BASENAME\n');
    process.exitCode = 2;
  } else {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { levels?: Level[]; model?: string };
    if (!Array.isArray(doc.levels)) throw new BadInputError(file, 'not a serve-bench.json (no levels)');
    writeChart(serveChartSpec(doc as { levels: Level[] }, 'serve vs bench on NVIDIA H200 (cache 16 lru, 12 GiB, ESFT summary routing)'), out)
      .then((w) => process.stdout.write(`${w.png}\n`))
      .catch((err: Error) => {
        process.stderr.write(`load-chart: ${err.message}\n`);
        process.exitCode = 1;
      });
  }
}
