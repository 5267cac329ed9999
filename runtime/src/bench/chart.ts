import type { TopLevelSpec } from 'vega-lite';
import { writeChart } from '../../../core/src/charts.js';
import type { BenchDocument } from './run-bench.js';
import type { OffloadPointResult } from './offload-bench.js';

/** Decode ms per token and prefill ms per grid point: the engine, and transformers when the run timed it. */
export function benchChartSpec(doc: BenchDocument): TopLevelSpec {
  const withBaseline = doc.grid.some((p) => doc.baseline?.grid.some((x) => x.batch === p.batch && x.prompt === p.prompt && x.newTokens === p.newTokens));
  const values: { point: string; metric: string; system: string; ms: number }[] = [];
  // Points that differ only in new tokens would share one bar slot: name the new tokens when they vary.
  const severalNew = new Set(doc.grid.map((p) => p.newTokens)).size > 1;
  for (const p of doc.grid) {
    // Offload mode: points of one batch/prompt differ in cache and policy; without them the bars would stack.
    const o = p as Partial<OffloadPointResult>;
    // ... and in expert dtype, miss mode and prefetcher (issues 12, 13) when those vary within the grid.
    const varies = (key: 'expertDtype' | 'miss' | 'prefetch') => new Set(doc.grid.map((x) => (x as Partial<OffloadPointResult>)[key] ?? '')).size > 1;
    const extra = (['expertDtype', 'miss', 'prefetch'] as const).filter(varies).map((k) => ` ${o[k] ?? '-'}`).join('');
    const offloaded = o.cache !== undefined ? ` c${o.cache} ${o.policy}${extra}` : '';
    const point = `b${p.batch} p${p.prompt}${severalNew ? ` n${p.newTokens}` : ''}${offloaded}`;
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
    // "vs transformers" only when there is a transformers bar to compare with.
    title: `moe bench on ${doc.engine.device}: engine (${doc.engine.backend})${withBaseline ? ' vs transformers' : ''}`,
    data: { values },
    facet: { column: { field: 'metric', type: 'nominal', title: null } },
    spec: {
      width: 220,
      height: 200,
      mark: 'bar',
      encoding: {
        x: { field: 'point', type: 'nominal', title: `batch / prompt${severalNew ? ' / new tokens' : ''}${doc.offload ? ' / slots, policy, ...' : ''}`, sort: null, axis: { labelLimit: 400 } },
        xOffset: { field: 'system' },
        y: { field: 'ms', type: 'quantitative', title: 'ms (mean)' },
        // One system needs no legend.
        color: { field: 'system', type: 'nominal', ...(withBaseline ? {} : { legend: null }) },
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
