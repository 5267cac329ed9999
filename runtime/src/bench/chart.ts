import type { TopLevelSpec } from 'vega-lite';
import { writeChart } from '../../../core/src/charts.js';
import type { BenchDocument } from './run-bench.js';

/** Decode ms per token and prefill ms, engine vs transformers, per grid point. */
export function benchChartSpec(doc: BenchDocument): TopLevelSpec {
  const values: { point: string; metric: string; system: string; ms: number }[] = [];
  for (const p of doc.grid) {
    const point = `b${p.batch} p${p.prompt}`;
    values.push({ point, metric: 'ms per output token', system: 'engine', ms: p.msPerToken.mean });
    values.push({ point, metric: 'prefill ms', system: 'engine', ms: p.prefillMs.mean });
    const b = doc.baseline?.grid.find((x) => x.batch === p.batch && x.prompt === p.prompt && x.newTokens === p.newTokens);
    if (b) {
      values.push({ point, metric: 'ms per output token', system: 'transformers', ms: b.msPerToken.mean });
      values.push({ point, metric: 'prefill ms', system: 'transformers', ms: b.prefillMs.mean });
    }
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `moe bench on ${doc.engine.device}: engine (${doc.engine.backend}) vs transformers`,
    data: { values },
    facet: { column: { field: 'metric', type: 'nominal', title: null } },
    spec: {
      width: 220,
      height: 200,
      mark: 'bar',
      encoding: {
        x: { field: 'point', type: 'nominal', title: 'batch / prompt' },
        xOffset: { field: 'system' },
        y: { field: 'ms', type: 'quantitative', title: 'ms (mean)' },
        color: { field: 'system', type: 'nominal' },
        tooltip: [{ field: 'ms', type: 'quantitative', format: '.2f' }],
      },
    },
    resolve: { scale: { y: 'independent' } },
  } as TopLevelSpec;
}

/** Writes bench.vl.json/.svg/.png; where the renderer is not available (the GPU bundle) says so and goes on. */
export async function writeBenchChart(doc: BenchDocument, base: string, log: (line: string) => void): Promise<void> {
  try {
    await writeChart(benchChartSpec(doc), base);
  } catch (err) {
    log(`bench: chart skipped (${(err as Error).message}); re-plot here with: moe bench --replot bench.json --out DIR`);
  }
}
