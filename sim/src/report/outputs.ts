/**
 * Sweep outputs: results.json, results.parquet (DuckDB) and three Vega-Lite charts (spec, SVG, PNG):
 * hit rate vs cache size per policy, predicted time per token vs cache size, time breakdown.
 * The whole folder is built beside the target and swapped in at the end (core/src/atomic-dir.ts), so an
 * interrupted sweep leaves the previous results as they were, never a mix of old and new files.
 */
import { join } from 'node:path';
import { discardDir, makePartialDir, publishDir } from '../../../core/src/atomic-dir.js';
import { withInterruptCleanup } from '../../../core/src/interrupt.js';
import type { TopLevelSpec } from 'vega-lite';
import { writeChart } from '../../../core/src/charts.js';
import { discard, partialPathFor, publish, writeFileAtomic } from '../../../core/src/atomic-file.js';
import { openAnalysisDb } from '../../../traces/src/duckdb.js';
import type { SimResult } from '../simulation.js';
import { ROW_COLUMNS, toRow, type ResultRow } from './rows.js';

export interface SweepOutputMeta {
  tracePath: string;
  traceName: string;
  generatedBy: string;
}

export async function writeSweepOutputs(target: string, results: SimResult[], meta: SweepOutputMeta): Promise<string[]> {
  // The handlers go in before the partial folder exists: a signal in between would leave it behind.
  let dir: string | undefined;
  return withInterruptCleanup(
    () => dir !== undefined && discardDir(dir),
    async () => {
      const partial = (dir = makePartialDir(target));
      try {
        const files = await writeInto(partial, results, meta);
        publishDir(partial, target);
        return files.map((f) => join(target, f.slice(partial.length + 1)));
      } catch (err) {
        discardDir(partial);
        throw err;
      }
    },
  );
}

async function writeInto(dir: string, results: SimResult[], meta: SweepOutputMeta): Promise<string[]> {
  const rows = results.map((r) => toRow(meta.traceName, r));
  const files: string[] = [];
  const json = join(dir, 'results.json');
  writeFileAtomic(
    json,
    JSON.stringify(
      {
        trace: meta.tracePath,
        routing: rows[0]?.routing,
        calibration: results[0]?.calibrationLabel,
        warmup: results.find((r) => r.warmupLabel)?.warmupLabel ?? null,
        generatedBy: meta.generatedBy,
        rows,
      },
      null,
      1,
    ) + '\n',
  );
  files.push(json);
  files.push(await writeParquet(join(dir, 'results.parquet'), rows));
  for (const [name, spec] of chartSpecs(rows, meta.traceName)) {
    const p = await writeChart(spec, join(dir, name));
    files.push(p.svg, p.png);
  }
  return files;
}

async function writeParquet(path: string, rows: ResultRow[]): Promise<string> {
  const db = await openAnalysisDb();
  const tmp = partialPathFor(path);
  try {
    await db.conn.run(`CREATE TABLE results (${ROW_COLUMNS.map(([c, t]) => `${c} ${t}`).join(', ')})`);
    const app = await db.conn.createAppender('results');
    for (const row of rows) {
      for (const [c, t] of ROW_COLUMNS) {
        const v = row[c];
        if (v === null) app.appendNull();
        else if (t === 'VARCHAR') app.appendVarchar(String(v));
        else if (t === 'INTEGER') app.appendInteger(Number(v));
        else app.appendDouble(Number(v));
      }
      app.endRow();
    }
    app.closeSync();
    await db.conn.run(`COPY results TO '${tmp.replaceAll("'", "''")}' (FORMAT parquet)`);
    publish(tmp, path);
    return path;
  } catch (err) {
    discard(tmp);
    throw err;
  } finally {
    db.close();
  }
}

/** Splits a subtitle into lines of at most `width` characters, so a long trace description never widens the canvas. */
function wrap(text: string, width = 72): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

const BREAKDOWN_PARTS = [
  ['gpu_non_expert_ms', 'GPU other: attention, router, shared experts, dense layer, head'],
  ['gpu_expert_ms', 'GPU experts'],
  ['gpu_idle_ms', 'GPU idle: waiting for copies or the CPU'],
] as const;

