/**
 * --prefetch / --predictor / --prefetch-lookahead / --prefetch-in-flight on generate and chat (issue 12):
 * refused by name with exit 2 and no stack, before the engine loads, with bench's rules. A real tiny
 * checkpoint and trace are passed so that the refusal is the flag's. (The prefetching itself needs the CUDA
 * engine: nothing here runs it.)
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../core/test/helpers.js';
import { makeCheckpoint } from '../../runtime/test/engine/helpers.js';
import { writeSyntheticTrace } from '../../traces/src/synthetic-routing.js';
import { prefetchOptionsFromCli } from '../../runtime/src/engine/cli-options.js';
import { prefetchFigures, prefetchSummaryLine } from '../prefetch-flags.js';

const tmp = tempDir('prefetch-cli-');
let model = '';
let trace = '';
beforeAll(async () => {
  model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny', 1);
  trace = join(tmp.path, 'tiny.arrow');
  writeSyntheticTrace(trace, { sequences: 2, tokensPerSequence: 16, numLayers: 3, numExperts: 8, topK: 2 });
});
afterAll(() => tmp.cleanup());

describe('--prefetch on generate and chat: refused by name, exit 2', () => {
  const gpu = ['--device', 'cuda', '--cache', '2'];
  const cases: Array<[string, () => string[], RegExp]> = [
    ['predicted without --predictor', () => ['generate', '--prompt-ids', '1,2', ...gpu, '--routing', trace, '--prefetch', 'predicted'], /option --prefetch predicted: needs --predictor DIR/],
    ['oracle without --routing', () => ['generate', '--prompt-ids', '1,2', ...gpu, '--prefetch', 'oracle'], /option --prefetch oracle: needs a routing replay \(--routing F\)/],
    ['predicted without --routing', () => ['generate', '--prompt-ids', '1,2', ...gpu, '--prefetch', 'predicted', '--predictor', tmp.path], /option --prefetch predicted: needs a routing replay \(--routing F\)/],
    ['next-gate with --routing', () => ['generate', '--prompt-ids', '1,2', ...gpu, '--routing', trace, '--prefetch', 'next-gate'], /option --prefetch next-gate: refused under routing replay/],
    ['prefetch without offloading (cpu)', () => ['generate', '--prompt-ids', '1,2', '--prefetch', 'next-gate'], /option --prefetch next-gate: needs offloaded experts on the GPU/],
    ['prefetch with a CPU accounting cache', () => ['generate', '--prompt-ids', '1,2', '--cache', '2', '--routing', trace, '--prefetch', 'oracle'], /option --prefetch oracle: needs offloaded experts on the GPU \(--device cuda/],
    ['prefetch on cuda without a cache', () => ['generate', '--prompt-ids', '1,2', '--device', 'cuda', '--prefetch', 'next-gate'], /option --prefetch next-gate: needs offloaded experts/],
    ['an unknown prefetcher', () => ['generate', '--prompt-ids', '1,2', ...gpu, '--prefetch', 'psychic'], /option --prefetch: unknown value 'psychic'/],
    ['--predictor without predicted', () => ['generate', '--prompt-ids', '1,2', ...gpu, '--routing', trace, '--prefetch', 'oracle', '--predictor', tmp.path], /option --predictor: only with --prefetch predicted/],
    ['--prefetch-lookahead without oracle', () => ['generate', '--prompt-ids', '1,2', ...gpu, '--prefetch', 'next-gate', '--prefetch-lookahead', '2'], /option --prefetch-lookahead: only with --prefetch oracle/],
    ['--prefetch-in-flight without a prefetcher', () => ['generate', '--prompt-ids', '1,2', ...gpu, '--prefetch-in-flight', '2'], /option --prefetch-in-flight: only with a prefetcher/],
    ['a bad --prefetch-lookahead', () => ['generate', '--prompt-ids', '1,2', ...gpu, '--routing', trace, '--prefetch', 'oracle', '--prefetch-lookahead', '0'], /option --prefetch-lookahead/],
    ['--predictor that is not a directory', () => ['generate', '--prompt-ids', '1,2', ...gpu, '--routing', trace, '--prefetch', 'predicted', '--predictor', join(tmp.path, 'nope')], /option --predictor: .*nope: not a directory/],
    ['chat: oracle (chat has no --routing)', () => ['chat', ...gpu, '--prefetch', 'oracle'], /option --prefetch oracle: needs a routing replay \(chat has none; use generate --routing F\)/],
    ['chat: predicted without --predictor', () => ['chat', ...gpu, '--prefetch', 'predicted'], /option --prefetch predicted: needs --predictor DIR/],
    ['chat: prefetch without offloading', () => ['chat', '--prefetch', 'next-gate'], /option --prefetch next-gate: needs offloaded experts on the GPU/],
  ];
  for (const [name, args, msg] of cases) {
    it(name, () => {
      const a = args();
      const r = runCli([a[0], '--model', model, ...a.slice(1)]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }
});

describe('prefetchOptionsFromCli and the summary line', () => {
  it('gives Engine.load the one prefetcher asked for', () => {
    const on = { routing: true, offloadedCuda: true };
    expect(prefetchOptionsFromCli({}, on)).toBeUndefined();
    expect(prefetchOptionsFromCli({ prefetch: 'none' }, { routing: false, offloadedCuda: false })).toBeUndefined();
    expect(prefetchOptionsFromCli({ prefetch: 'oracle', prefetchLookahead: '3', prefetchInFlight: '2' }, on)).toEqual({ name: 'oracle', lookahead: 3, maxInFlight: 2 });
    expect(prefetchOptionsFromCli({ prefetch: 'predicted', predictor: tmp.path }, on)).toEqual({ name: 'predicted', predictor: tmp.path });
    expect(prefetchOptionsFromCli({ prefetch: 'next-gate' }, { routing: false, offloadedCuda: true })).toEqual({ name: 'next-gate' });
    expect(() => prefetchOptionsFromCli({ prefetch: 'oracle,none' }, on)).toThrow(/option --prefetch: unknown value/);
  });
  it('prints issued, useful, precision and recall from the counts (hand-worked)', () => {
    const f = prefetchFigures({ hits: new Float64Array(), requests: new Float64Array(), prefetch: { issued: 40, useful: 30, dropped: 2, needed: 120, alreadyCached: 5 } } as never, { prefetch: { wastedBytes: 2.5e8, lateHits: 4 } } as never);
    expect(f).toMatchObject({ precision: 0.75, recall: 0.25, wastedBytes: 2.5e8, lateHits: 4 });
    expect(prefetchSummaryLine('oracle', f)).toBe('prefetch (--prefetch oracle): 40 issued, 30 useful, 2 dropped, precision 75.0% (useful / issued), recall 25.0% (useful / needed), 0.25 GB wasted, 4 late hits');
    expect(prefetchSummaryLine('oracle', prefetchFigures({ hits: new Float64Array(), requests: new Float64Array() } as never, null))).toBeNull();
    expect(prefetchFigures({ prefetch: { issued: 0, useful: 0, dropped: 0, needed: 0, alreadyCached: 0 } } as never, null)).toMatchObject({ precision: null, recall: null, wastedBytes: null });
  });
});
