/** Issue 12 prefetch: bad input refused before loading, naming the option. */
import { describe, expect, it } from 'vitest';
import { prefetchGridFromCli, prefetchOptionsFromCli } from '../../src/engine/cli-options.js';
import { resolvePrefetchOptions } from '../../src/offload/prefetch-options.js';
import type { RoutingReplay } from '../../src/offload/routing-replay.js';
import { tempDir } from '../../../core/test/helpers.js';

const replay = { path: 't.arrow', corpus: { topK: 2, moeLayers: [1, 2, 3], numExperts: 8, sequences: [{ seq: 0, length: 1, experts: new Uint16Array([0, 1, 2, 3, 4, 5]) }] } } as unknown as RoutingReplay;
const ctx = (routing?: RoutingReplay, hasCache = true) => ({ routing, hasCache, offloadedCuda: true, moeLayers: 3 });

describe('prefetch options', () => {
  it('predicted without --predictor is refused, naming the option', () => {
    expect(() => resolvePrefetchOptions({ name: 'predicted' }, ctx(replay))).toThrow(/--prefetch predicted: needs --predictor DIR/);
    expect(() => prefetchGridFromCli({ prefetch: 'none,predicted' })).toThrow(/--prefetch predicted: needs --predictor DIR/);
  });
  it('predicted and oracle without routing replay are refused', () => {
    expect(() => resolvePrefetchOptions({ name: 'oracle' }, ctx())).toThrow(/--prefetch oracle: needs a routing replay/);
    expect(() => resolvePrefetchOptions({ name: 'predicted', predictor: '/nonexistent' }, ctx())).toThrow(/--prefetch predicted: needs a routing replay/);
  });
  it('next-gate under routing replay is refused (its gate does not predict replayed routing)', () => {
    expect(() => resolvePrefetchOptions({ name: 'next-gate' }, ctx(replay))).toThrow(/next-gate: refused under routing replay/);
  });
  it('prefetch without a cache, unknown names, stray options are refused', () => {
    expect(() => resolvePrefetchOptions({ name: 'oracle' }, ctx(replay, false))).toThrow(/needs an expert cache/);
    expect(() => resolvePrefetchOptions({ name: 'bogus' as 'oracle' }, ctx(replay))).toThrow(/--prefetch: unknown value 'bogus'/);
    expect(() => resolvePrefetchOptions({ name: 'oracle', predictor: 'x' }, ctx(replay))).toThrow(/--predictor: only with --prefetch predicted/);
    expect(() => resolvePrefetchOptions({ name: 'next-gate', lookahead: 2 }, ctx())).toThrow(/--prefetch-lookahead: only with --prefetch oracle/);
    expect(() => prefetchGridFromCli({ prefetch: 'oracle', predictor: 'x' })).toThrow(/--predictor: only with --prefetch predicted/);
    expect(() => prefetchGridFromCli({ prefetch: 'next-gate', prefetchLookahead: '2' })).toThrow(/--prefetch-lookahead: only with --prefetch oracle/);
    expect(() => prefetchGridFromCli({ prefetch: 'oracle', predictorBudget: '3' })).toThrow(/--predictor-budget: only with --prefetch predicted/);
    expect(() => prefetchOptionsFromCli({ prefetch: 'oracle', predictorMinProb: '0.5' }, { routing: true, offloadedCuda: true })).toThrow(/--predictor-min-prob: only with --prefetch predicted/);
    expect(() => resolvePrefetchOptions({ name: 'oracle', predictorMinProb: 0.5 }, ctx(replay))).toThrow(/--predictor-min-prob: only with --prefetch predicted/);
  });
  it('a predictor directory that is not a predictor is refused naming --predictor', () => {
    const tmp = tempDir('pf-opt-');
    try {
      expect(() => resolvePrefetchOptions({ name: 'predicted', predictor: tmp.path }, ctx(replay))).toThrow(/option --predictor:/);
    } finally {
      tmp.cleanup();
    }
  });
  it('oracle hands the replayed routing as the table; next-gate uses the host gate only on the CPU engine', () => {
    const r = resolvePrefetchOptions({ name: 'oracle', lookahead: 2 }, ctx(replay))!;
    expect(r.spec).toMatchObject({ source: 'table', lookahead: 2, width: 2, pieces: 3, maxInFlight: 1 });
    expect(Array.from(r.spec.table![0])).toEqual([0, 1, 2, 3, 4, 5]);
    expect(resolvePrefetchOptions({ name: 'next-gate' }, ctx())!.spec.hostGate).toBe(false);
    expect(resolvePrefetchOptions({ name: 'next-gate' }, { ...ctx(), offloadedCuda: false })!.spec.hostGate).toBe(true);
    expect(resolvePrefetchOptions({ name: 'none' }, ctx())).toBeNull();
  });
});

describe('prefetch options: the predictor budget and gate', () => {
  it('parses --predictor-budget and --predictor-min-prob for predicted and refuses values out of range', () => {
    const tmp = tempDir('pf-opt-b-');
    try {
      expect(prefetchGridFromCli({ prefetch: 'none,predicted', predictor: tmp.path, predictorBudget: '2', predictorMinProb: '0.7' })[1]).toMatchObject({ name: 'predicted', predictorBudget: 2, predictorMinProb: 0.7 });
      expect(() => prefetchGridFromCli({ prefetch: 'predicted', predictor: tmp.path, predictorMinProb: '1.5' })).toThrow(/--predictor-min-prob/);
      expect(() => prefetchGridFromCli({ prefetch: 'predicted', predictor: tmp.path, predictorBudget: '0' })).toThrow(/--predictor-budget/);
    } finally {
      tmp.cleanup();
    }
  });
});
