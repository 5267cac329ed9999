/** `traces export`: a trace as Parquet or CSV through DuckDB, published atomically. */
import { discard, partialPathFor, publish } from '../../core/src/atomic-file.js';
import { loadTrace, openAnalysisDb } from './duckdb.js';
import type { TraceTable } from './reader.js';
import { META_RUN_KEY, META_VERSION_KEY, TRACE_SCHEMA_VERSION } from './schema.js';

export async function exportTrace(t: TraceTable, out: string, format: 'parquet' | 'csv', long: boolean): Promise<void> {
  const db = await openAnalysisDb();
  const tmp = partialPathFor(out);
  try {
    await loadTrace(db, t);
    const relation = long ? 'routing_long' : 'routing';
    // Parquet keeps the trace's run metadata in its key-value metadata, under the same keys as the Arrow
    // schema (SCHEMA.md); CSV has nowhere to put it.
    const sql = (v: string) => `'${v.replaceAll("'", "''")}'`;
    const kv = `KV_METADATA {${sql(META_VERSION_KEY)}: ${sql(TRACE_SCHEMA_VERSION)}, ${sql(META_RUN_KEY)}: ${sql(JSON.stringify(t.meta))}}`;
    const opts = format === 'parquet' ? `(FORMAT parquet, ${kv})` : '(FORMAT csv, HEADER true)';
    await db.conn.run(`COPY (SELECT * FROM ${relation} ORDER BY step, layer, seq, pos${long ? ', rank' : ''}) TO '${tmp.replaceAll("'", "''")}' ${opts}`);
    publish(tmp, out);
  } catch (err) {
    discard(tmp);
    throw err;
  } finally {
    db.close();
  }
}
