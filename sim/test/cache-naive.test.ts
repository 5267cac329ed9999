/**
 * The cache module against a deliberately naive re-statement of the rules (sets, sort by key), on random
 * request sequences: every decision must match. Catches drift between the fast victim search (recency
 * lists, specialised loops) and the rule as written in sim/README.md.
 */
import { describe, expect, it } from 'vitest';
import { replayCache, type Decision } from '../src/cache/index.js';
import { splitmix32 } from '../../traces/src/synthetic-routing.js';

type Key = (e: number, step: number) => number[];

function naive(trace: number[][], policy: 'lru' | 'lfu' | 'fifo' | 'belady' | 'lfru', C: number, decay = 0.9375): Decision[] {
  const cached = new Set<number>();
  const last = new Map<number, number>(); // access order: step * 1e6 + id
  const inserted = new Map<number, number>();
  const count = new Map<number, number>();
  const crf = new Map<number, number>();
  const crfStep = new Map<number, number>();
  const pow = (n: number) => {
    let x = 1;
    for (let i = 0; i < n; i++) x *= decay;
    return x;
  };
  const nextUse = (e: number, s: number) => {
    for (let t = s + 1; t < trace.length; t++) if (trace[t].includes(e)) return t;
    return Infinity;
  };
  const key: Record<string, Key> = {
    lru: (e) => [last.get(e)!],
    fifo: (e) => [inserted.get(e)!],
    lfu: (e) => [count.get(e)!, last.get(e)!, e],
    belady: (e, s) => [-nextUse(e, s), e],
    lfru: (e, s) => [crf.get(e)! * pow(s - crfStep.get(e)!), last.get(e)!, e],
  };
  const out: Decision[] = [];
  trace.forEach((R0, s) => {
    const R = [...new Set(R0)].sort((a, b) => a - b);
    for (const e of R) {
      count.set(e, (count.get(e) ?? 0) + 1);
      crf.set(e, 1 + (crf.get(e) ?? 0) * pow(s - (crfStep.get(e) ?? 0)));
      crfStep.set(e, s);
      const access = s * 1e6 + e;
      if (cached.has(e)) {
        last.set(e, access);
        out.push({ step: s, expert: e, outcome: 'hit' });
      } else if (cached.size < C) {
        cached.add(e);
        last.set(e, access);
        inserted.set(e, access);
        out.push({ step: s, expert: e, outcome: 'insert' });
      } else {
        const cands = [...cached].filter((x) => !R.includes(x));
        if (cands.length === 0) {
          out.push({ step: s, expert: e, outcome: 'bypass' });
          continue;
        }
        cands.sort((a, b) => {
          const ka = key[policy](a, s);
          const kb = key[policy](b, s);
          for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] - kb[i];
          return 0;
        });
        const victim = cands[0];
        cached.delete(victim);
        cached.add(e);
        last.set(e, access);
        inserted.set(e, access);
        out.push({ step: s, expert: e, outcome: 'evict', victim });
      }
    }
  });
  return out;
}

describe('cache module equals the naive statement of the rules', () => {
  const rand = splitmix32(7);
  for (const policy of ['lru', 'lfu', 'fifo', 'belady', 'lfru'] as const) {
    it(policy, () => {
      for (let trial = 0; trial < 40; trial++) {
        const E = 4 + Math.floor(rand() * 12);
        const C = 1 + Math.floor(rand() * (E - 1));
        const steps = 20 + Math.floor(rand() * 40);
        // Skewed draws so that hits, evictions and bypasses all happen.
        const trace = Array.from({ length: steps }, () => Array.from({ length: 1 + Math.floor(rand() * 4) }, () => Math.floor(E * rand() * rand())));
        const got = replayCache(trace, policy, C, { numExperts: E }).decisions;
        expect(got, `trial ${trial}: E=${E} C=${C} ${JSON.stringify(trace)}`).toEqual(naive(trace, policy, C));
      }
    });
  }
});
