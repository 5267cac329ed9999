/** The issue-6 report generator: tables and ratios from device result files, refusals of wrong files. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeOffloadGridReport } from '../../src/bench/offload-grid-report.js';
import { repoRoot, tempDir } from '../../../core/test/helpers.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { replayCorpus } from '../../../sim/src/replay/replay-corpus.js';
import { fillLanes } from '../../src/offload/replay-lanes.js';

const d = tempDir('offload-report-');
afterAll(() => d.cleanup());

const point = (cache: number, policy: string, batch: number, ms: number, hitRate: number) => ({
  cache, policy, batch, prompt: 128, newTokens: 32, msPerToken: { mean: ms, p50: ms, p99: ms + 1 }, prefillMs: { mean: 400 },
  decodeTokensPerSecond: (1000 * batch) / ms, hitRate, simHitRate: hitRate, hitsMatchSim: true, bytesH2D: 2e9,
  enginePeakBytes: 9 * 2 ** 30, deviceUsedPeakBytes: 10 * 2 ** 30, routing: 'test routing', device: { name: 'Test GPU' },
});
const write = (name: string, value: unknown) => {
  const p = join(d.path, name);
  writeFileSync(p, JSON.stringify(value));
  return p;
};

describe('offload grid report', () => {
  const bench = write('bench.json', { offload: { caches: [16] }, grid: [point(16, 'lru', 1, 30, 0.5), point(16, 'lfu', 1, 25, 0.55), point(16, 'lru', 4, 100, 0.4)] });
  const naive = write('naive.json', { offload: { caches: [0] }, grid: [point(0, 'lru', 1, 50, 0)] });
  const acc = write('acc.json', { device: 'Test GPU', budget: '12GiB', batch: 1, prompt: 128, msPerToken: { mean: 2500, p50: 2500, p99: 2600 }, prefillMs: 5000, peakGpuBytes: 1, peakDeviceUsedBytes: 13 * 2 ** 30, routing: 'router', transformers: '5', accelerate: '1' });

  it('puts the four systems side by side with ratios to the fastest, and the grid with the simulator check', async () => {
    const out = join(d.path, 'report');
    await writeOffloadGridReport({ bench: [bench], naive, accelerate: acc, out });
    const md = readFileSync(join(out, 'README.md'), 'utf8');
    expect(md).toMatch(/\| moe-offload, cache 16 lfu \| 25\.00 \| 26\.00 \| 1\.0 \| 10\.00 \| 55\.0% \|/);
    expect(md).toMatch(/\| moe-offload, naive on-demand \(cache 0\) \| 50\.00 \| 51\.00 \| 2\.0 \|/);
    expect(md).toMatch(/\| transformers 5 \+ accelerate 1 CPU offload \(max_memory 12GiB\) \| 2500\.00 \| 2600\.00 \| 100\.0 \| 13\.00 \| - \|/);
    expect(md).toMatch(/\| lru \| 4 \| 128 \| 100\.00 \|/);
    expect(md).toMatch(/hits equal the simulator's on the same lanes: yes, all/);
    for (const f of ['grid.png', 'side-by-side.svg', 'summary.json']) expect(existsSync(join(out, f)), f).toBe(true);
  });

  it('refuses a bench result without an offload grid, naming the file', async () => {
    const plain = write('plain.json', { grid: [] });
    await expect(writeOffloadGridReport({ bench: [plain], naive, accelerate: acc, out: join(d.path, 'x') })).rejects.toThrow(/plain\.json: no offload grid/);
    await expect(writeOffloadGridReport({ bench: [bench], naive: bench, accelerate: acc, out: join(d.path, 'x') })).rejects.toThrow(/--naive .*bench\.json: no cache-0 point/);
  });

  it('adds the simulator\'s time per token on the bench\'s lanes, and refuses lanes that are not the bench\'s', async () => {
    const sample = join(repoRoot, 'traces', 'samples', 'synthetic-zipf-sticky.arrow');
    const lanes = fillLanes([{ path: sample, corpus: toSequences(readTrace(sample)) }], 2 * 2, 128 + 32 - 1);
    const hitRate = (() => {
      const r = replayCorpus(lanes.replay.corpus, { policy: 'lru', cacheSize: 16, batch: 2 });
      return r.hits / r.requests;
    })();
    const p = { ...point(16, 'lru', 2, 40, hitRate), repeats: 1 };
    const b = write('bench-sim.json', { offload: {}, options: { warmup: 1 }, grid: [p] });
    const out = join(d.path, 'with-sim');
    await writeOffloadGridReport({ bench: [b], naive, accelerate: acc, out, simTraces: [sample] });
    const row = readFileSync(join(out, 'README.md'), 'utf8').split('\n').find((l) => l.startsWith('| lru | 2 | 128 |'))!;
    const [sim, err] = row.split('|').slice(7, 9).map((c) => c.trim());
    expect(Number(sim)).toBeGreaterThan(0);
    expect(err).toBe(`${((Number(sim) / 40 - 1) * 100).toFixed(1)}%`);
    const wrong = write('bench-wrong.json', { offload: {}, options: { warmup: 1 }, grid: [{ ...p, simHitRate: hitRate / 2 }] });
    await expect(writeOffloadGridReport({ bench: [wrong], naive, accelerate: acc, out, simTraces: [sample] })).rejects.toThrow(/not the bench's traces or order/);
  });
});
