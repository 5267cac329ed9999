/** The `simulate` command: output on the sample trace, JSON fields, sweep files, and clean errors on bad input. */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { run } from '../main.js';

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    const code = await run(['node', 'moe-offload', 'simulate', ...args]);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'sim-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('simulate on the sample trace', () => {
  it('prints a table of every policy naming the trace, its synthetic routing and the calibration profile', async () => {
    const r = await cli('--quiet');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/synthetic-zipf-sticky\.arrow/);
    expect(r.out).toMatch(/SYNTHETIC/);
    expect(r.out).toMatch(/h200-measured \(measured by calibrate on NVIDIA H200/);
    for (const p of ['lru', 'lfu', 'fifo', 'lfru', 'belady', 'static']) expect(r.out).toMatch(new RegExp(`^${p}\\s+16\\s+1\\s`, 'm'));
  });

  it('--json has hits, requests, hitRate, bytesMoved and timePerToken', async () => {
    const r = await cli('--policy', 'lru', '--cache', '8', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.config).toEqual({ policy: 'lru', cacheSize: 8, batch: 1, prefetch: 'none', miss: 'fetch' });
    expect(j.requests).toBeGreaterThan(0);
    expect(j.hits).toBeGreaterThan(0);
    expect(j.hitRate).toBeCloseTo(j.hits / j.requests, 12);
    expect(j.bytesMoved).toBe((j.requests - j.hits) * 17301504);
    expect(j.timePerTokenMs.mean).toBeGreaterThan(0);
    expect(j.timePerTokenMs.p99).toBeGreaterThanOrEqual(j.timePerTokenMs.p50);
    expect(j.calibrationLabel).toMatch(/^h200-measured \(measured by calibrate/);
  });

  it('--sweep writes results.json, results.parquet and the three charts', async () => {
    const out = join(tmp, 'sweep');
    const r = await cli('--sweep', '--policies', 'lru,belady', '--caches', '4,16', '--batches', '1', '--prefetchers', 'none,oracle', '--out', out, '--quiet');
    expect(r.code, r.err).toBe(0);
    for (const f of ['results.json', 'results.parquet', 'hit-rate-vs-cache.svg', 'hit-rate-vs-cache.png', 'time-per-token-vs-cache.svg', 'time-breakdown.png']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const j = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(j.rows).toHaveLength(8);
    expect(readFileSync(join(out, 'results.parquet')).subarray(0, 4).toString()).toBe('PAR1');
  });
});

describe('simulate refuses bad input with one clean line', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown policy', ['--policy', 'mru'], /option --policy: unknown value 'mru'/],
    ['unknown prefetcher', ['--prefetch', 'magic'], /option --prefetch: unknown value 'magic'/],
    ['unknown miss mode', ['--miss', 'disk'], /option --miss: unknown value 'disk'/],
    ['cache below 1', ['--cache', '0'], /option --cache: 0 is out of range/],
    ['batch below 1', ['--batch', '0'], /option --batch: 0 is out of range/],
    ['non-integer cache', ['--cache', '4.5'], /option --cache: '4.5' is not an integer/],
    ['missing trace', ['--trace', '/nonexistent/t.arrow'], /option --trace: \/nonexistent\/t.arrow: no such file/],
    ['missing warm-up', ['--warmup', '/nonexistent/w.arrow'], /option --warmup: .*no such file/],
    ['bad sweep list', ['--sweep', '--caches', '4,x'], /option --caches: 'x' is not an integer/],
    ['predicted without predictions', ['--prefetch', 'predicted'], /carries no predictions \(pass --predictor DIR, or use a trace with a 'predicted' column\)/],
    ['not a predictor directory', ['--predictor', '.', '--prefetch', 'predicted'], /\.: not a predictor directory \(no predictor\.json\)/],
  ];
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const r = await cli(...args, '--quiet');
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(message);
      expect(r.err).not.toMatch(/internal error|at .*\.ts:/);
    });
  }

  it('a file that is not a trace', async () => {
    const f = join(tmp, 'not-a-trace.arrow');
    writeFileSync(f, 'hello');
    const r = await cli('--trace', f);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/not-a-trace\.arrow: not an Arrow IPC file/);
  });

  it('a calibration profile that is not one', async () => {
    const f = join(tmp, 'cal.json');
    writeFileSync(f, JSON.stringify({ schema: 'moe-offload.calibration', version: 1 }));
    const r = await cli('--calibration', f);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/cal\.json: not a calibration profile: .*name must be a non-empty string/);
  });

  it('next-gate on a trace without gate_next', async () => {
    const f = join(tmp, 'no-gate.arrow');
    const { TraceWriter } = await import('../../traces/src/writer.js');
    const w = TraceWriter.create(f, {
      modelId: 'm', configHash: 'h', numLayers: 2, moeLayers: [1], numExperts: 4, topK: 1, routingSource: 'imported',
      dataset: 'd', batchSize: 1, promptLength: null, device: null, engineVersion: 't', gitRevision: null, createdAt: '2026-01-01T00:00:00Z',
    });
    w.append({ step: [0, 1], phase: [1, 1], layer: [1, 1], seq: [0, 0], pos: [0, 1], experts: [1, 2], weights: [1, 1] });
    w.close();
    const r = await cli('--trace', f, '--policy', 'lru', '--cache', '1', '--prefetch', 'next-gate');
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/--prefetch next-gate: trace .* has no gate_next column/);
  });
});

describe('simulate --expert-dtype (issue 13)', () => {
  it('int8 on the shipped profile: fewer bytes per miss, a warning that the figures are scaled, not measured', async () => {
    const bf16 = JSON.parse((await cli('--policy', 'lru', '--cache', '8', '--json')).out);
    const r = await cli('--policy', 'lru', '--cache', '8', '--json', '--expert-dtype', 'int8');
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/warning: .*int8 figures are scaled, not measured/);
    const j = JSON.parse(r.out);
    expect(j.hits).toBe(bf16.hits);
    expect(j.bytesMoved).toBeLessThan(0.51 * bf16.bytesMoved);
    expect(j.bytesMoved).toBeGreaterThan(0.49 * bf16.bytesMoved);
  });

  it('refuses an unknown dtype and --expert-group without int4, by name', async () => {
    const a = await cli('--expert-dtype', 'fp8');
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/--expert-dtype/);
    const b = await cli('--expert-dtype', 'int8', '--expert-group', '32');
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/--expert-group: only with --expert-dtype int4/);
  });
});
