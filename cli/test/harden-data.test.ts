/**
 * Issue 15, the data side: one test per item for simulate, traces, train-predictor and the ESFT import.
 * Refusals run the CLI entry point in-process (fast); what depends on a real process (progress on a
 * pipe, signals, the sweep's folder swap) runs the built CLI.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { run } from '../main.js';
import { repoRoot, runCli, tempDir } from '../../core/test/helpers.js';
import { forEachLine } from '../../traces/src/line-reader.js';
import { TraceWriter } from '../../traces/src/writer.js';
import { tinyMeta, writeEsftDir } from '../../traces/test/fixtures.js';
import { structuredSequences, writeTinyTrace } from '../../predictor/test/fixtures.js';

const d = tempDir('harden-data-');
afterAll(() => d.cleanup());
const sample = join(repoRoot, 'traces', 'samples', 'synthetic-zipf-sticky.arrow');

/** In-process CLI run: exit code and stderr. */
async function cliIn(args: string[]): Promise<{ status: number; stderr: string; stdout: string }> {
  let stderr = '';
  let stdout = '';
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => ((stderr += String(c)), true));
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => ((stdout += String(c)), true));
  try {
    const status = await run(['node', 'moe-offload', ...args]);
    return { status, stderr, stdout };
  } finally {
    e.mockRestore();
    o.mockRestore();
  }
}

async function refused(args: string[], message: RegExp): Promise<void> {
  const r = await cliIn(args);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  expect(r.status).not.toBe(0);
}

function tiny8(name: string): string {
  const p = join(d.path, name);
  const w = TraceWriter.create(p, tinyMeta());
  for (let s = 0; s < 4; s++) w.append({ step: [s, s], phase: [1, 1], layer: [1, 2], seq: [0, 0], pos: [s, s], experts: [s, s + 1, s + 2, s + 3], weights: [0.6, 0.4, 0.6, 0.4] });
  w.close();
  return p;
}

