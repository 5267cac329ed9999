/**
 * The analysis path: traces (and results) into DuckDB, fully offline. DuckDB reads Arrow IPC only through
 * an extension it would have to download, so traces are loaded through the appender instead (about
 * 0.4 s per 650k rows here) and can be exported to Parquet, which DuckDB, polars and pandas read natively.
 */
import { DuckDBConnection, DuckDBDataChunk, DuckDBInstance, FLOAT, INTEGER, USMALLINT, UTINYINT, type DuckDBType } from '@duckdb/node-api';
import type { TraceTable } from './reader.js';

export interface AnalysisDb {
  instance: DuckDBInstance;
  conn: DuckDBConnection;
  close(): void;
}

export async function openAnalysisDb(): Promise<AnalysisDb> {
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  return {
    instance,
    conn,
    close() {
      conn.closeSync();
      instance.closeSync();
    },
  };
}

const CHUNK_ROWS = 2048;

/**
 * Creates `<name>` (one row per step, layer and token, experts as e0..e{k-1}, weights as w0..w{k-1}) and
 * `<name>_long` (one row per routed expert: step, layer, seq, pos, rank, expert, weight).
 */
export async function loadTrace(db: AnalysisDb, t: TraceTable, name = 'routing'): Promise<void> {
  const k = t.meta.topK;
  const cols: Array<[string, DuckDBType, (r: number) => number]> = [
    ['step', INTEGER, (r) => t.step[r]],
    ['phase', UTINYINT, (r) => t.phase[r]],
    ['layer', USMALLINT, (r) => t.layer[r]],
    ['seq', INTEGER, (r) => t.seq[r]],
    ['pos', INTEGER, (r) => t.pos[r]],
  ];
  for (let j = 0; j < k; j++) cols.push([`e${j}`, USMALLINT, (r) => t.experts[r * k + j]]);
  for (let j = 0; j < k; j++) cols.push([`w${j}`, FLOAT, (r) => t.weights[r * k + j]]);
  await db.conn.run(`CREATE OR REPLACE TABLE ${name} (${cols.map(([c, ty]) => `${c} ${ty.toString()}`).join(', ')})`);
  const appender = await db.conn.createAppender(name);
  const types = cols.map(([, ty]) => ty);
  for (let start = 0; start < t.rows; start += CHUNK_ROWS) {
    const n = Math.min(CHUNK_ROWS, t.rows - start);
    const values = cols.map(([, , get]) => {
      const a = new Array<number>(n);
      for (let i = 0; i < n; i++) a[i] = get(start + i);
      return a;
    });
    const chunk = DuckDBDataChunk.create(types, n);
    chunk.setColumns(values);
    appender.appendDataChunk(chunk);
  }
  appender.closeSync();
  const ranks = Array.from({ length: k }, (_, j) => j);
  await db.conn.run(
    `CREATE OR REPLACE VIEW ${name}_long AS SELECT step, phase, layer, seq, pos, u.rank, u.expert, u.weight FROM ${name}, ` +
      `(SELECT UNNEST([${ranks.join(', ')}]) AS rank, UNNEST([${ranks.map((j) => `e${j}`).join(', ')}]) AS expert, ` +
      `UNNEST([${ranks.map((j) => `w${j}`).join(', ')}]) AS weight) u`,
  );
}



export async function queryRows(db: AnalysisDb, sql: string): Promise<Record<string, unknown>[]> {
  const reader = await db.conn.runAndReadAll(sql);
  return reader.getRowObjectsJS() as Record<string, unknown>[];
}