/**
 * Facets only over dimensions that vary, so a one-batch sweep gets plain charts. A cache axis with a
 * single size is ordinal (a quantitative one labels its lone tick 16.000000), integer-labelled otherwise.
 */
function chartSpecs(rows: ResultRow[], traceName: string): Array<[string, TopLevelSpec]> {
  const varies = (k: keyof ResultRow) => new Set(rows.map((r) => r[k])).size > 1;
  const facetRow = varies('batch') ? { row: { field: 'batch', type: 'ordinal' as const, title: 'batch' } } : {};
  const facetCol = varies('prefetch') ? { column: { field: 'prefetch', type: 'nominal' as const, title: 'prefetch' } } : {};
  // Points and dashes both tell the miss modes apart, so their legend entries differ (dash alone drew two identical dots).
  const missEncoding = varies('miss')
    ? { strokeDash: { field: 'miss', type: 'nominal' as const, title: 'miss' }, shape: { field: 'miss', type: 'nominal' as const, title: 'miss' } }
    : {};
  const data = { values: rows as unknown as Record<string, unknown>[] };
  // Subtitle lines: the trace and its routing, then the calibration profile (every chart names it).
  const subtitle = [...wrap(`${traceName}: ${rows[0]?.routing ?? ''}`), ...wrap(`calibration ${rows[0]?.calibration ?? ''}`)];
  const cacheX = varies('cache')
    ? { field: 'cache', type: 'quantitative' as const, title: 'cache size (experts per layer)', axis: { format: 'd', tickMinStep: 1 } }
    : { field: 'cache', type: 'ordinal' as const, title: 'cache size (experts per layer)', axis: { labelAngle: 0 } };
  const line = (y: keyof ResultRow, yTitle: string, title: string, format?: string): TopLevelSpec =>
    ({
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: title, subtitle },
      data,
      mark: { type: 'line', point: true },
      encoding: {
        x: cacheX,
        y: { field: y, type: 'quantitative', title: yTitle, ...(format ? { axis: { format } } : {}) },
        color: { field: 'policy', type: 'nominal', title: 'policy' },
        ...missEncoding,
        ...facetRow,
        ...facetCol,
      },
      width: 360,
      height: 240,
    }) as TopLevelSpec;
  // Every configuration the sweep ran gets its row of bars (it used to show only the first batch, prefetcher and miss mode).
  const configOf = (r: ResultRow) => `batch ${r.batch}, prefetch ${r.prefetch}, miss ${r.miss}`;
  const several = new Set(rows.map(configOf)).size > 1;
  const breakdownValues = rows.flatMap((r) =>
    BREAKDOWN_PARTS.map(([key, part], order) => ({ policy: r.policy, cache: r.cache, config: configOf(r), part, order, ms: r[key] })),
  );
  const breakdown = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'Predicted time per step, by where it goes',
      subtitle: several ? subtitle : [configOf(rows[0]), ...subtitle],
    },
    data: { values: breakdownValues },
    mark: 'bar',
    encoding: {
      column: { field: 'policy', type: 'nominal', title: 'policy' },
      ...(several ? { row: { field: 'config', type: 'nominal', title: null, header: { labelOrient: 'top', labelAnchor: 'start', labelAngle: 0, labelAlign: 'left', labelLimit: 0, labelFontWeight: 'bold' } } } : {}),
      x: { field: 'cache', type: 'ordinal', title: 'cache size', axis: { labelAngle: 0 } },
      y: { field: 'ms', type: 'quantitative', title: 'ms per step', stack: 'zero' },
      order: { field: 'order', type: 'quantitative' },
      color: {
        field: 'part',
        type: 'nominal',
        title: 'GPU time per step',
        sort: BREAKDOWN_PARTS.map(([, part]) => part),
        legend: { orient: 'bottom', direction: 'vertical', labelLimit: 0, titleLimit: 0 },
      },
    },
    // wide enough for the row label above each cell, so the labels do not push the columns apart
    width: several ? 250 : 140,
    height: 200,
  } as TopLevelSpec;
  return [
    ['hit-rate-vs-cache', line('hit_rate', 'hit rate', 'Hit rate vs cache size per policy', '.0%')],
    ['time-per-token-vs-cache', line('tpt_mean_ms', 'predicted ms per output token (mean)', 'Predicted time per output token vs cache size')],
    ['time-breakdown', breakdown],
  ];
}