describe('simulate (items 1, 2, 6, 8, 9, 10, 11, 14, 20)', () => {
  it('refuses a trace whose top-k repeats an expert, naming row, layer and expert (item 1; it used to crash the timing model)', async () => {
    const p = join(d.path, 'dup.arrow');
    const w = TraceWriter.create(p, tinyMeta());
    w.append({ step: [0, 0], phase: [1, 1], layer: [1, 2], seq: [0, 0], pos: [0, 0], experts: [1, 2, 5, 5], weights: [0.5, 0.5, 0.5, 0.5] });
    w.close();
    for (const cmd of [['simulate', '--trace', p, '--policy', 'lru'], ['traces', 'info', p]]) {
      await refused(cmd, /dup\.arrow: row 1 \(step 0, layer 2, sequence 0, position 0\): expert 5 appears twice/);
    }
  });

  it('refuses sweep-only options without --sweep, and single-run options with it (item 8)', async () => {
    await refused(['simulate', '--caches', '4,8'], /option --caches: only used with --sweep/);
    await refused(['simulate', '--out', join(d.path, 'x')], /option --out: only used with --sweep/);
    await refused(['simulate', '--sweep', '--cache', '8', '--out', join(d.path, 'never')], /option --cache: not used with --sweep \(a sweep takes --caches\)/);
  });

  it('refuses a batch larger than the trace has sequences (item 8)', async () => {
    await refused(['simulate', '--batch', '1000', '--policy', 'lru'], /option --batch: 1000 is more than the 24 sequences of .*synthetic-zipf-sticky\.arrow/);
    await refused(['simulate', '--sweep', '--batches', '1,30', '--out', join(d.path, 'never')], /option --batches: 30 is more than the 24 sequences/);
  });

  it('warns, naming both, when the cost profile is another geometry or the cache holds every expert (item 9)', async () => {
    const p = tiny8('geo.arrow');
    const r = await cliIn(['simulate', '--trace', p, '--policy', 'lru', '--cache', '16', '--quiet']);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/warning: option --cache: 16 slots hold all 8 experts of each layer of .*geo\.arrow/);
    expect(r.stderr).toMatch(/warning: the cost profile h200-measured was made for 26 MoE layers x 64 experts, top-6; .*geo\.arrow has 2 MoE layers x 8 experts, top-2/);
    const fits = await cliIn(['simulate', '--policy', 'lru', '--cache', '16', '--quiet']);
    expect(fits.stderr).toBe('');
  });

  it('--json: precision and recall are null when nothing was prefetched, time keys carry their unit (item 14)', async () => {
    const r = await cliIn(['simulate', '--policy', 'lru', '--json', '--quiet']);
    const j = JSON.parse(r.stdout);
    expect(j.prefetch.precision).toBeNull();
    expect(j.prefetch.issued).toBe(0);
    expect(j.timePerTokenMs.mean).toBeGreaterThan(0);
    expect(j.throughputTokensPerS).toBeGreaterThan(0);
    expect(j).not.toHaveProperty('timePerToken');
    const o = JSON.parse((await cliIn(['simulate', '--policy', 'lru', '--prefetch', 'oracle', '--json', '--quiet'])).stdout);
    expect(o.prefetch.precision).toBeGreaterThan(0);
  });

  it('--sweep: refuses an existing folder without --force and a file as --out; with --force swaps the whole folder in (items 2, 6, 20)', async () => {
    const out = join(d.path, 'sweep');
    mkdirSync(out);
    writeFileSync(join(out, 'stale-from-an-old-run.png'), 'old');
    await refused(['simulate', '--sweep', '--policies', 'lru', '--caches', '4', '--out', out], /option --out: the folder .*sweep already exists; pass --force to replace it/);
    const file = join(d.path, 'file.txt');
    writeFileSync(file, 'x');
    await refused(['simulate', '--sweep', '--policies', 'lru', '--caches', '4', '--out', file], /option --out: .*file\.txt exists and is not a folder/);
    await refused(['simulate', '--sweep', '--trace', sample, '--policies', 'lru', '--caches', '4', '--out', sample, '--force'], /option --out: .* exists and is not a folder|is one of the command's inputs/);
    // Through a real process: the non-TTY progress lines name their unit (item 11).
    const r = runCli(['simulate', '--sweep', '--policies', 'lru,lfu', '--caches', '4', '--out', out, '--force']);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/simulating: 0\/2 configurations \(0%\)/);
    const files = readdirSync(out).sort();
    expect(files).toContain('results.json');
    expect(files).not.toContain('stale-from-an-old-run.png');
    expect(readdirSync(d.path).filter((f) => f.includes('.partial-') || f.includes('.old-'))).toEqual([]);
  });

  it('charts: a one-size cache axis is ordinal, miss modes get distinct legend symbols, the breakdown shows every configuration (item 13)', () => {
    const out = join(d.path, 'charts');
    const r = runCli(['simulate', '--sweep', '--policies', 'lru', '--caches', '16', '--batches', '1,4', '--misses', 'fetch,hybrid', '--out', out, '--quiet']);
    expect(r.status).toBe(0);
    const spec = (name: string) => JSON.parse(readFileSync(join(out, `${name}.vl.json`), 'utf8'));
    const hit = spec('hit-rate-vs-cache');
    expect(hit.encoding.x.type).toBe('ordinal'); // a quantitative axis labelled its one tick 16.000000
    expect(hit.encoding.shape.field).toBe('miss'); // strokeDash alone drew two identical legend dots
    for (const line of hit.title.subtitle) expect(line.length).toBeLessThanOrEqual(72); // long lines widened the canvas
    const breakdown = spec('time-breakdown');
    const configs = new Set(breakdown.data.values.map((v: { config: string }) => v.config));
    expect([...configs].sort()).toEqual(['batch 1, prefetch none, miss fetch', 'batch 1, prefetch none, miss hybrid', 'batch 4, prefetch none, miss fetch', 'batch 4, prefetch none, miss hybrid']);
    expect(breakdown.encoding.color.legend.titleLimit).toBe(0);
    expect(breakdown.encoding.color.title.length).toBeLessThan(30); // the long explanation moved into the labels
  });
});

