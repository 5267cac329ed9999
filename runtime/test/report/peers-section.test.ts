/**
 * REPORT.md's peers section: the sentence on each row follows what each side did there (experts on the
 * host cores, copied for a prompt, or all on the GPU), and the goal is stated as met only where both
 * batch 1 and batch 16 ratios exceed 1.
 */
import { describe, expect, it } from 'vitest';
import { goal, whyFaster } from '../../src/report/peers-section.js';
import type { PeersRatio } from '../../src/report/quant-sources.js';

const ours = { cache: 20, miss: 'hybrid', hitRate: 0.45, cpuExpertsPerToken: 12.5, msPerToken: 20, peakGiB: 11.7, allOnGpu: false };
const llama = { nCpuMoe: 19, nLayer: 27, peakGiB: 11.5, allOnGpu: false };
const row = (over: Partial<PeersRatio>): PeersRatio => ({
  ceiling: false, dtype: 'bf16', llamaDtype: 'bf16', test: 'decode b1', ours: 'o', llama: 'l', oursTps: 50, llamaTps: 25, ratio: 2, fair: true, oursFacts: ours, llamaFacts: llama, ...over,
});

describe('peers section', () => {
  it('a decode row with llama.cpp layers on the CPU names them and our cache and misses', () => {
    const s = whyFaster(row({}), null);
    expect(s).toMatch(/^moe-offload 2\.00x/);
    expect(s).toMatch(/19 of its 27 layers on the 16 host cores/);
    expect(s).toMatch(/keeps 20 of 64 experts .*\(45\.0% of requests hit\)/);
    expect(s).toMatch(/12\.5 experts per token/);
  });

  it('at 32 tokens and more llama.cpp moves the CPU layers to the GPU instead (op offload)', () => {
    expect(whyFaster(row({ test: 'prefill 128', oursTps: 300, llamaTps: 50, ratio: 6 }), null)).toMatch(/moves the expert tensors of 19 of its 27 layers to the GPU .* took 2\.56 s/);
  });

  it('with every expert on the GPU on both sides a slower moe-offload step is put on its per-layer host synchronisation', () => {
    const r = row({ oursFacts: { ...ours, cache: 64, allOnGpu: true, msPerToken: 5.24 }, llamaFacts: { ...llama, nCpuMoe: 0, allOnGpu: true }, oursTps: 190.8, llamaTps: 294, ratio: 190.8 / 294 });
    const s = whyFaster(r, { ms: 3.51, source: 'x.json' });
    expect(s).toMatch(/^llama\.cpp 1\.54x/);
    expect(s).toMatch(/26 synchronisations per step/);
    expect(s).toMatch(/5\.24 against 3\.40 ms per step/);
    expect(s).toMatch(/3\.51 ms per step at batch 1 in another call \(x\.json\)/);
    // the engine without offload is bf16 only: not cited for a quantized row
    expect(whyFaster({ ...r, dtype: 'int4' }, { ms: 3.51, source: 'x.json' })).not.toMatch(/another call/);
  });

  it('a row on replayed ESFT routing is marked as context, not a comparison', () => {
    expect(whyFaster(row({ fair: false }), null)).toMatch(/context only: .*not like for like/);
  });

  it('the goal is met per dtype only when batch 1 and batch 16 are both faster', () => {
    const rs = [row({}), row({ test: 'decode b16', ratio: 1.5 }), row({ dtype: 'int4', llamaDtype: 'q4_k_m', ratio: 0.65 }), row({ dtype: 'int4', llamaDtype: 'q4_k_m', test: 'decode b16', ratio: 0.93 })];
    const g = goal(rs).join('\n');
    expect(g).toMatch(/\*\*not met everywhere\*\*/);
    expect(g).toMatch(/bf16 vs bf16: 2\.00x at batch 1, 1\.50x at batch 16: met/);
    expect(g).toMatch(/int4 vs q4_k_m: 0\.65x at batch 1, 0\.93x at batch 16: \*\*not met\*\*/);
    expect(g).toMatch(/int8: not measured on both sides/);
    expect(goal(rs.slice(0, 2)).join('')).toMatch(/not met everywhere/); // int8/int4 missing is not "met"
  });
});
