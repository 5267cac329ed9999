/**
 * lru and fifo find their victim on a recency list; pickVictimByScan states the same rule on the cache's
 * clock arrays. On long random request streams (with prefetches, which insert without a request) every
 * victim the list gives must be the one the scan gives.
 */
import { describe, expect, it } from 'vitest';
import { LayerCache } from '../src/cache/index.js';
import type { FifoPolicy } from '../src/cache/fifo.js';
import type { LruPolicy } from '../src/cache/lru.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

for (const policy of ['lru', 'fifo'] as const) {
  describe(`${policy}: recency list vs scan`, () => {
    it('pick the same victim at every eviction of a random stream', () => {
      const numExperts = 24;
      const capacity = 7;
      const cache = new LayerCache(numExperts, capacity, policy);
      const p = cache.policy as LruPolicy | FifoPolicy;
      const fromList = p.pickVictim.bind(p);
      let compared = 0;
      let disagreements = 0;
      p.pickVictim = (slots, used, protectedAt, stamp) => {
        const victim = fromList(slots, used, protectedAt, stamp);
        if (p.pickVictimByScan(slots, used, protectedAt, stamp) !== victim) disagreements++;
        compared++;
        return victim;
      };
      const rand = lcg(policy === 'lru' ? 7 : 11);
      let index = 0;
      for (let step = 0; step < 3000; step++) {
        // 1 to 6 distinct experts, skewed towards low ids so that hits, evictions and bypasses all occur.
        const set = new Set<number>();
        const n = 1 + Math.floor(rand() * 6);
        while (set.size < n) set.add(Math.floor(numExperts * rand() ** 2));
        const requests = [...set].sort((a, b) => a - b);
        cache.beginStep(step, requests);
        if (rand() < 0.3) {
          const target = Math.floor(rand() * numExperts);
          cache.protect([target]);
          cache.prefetch(target);
        }
        for (const e of requests) cache.request(e, index++);
      }
      expect(disagreements).toBe(0);
      expect(compared).toBeGreaterThan(1000);
    });
  });
}