describe('traces (items 2, 14, 17, 19, 20)', () => {
  const esft = join(d.path, 'esft');
  writeEsftDir(esft, [[[[0, 1], [1, 2]], [[3, 4], [4, 5]]], [[[2, 3]], [[6, 7]]]]);
  const geo = ['--layers', '3', '--experts', '8', '--top-k', '2', '--quiet'];

  it('import and export check --out before the work (item 2) and never write onto an input (item 19)', async () => {
    await refused(['traces', 'import', 'esft', esft, '--out', d.path, ...geo], /option --out: .* is a folder; give a file name/);
    await refused(['traces', 'import', 'esft', esft, '--out', join(d.path, 'missing', 'x.arrow'), ...geo], /option --out: the folder .*missing does not exist/);
    await refused(['traces', 'import', 'esft', esft, '--out', join(esft, 'expert_weights_1.txt'), '--force', ...geo], /is one of the command's inputs/);
    const t = tiny8('exp.arrow');
    await refused(['traces', 'export', t, '--out', d.path], /option --out: .* is a folder/);
    await refused(['traces', 'export', t, '--out', join(d.path, 'nope', 'x.parquet')], /the folder .*nope does not exist/);
    await refused(['traces', 'export', t, '--out', t, '--force'], /is one of the command's inputs/);
    const pq = join(d.path, 'exp.parquet');
    writeFileSync(pq, 'old');
    await refused(['traces', 'export', t, '--out', pq], /already exists; pass --force/);
  });

  it('Parquet export keeps the run metadata in the key-value metadata (item 14)', async () => {
    const t = tiny8('meta.arrow');
    const pq = join(d.path, 'meta.parquet');
    expect((await cliIn(['traces', 'export', t, '--out', pq])).status).toBe(0);
    const { openAnalysisDb, queryRows } = await import('../../traces/src/duckdb.js');
    const db = await openAnalysisDb();
    try {
      const rows = await queryRows(db, `SELECT decode(key) AS k, decode(value) AS v FROM parquet_kv_metadata('${pq}')`);
      const run = rows.find((r) => r.k === 'moe_offload.run');
      expect(JSON.parse(String(run!.v))).toEqual(tinyMeta());
    } finally {
      db.close();
    }
  });

  it('ESFT import refuses two files for one layer and FIFOs (items 17, 19)', async () => {
    const two = join(d.path, 'esft-two');
    writeEsftDir(two, [[[[0, 1]], [[3, 4]]]]);
    writeFileSync(join(two, 'expert_weights_01.txt'), readFileSync(join(two, 'expert_weights_1.txt')));
    await refused(['traces', 'import', 'esft', two, '--out', join(d.path, 'two.arrow'), ...geo], /expert_weights_01\.txt and expert_weights_1\.txt are both layer 1/);
    const fifo = join(d.path, 'esft-fifo');
    writeEsftDir(fifo, [[[[0, 1]], [[3, 4]]]]);
    execFileSync('rm', [join(fifo, 'expert_weights_2.txt')]);
    execFileSync('mkfifo', [join(fifo, 'expert_weights_2.txt')]);
    await refused(['traces', 'import', 'esft', fifo, '--out', join(d.path, 'fifo.arrow'), ...geo], /expert_weights_2\.txt: not a regular file/);
  });

  it('layer files are read in chunks: lines split across chunk boundaries come out whole (item 19)', () => {
    const f = join(d.path, 'lines.txt');
    const lines = Array.from({ length: 50 }, (_, i) => `${i}\t${'x'.repeat(i % 13)}`);
    writeFileSync(f, lines.join('\n') + '\n');
    const got: string[] = [];
    expect(forEachLine(f, (l) => got.push(l), 7)).toBe(50);
    expect(got).toEqual(lines);
    writeFileSync(f, 'a\nb');
    expect(() => forEachLine(f, () => {}, 3)).toThrow(/line 2: no final newline/);
  });

  it('SIGTERM during an import leaves neither the output nor a partial file (item 20)', async () => {
    // Enough rows that the write takes a while: 3000 sequences x 40 tokens x 4 MoE layers.
    const big = join(d.path, 'esft-big');
    mkdirSync(big);
    for (let l = 1; l <= 4; l++) {
      const line = [...Array.from({ length: 80 }, (_, j) => String((j + l) % 8 === (j + l + 1) % 8 ? 0 : (j % 2 === 0 ? (j / 2 + l) % 4 : 4 + ((j + l) % 4)))), '', ...Array(80).fill('0.25')].join('\t');
      writeFileSync(join(big, `expert_weights_${l}.txt`), (line + '\n').repeat(3000));
    }
    const outDir = join(d.path, 'big-out');
    mkdirSync(outDir);
    const out = join(outDir, 'big.arrow');
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'moe-offload.js'), 'traces', 'import', 'esft', big, '--out', out, '--layers', '5', '--experts', '8', '--top-k', '2', '--quiet'], { stdio: 'ignore' });
    const sawPartial = await new Promise<boolean>((resolve) => {
      const poll = setInterval(() => {
        if (readdirSync(outDir).some((f) => f.includes('.partial-'))) {
          clearInterval(poll);
          child.kill('SIGTERM');
          resolve(true);
        }
      }, 2);
      child.on('exit', () => {
        clearInterval(poll);
        resolve(false);
      });
    });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(child.signalCode) : child.on('exit', (_c, s) => resolve(s))));
    expect(sawPartial, 'the import finished before the test could interrupt it').toBe(true);
    expect(signal).toBe('SIGTERM');
    expect(readdirSync(outDir)).toEqual([]);
  }, 120_000);
});

