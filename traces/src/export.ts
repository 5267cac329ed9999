/** `traces export`: a trace as Parquet or CSV through DuckDB, published atomically. */
import { discard, partialPathFor, publish } from '../../core/src/atomic-file.js';
import { loadTrace, openAnalysisDb } from './duckdb.js';
import type { TraceTable } from './reader.js';

export async function exportTrace(t: TraceTable, out: string, format: 'parquet' | 'csv', long: boolean): Promise<void> {
  const db = await openAnalysisDb();
  const tmp = partialPathFor(out);
  try {
    await loadTrace(db, t);
    const relation = long ? 'routing_long' : 'routing';
    const opts = format === 'parquet' ? '(FORMAT parquet)' : '(FORMAT csv, HEADER true)';
    await db.conn.run(`COPY (SELECT * FROM ${relation} ORDER BY step, layer, seq, pos${long ? ', rank' : ''}) TO '${tmp.replaceAll("'", "''")}' ${opts}`);
    publish(tmp, out);
  } catch (err) {
    discard(tmp);
    throw err;
  } finally {
    db.close();
  }
}
