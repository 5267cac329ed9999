/**
 * `traces info`: what is in a trace and how skewed and how sticky its routing is, computed in DuckDB
 * over the loaded trace (the same path users take for their own queries).
 */
import { loadTrace, openAnalysisDb, queryRows } from './duckdb.js';
import type { TraceTable } from './reader.js';
import type { RunMeta } from './schema.js';

export interface LayerStats {
  layer: number;
  requests: number;
  /** Share of routed requests that go to the most popular 10% of experts (uniform: 0.1). */
  top10pctShare: number;
  /** Routing entropy over experts divided by log(numExperts) (uniform: 1). */
  normalizedEntropy: number;
  /** Requests of the most popular expert over the mean per expert. */
  maxOverMean: number;
  /** Mean |topk(t) ∩ topk(t-1)| / k over consecutive tokens of the same sequence. */
  consecutiveOverlap: number;
}

export interface TraceInfo {
  file: string;
  meta: RunMeta;
  columns: string[];
  rows: number;
  sequences: number;
  tokens: number;
  steps: number;
  /** How many MoE layers (their ids are meta.moeLayers). */
  numMoeLayers: number;
  numExperts: number;
  topK: number;
  consecutiveOverlap: number;
  perLayer: LayerStats[];
}

export async function traceInfo(t: TraceTable, columns: string[]): Promise<TraceInfo> {
  const db = await openAnalysisDb();
  try {
    await loadTrace(db, t);
    const k = t.meta.topK;
    const E = t.meta.numExperts;
    const topN = Math.max(1, Math.ceil(E / 10));
    const [totals] = await queryRows(
      db,
      `SELECT count(DISTINCT seq) AS sequences, count(DISTINCT (seq, pos)) AS tokens, count(DISTINCT step) AS steps, count(*) AS rows FROM routing`,
    );
    const popularity = await queryRows(
      db,
      `WITH counts AS (SELECT layer, expert, count(*) AS n FROM routing_long GROUP BY layer, expert),
            ranked AS (SELECT layer, n, row_number() OVER (PARTITION BY layer ORDER BY n DESC, expert) AS r FROM counts),
            tot AS (SELECT layer, sum(n) AS total FROM counts GROUP BY layer)
       SELECT ranked.layer AS layer, tot.total AS requests,
              sum(CASE WHEN r <= ${topN} THEN n ELSE 0 END) / tot.total AS top_share,
              -sum((n / tot.total) * ln(n / tot.total)) / ln(${E}) AS entropy,
              max(n) / (tot.total / ${E}) AS max_over_mean
       FROM ranked JOIN tot USING (layer) GROUP BY ranked.layer, tot.total ORDER BY ranked.layer`,
    );
    const overlap = await queryRows(
      db,
      `WITH tok AS (SELECT seq, layer, row_number() OVER (PARTITION BY seq, layer ORDER BY pos) AS idx,
                           [${Array.from({ length: k }, (_, j) => `e${j}`).join(', ')}] AS ex FROM routing)
       SELECT a.layer AS layer, avg(len(list_intersect(a.ex, b.ex)) / ${k}) AS overlap, count(*) AS pairs
       FROM tok a JOIN tok b ON a.seq = b.seq AND a.layer = b.layer AND a.idx = b.idx + 1
       GROUP BY a.layer ORDER BY a.layer`,
    );
    const overlapByLayer = new Map(overlap.map((r) => [Number(r.layer), Number(r.overlap)]));
    const pairs = overlap.reduce((a, r) => a + Number(r.pairs), 0);
    const weighted = overlap.reduce((a, r) => a + Number(r.overlap) * Number(r.pairs), 0);
    return {
      file: t.path,
      meta: t.meta,
      columns,
      rows: Number(totals.rows),
      sequences: Number(totals.sequences),
      tokens: Number(totals.tokens),
      steps: Number(totals.steps),
      numMoeLayers: t.meta.moeLayers.length,
      numExperts: E,
      topK: k,
      consecutiveOverlap: pairs > 0 ? weighted / pairs : 0,
      perLayer: popularity.map((r) => ({
        layer: Number(r.layer),
        requests: Number(r.requests),
        top10pctShare: Number(r.top_share),
        normalizedEntropy: Number(r.entropy),
        maxOverMean: Number(r.max_over_mean),
        consecutiveOverlap: overlapByLayer.get(Number(r.layer)) ?? 0,
      })),
    };
  } finally {
    db.close();
  }
}

export function formatTraceInfo(info: TraceInfo): string {
  const m = info.meta;
  const lines = [
    `trace        ${info.file}`,
    `model        ${m.modelId} (config ${m.configHash.slice(0, 24)}…)`,
    `routing      ${m.routingSource}, dataset ${m.dataset}, batch ${m.batchSize ?? '-'}, prompt ${m.promptLength ?? '-'}, device ${m.device ?? '-'}`,
    `created      ${m.createdAt} by ${m.engineVersion}${m.gitRevision ? ` @ ${m.gitRevision}` : ''}`,
    `columns      ${info.columns.join(', ')}`,
    `sequences    ${info.sequences}`,
    `tokens       ${info.tokens}`,
    `steps        ${info.steps}`,
    `MoE layers   ${info.numMoeLayers} (${m.moeLayers[0]}..${m.moeLayers.at(-1)})`,
    `experts      ${info.numExperts}, top-${info.topK}`,
    `consecutive-token top-${info.topK} overlap: ${(100 * info.consecutiveOverlap).toFixed(1)}%`,
    '',
    'layer  requests  top10%share  entropy  max/mean  overlap',
  ];
  for (const l of info.perLayer) {
    lines.push(
      `${String(l.layer).padStart(5)}  ${String(l.requests).padStart(8)}  ${(100 * l.top10pctShare).toFixed(1).padStart(10)}%  ${l.normalizedEntropy.toFixed(3).padStart(7)}  ${l.maxOverMean.toFixed(2).padStart(8)}  ${(100 * l.consecutiveOverlap).toFixed(1).padStart(6)}%`,
    );
  }
  return lines.join('\n');
}