describe('train-predictor (items 3, 6, 15, 18, 19)', () => {
  const g = { L: 4, k: 2, E: 8 };
  const a = join(d.path, 'pa.arrow');
  writeTinyTrace(a, g, structuredSequences(g, 6, 12, 1), 'tiny/a');

  it('--backend node without tfjs-node: one line saying what to do (item 3)', async () => {
    let installed = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      installed = false;
    }
    if (installed) return; // nothing to refuse where it is installed
    await refused(['train-predictor', '--traces', a, '--out', join(d.path, 'pn'), '--backend', 'node', '--quiet'], /option --backend node: @tensorflow\/tfjs-node is not installed.*use --backend wasm/);
  });

  it('--out an existing folder is refused without --force, before training (item 6)', async () => {
    const out = join(d.path, 'existing-pred');
    mkdirSync(out);
    await refused(['train-predictor', '--traces', a, '--out', out, '--quiet'], /option --out: the folder .*existing-pred already exists; pass --force/);
    await refused(['train-predictor', '--traces', a, '--out', a, '--force', '--quiet'], /option --out: .*pa\.arrow (exists and is not a folder|is one of the command's inputs)/);
  });

  it('simulate --predictor shows its progress with a unit (item 11)', () => {
    const pred = join(d.path, 'prog-pred');
    expect(runCli(['train-predictor', '--traces', a, '--out', pred, '--epochs', '1', '--hidden', '4', '--quiet']).status).toBe(0);
    const r = runCli(['simulate', '--trace', a, '--policy', 'lru', '--cache', '4', '--prefetch', 'predicted', '--predictor', pred]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/predicting experts: 0\/6 sequences \(0%\)/);
    expect(r.stderr).toMatch(/predicting experts: done/);
  });

  it('a NaN training loss fails the run and exports nothing (item 18)', async () => {
    // Weights of 3e38 are finite (the reader accepts them) but overflow the first layer to Inf, then NaN.
    const huge = join(d.path, 'huge.arrow');
    const seqs = structuredSequences(g, 6, 12, 2);
    for (const s of seqs) s.weights.fill(3e38);
    writeTinyTrace(huge, g, seqs, 'tiny/huge');
    const out = join(d.path, 'nan-pred');
    const r = await cliIn(['train-predictor', '--traces', huge, '--out', out, '--epochs', '2', '--hidden', '4', '--quiet']);
    expect(r.stderr).toMatch(/training diverged in epoch 1: .*nothing was written/);
    expect(r.status).not.toBe(0);
    expect(existsSync(out)).toBe(false);
  });
});
