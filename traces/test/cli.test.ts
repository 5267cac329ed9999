import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { esftRoot, hasEsft, pythonBin, requirePythonOrSkip, runCli, tempDir, warnIfNoEsft } from '../../core/test/helpers.js';
import { writeEsftDir } from './fixtures.js';

describe('traces CLI on hand-made data', () => {
  const d = tempDir();
  afterAll(() => d.cleanup());
  const src = join(d.path, 'task');
  const out = join(d.path, 'task.arrow');
  // 2 sequences; layer 1 then layer 2; top-2 of 8 experts.
  writeEsftDir(src, [
    [
      [[0, 1], [1, 2], [1, 2]],
      [[3, 4], [3, 5], [6, 7]],
    ],
    [[[0, 1], [0, 1]], [[3, 4], [3, 4]]],
  ]);

  it('imports and reports counts, skew and overlap computed by hand', () => {
    const imp = runCli(['traces', 'import', 'esft', src, '--out', out, '--layers', '3', '--experts', '8', '--top-k', '2', '--quiet']);
    expect(imp.stderr).toBe('');
    expect(imp.status).toBe(0);
    const r = runCli(['traces', 'info', out, '--json']);
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info).toMatchObject({ sequences: 2, tokens: 5, steps: 5, numMoeLayers: 2, numExperts: 8, topK: 2 });
    // the count and the list of MoE layers have different names (the list is the run metadata's)
    expect(info.meta.moeLayers).toEqual([1, 2]);
    expect(info).not.toHaveProperty('moeLayers');
    const l1 = info.perLayer[0];
    // Layer 1 requests: 0,1 | 1,2 | 1,2 | 0,1 | 0,1 -> expert 1 has 5 of 10; top 10% of 8 experts = 1 expert.
    expect(l1.requests).toBe(10);
    expect(l1.top10pctShare).toBeCloseTo(0.5);
    expect(l1.maxOverMean).toBeCloseTo(5 / (10 / 8));
    // Consecutive pairs at layer 1: {0,1}->{1,2}: 1/2, {1,2}->{1,2}: 1, {0,1}->{0,1}: 1 -> mean 5/6.
    expect(l1.consecutiveOverlap).toBeCloseTo(5 / 6);
    // Layer 2: {3,4}->{3,5}: 1/2, {3,5}->{6,7}: 0, {3,4}->{3,4}: 1 -> 1/2. Overall (6 pairs): (5/6*3 + 1/2*3)/6.
    expect(info.perLayer[1].consecutiveOverlap).toBeCloseTo(0.5);
    expect(info.consecutiveOverlap).toBeCloseTo((2.5 + 1.5) / 6);
  });

  it('exports Parquet that DuckDB reads back', async () => {
    const pq = join(d.path, 'task.parquet');
    const r = runCli(['traces', 'export', out, '--out', pq, '--long']);
    expect(r.status).toBe(0);
    const { openAnalysisDb, queryRows } = await import('../src/duckdb.js');
    const db = await openAnalysisDb();
    try {
      const rows = await queryRows(db, `SELECT count(*) AS n, sum(expert) AS s FROM read_parquet('${pq}')`);
      expect(Number(rows[0].n)).toBe(20);
      expect(Number(rows[0].s)).toBe(0 + 1 + 1 + 2 + 1 + 2 + 0 + 1 + 0 + 1 + 3 + 4 + 3 + 5 + 6 + 7 + 3 + 4 + 3 + 4);
    } finally {
      db.close();
    }
  });

  it('fails with one line naming the problem, and leaves no output, on bad input', () => {
    const bad = join(d.path, 'bad.arrow');
    writeFileSync(bad, 'not arrow');
    const r = runCli(['traces', 'info', bad]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toEqual([`moe-offload: ${bad}: not an Arrow IPC file (trace v1 files start with ARROW1)`]);

    const r2 = runCli(['traces', 'import', 'esft', join(d.path, 'missing'), '--out', join(d.path, 'never.arrow')]);
    expect(r2.status).not.toBe(0);
    expect(r2.stderr).toMatch(/missing: not a directory/);
    expect(readdirSync(d.path).filter((f) => f.includes('never'))).toEqual([]);
  });

  it('rejects unknown options and formats', () => {
    const r = runCli(['traces', 'info', out, '--bogus']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--bogus'/);
    const r2 = runCli(['traces', 'import', 'csv', src, '--out', join(d.path, 'x.arrow')]);
    expect(r2.status).toBe(2);
    expect(r2.stderr).toMatch(/option <format>: unknown value 'csv' \(choose from esft\)/);
    const r3 = runCli(['traces', 'import', 'esft', src, '--out', join(d.path, 'x.arrow'), '--top-k', 'six']);
    expect(r3.stderr).toMatch(/option --top-k: 'six' is not an integer/);
  });
});

describe('traces CLI on the real ESFT traces', () => {
  warnIfNoEsft('traces CLI on the real ESFT traces');
  const d = tempDir();
  const out = join(d.path, 'intent.arrow');
  beforeAll(() => {
    if (hasEsft) runCli(['traces', 'import', 'esft', join(esftRoot, 'intent'), '--out', out, '--quiet']);
  });
  afterAll(() => d.cleanup());

  it.skipIf(!hasEsft)('reports 127 sequences, 8,222 tokens, 26 MoE layers, 64 experts for intent', () => {
    const r = runCli(['traces', 'info', out, '--json']);
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info).toMatchObject({ sequences: 127, tokens: 8222, numMoeLayers: 26, numExperts: 64, topK: 6 });
    expect(info.perLayer).toHaveLength(26);
    expect(info.meta.routingSource).toBe('imported');
  });

  it.skipIf(!hasEsft)('opens in pyarrow with the documented schema', () => {
    if (!requirePythonOrSkip('pyarrow schema check', 'pyarrow')) return;
    const script = `
import json, sys, pyarrow as pa, pyarrow.ipc as ipc
t = ipc.open_file(sys.argv[1]).read_all()
s = t.schema
assert s.metadata[b'moe_offload.schema_version'] == b'1'
run = json.loads(s.metadata[b'moe_offload.run'])
want = {'step': pa.int32(), 'phase': pa.uint8(), 'layer': pa.uint16(), 'seq': pa.int32(), 'pos': pa.int32(),
        'experts': pa.list_(pa.field('item', pa.uint16(), False), 6), 'weights': pa.list_(pa.field('item', pa.float32(), False), 6)}
for name, ty in want.items():
    assert s.field(name).type == ty, (name, s.field(name).type)
print(json.dumps({'rows': t.num_rows, 'seqs': len(set(t.column('seq').to_pylist())), 'routing': run['routingSource']}))
`;
    const r = spawnSync(pythonBin, ['-c', script, out], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ rows: 8222 * 26, seqs: 127, routing: 'imported' });
  });
});

describe('validate (implemented: runtime/test/validate/ tests it)', () => {
  it('refuses to run without --best, with a one-line error', () => {
    const r = runCli(['validate']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/validate: --best is required/);
  });
});
