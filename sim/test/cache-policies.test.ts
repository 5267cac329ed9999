/**
 * The canonical cache semantics on hand-made request sequences whose answers are worked out by hand in
 * the comments (one layer; requests per step; processing in ascending expert id).
 */
import { describe, expect, it } from 'vitest';
import { LayerCache, replayCache } from '../src/cache/index.js';

const summary = (r: ReturnType<typeof replayCache>) =>
  r.decisions.map((d) => `${d.step}:${d.expert}:${d.outcome}${d.victim !== undefined ? `>${d.victim}` : ''}`);

describe('lru', () => {
  it('evicts the least recently accessed expert not in the step request set, and bypasses when all are requested', () => {
    // C = 2.
    // s0 R={1,2}: 1 insert, 2 insert.                                cache {1,2}; accesses (0,1) (0,2)
    // s1 R={3}:   3 miss, LRU among {1,2} is 1 -> evict 1.          cache {2,3}
    // s2 R={1,2}: 1 miss; 2 is in R, so the only candidate is 3 (though 2 is older) -> evict 3.  cache {1,2}
    //             2 hit.
    // s3 R={3,4,5}: 3 miss, candidates {1,2}: 1 at (2,1) older than 2 at (2,2) -> evict 1. cache {2,3}
    //             4 miss, candidates {2} -> evict 2.                cache {3,4}
    //             5 miss, candidates {} (3 and 4 are in R) -> bypass.
    // s4 R={2,5}: 2 miss, candidates {3,4}: 3 at (3,3) older -> evict 3. cache {2,4}
    //             5 miss, candidates {4} -> evict 4.                cache {2,5}
    const r = replayCache([[1, 2], [3], [2, 1], [5, 4, 3], [2, 5]], 'lru', 2);
    expect(summary(r)).toEqual([
      '0:1:insert', '0:2:insert',
      '1:3:evict>1',
      '2:1:evict>3', '2:2:hit',
      '3:3:evict>1', '3:4:evict>2', '3:5:bypass',
      '4:2:evict>3', '4:5:evict>4',
    ]);
    expect(r.hits).toBe(1);
    expect(r.requests).toBe(10);
    expect(r.hitRate).toBeCloseTo(0.1, 12);
  });

  it('orders accesses within a step by expert id', () => {
    // C = 2. s0 R={4,7} (given as 7,4): 4 inserted at (0,4), 7 at (0,7). s1 R={1}: LRU victim is 4.
    const r = replayCache([[7, 4], [1]], 'lru', 2);
    expect(summary(r)).toEqual(['0:4:insert', '0:7:insert', '1:1:evict>4']);
  });
});

describe('frequency and the other policies on one sequence', () => {
  // C = 2; steps s0{1} s1{1} s2{2} s3{3} s4{1}.
  const trace = [[1], [1], [2], [3], [1]];

  it('lru: 1 is least recent at s3 and is evicted, so s4 misses', () => {
    // s3: 1 last at (1,1), 2 at (2,2) -> evict 1; s4: cache {2,3}, 2 older -> evict 2. hits: s1.
    const r = replayCache(trace, 'lru', 2);
    expect(summary(r)).toEqual(['0:1:insert', '1:1:hit', '2:2:insert', '3:3:evict>1', '4:1:evict>2']);
    expect(r.hits).toBe(1);
  });

  it('lfu: 1 has two requests, 2 has one, so 2 goes at s3 and s4 hits', () => {
    const r = replayCache(trace, 'lfu', 2);
    expect(summary(r)).toEqual(['0:1:insert', '1:1:hit', '2:2:insert', '3:3:evict>2', '4:1:hit']);
    expect(r.hits).toBe(2);
  });

  it('belady: at s3, 1 is needed at s4 and 2 never again, so 2 goes', () => {
    const r = replayCache(trace, 'belady', 2);
    expect(summary(r)).toEqual(['0:1:insert', '1:1:hit', '2:2:insert', '3:3:evict>2', '4:1:hit']);
    expect(r.hits).toBe(2);
  });

  it('fifo: a hit does not refresh, 1 was inserted first and goes first', () => {
    // s3: 1 inserted at s0, 2 at s2 -> evict 1. s4: cache {2,3}, 2 inserted before 3 -> evict 2.
    const r = replayCache(trace, 'fifo', 2);
    expect(summary(r)).toEqual(['0:1:insert', '1:1:hit', '2:2:insert', '3:3:evict>1', '4:1:evict>2']);
    expect(r.hits).toBe(1);
  });
});

describe('lfu', () => {
  it('keeps counts across eviction and breaks ties by least recent access', () => {
    // C = 2; s0{1} s1{1} s2{2} s3{3} s4{2} s5{4}. counts after each request in brackets.
    // s0 1 insert [1:1]; s1 1 hit [1:2]; s2 2 insert [2:1]; s3 3 [3:1]: candidates 1 (2) and 2 (1) -> evict 2.
    // s4 2 [2:2]: candidates 1 (2) and 3 (1) -> evict 3. cache {1,2}.
    // s5 4 [4:1]: candidates 1 (2) and 2 (2, its count survived its eviction at s3): tie -> least recent:
    //    1 was last accessed at (1,1), 2 at (4,2) -> evict 1. (With counts reset on eviction 2 would go.)
    const r = replayCache([[1], [1], [2], [3], [2], [4]], 'lfu', 2);
    expect(summary(r)).toEqual(['0:1:insert', '1:1:hit', '2:2:insert', '3:3:evict>2', '4:2:evict>3', '5:4:evict>1']);
  });

  it('a bypassed request counts towards frequency', () => {
    // C = 2. s0 R={1,2,3}: 1 insert, 2 insert, 3 bypass [3:1]. s1 R={3} [3:2]: candidates 1 (1) and 2 (1) tie,
    // least recent 1 -> evict 1; cache {2,3}. s2 R={4}: candidates 2 (1) and 3 (2) -> evict 2; cache {3,4}.
    // s3 R={2}: candidates 3 (2) and 4 (1) -> evict 4.
    const r = replayCache([[1, 2, 3], [3], [4], [2]], 'lfu', 2);
    expect(summary(r)).toEqual(['0:1:insert', '0:2:insert', '0:3:bypass', '1:3:evict>1', '2:4:evict>2', '3:2:evict>4']);
    // Had the bypass not counted, 3 would have count 1 at s3, tied with 4, and 3 (less recent) would go.
  });
});

describe('belady', () => {
  it('evicts the farthest next use, never again is farthest, ties to the lowest id', () => {
    // C = 2. s0{5} s1{3} s2{1}: at s2 both 3 and 5 are never requested again -> lowest id 3 (LRU would take 5).
    // s3{5}: cache {1,5} hit.
    const r = replayCache([[5], [3], [1], [5]], 'belady', 2);
    expect(summary(r)).toEqual(['0:5:insert', '1:3:insert', '2:1:evict>3', '3:5:hit']);
  });

  it('uses the next request strictly after the current step', () => {
    // C = 2. s0{1,2} s1{3} s2{2} s3{1}: at s1 candidates 1 (next s3) and 2 (next s2) -> evict 1 (farther).
    // s2 2 hit; s3 1 miss, candidates {2 (never), 3 (never)} -> lowest id 2.
    const r = replayCache([[1, 2], [3], [2], [1]], 'belady', 2);
    expect(summary(r)).toEqual(['0:1:insert', '0:2:insert', '1:3:evict>1', '2:2:hit', '3:1:evict>2']);
  });
});

describe('lfru (LRFU)', () => {
  // C = 2; s0{1} s1{1} s2{1} s3{2} s4{3}. At s4 the candidates are 1 and 2.
  const trace = [[1], [1], [1], [2], [3]];
  it('with a fast decay (d = 0.5) behaves like LRU', () => {
    // CRF(1) at s2 = 1 + 0.5 * (1 + 0.5 * 1) = 1.75; at s4: 1.75 * 0.5^2 = 0.4375. CRF(2) at s4 = 1 * 0.5 = 0.5.
    // 0.4375 < 0.5 -> evict 1.
    const r = replayCache(trace, 'lfru', 2, { lfruDecay: 0.5 });
    expect(r.decisions[4]).toEqual({ step: 4, expert: 3, outcome: 'evict', victim: 1 });
  });
  it('with the default slow decay (d = 0.9375) behaves like LFU', () => {
    // CRF(1) at s2 = 1 + d(1 + d) = 2.81640625; at s4 times d^2 = 0.87890625 -> 2.4753...; CRF(2) = 0.9375 -> evict 2.
    const r = replayCache(trace, 'lfru', 2);
    expect(r.decisions[4]).toEqual({ step: 4, expert: 3, outcome: 'evict', victim: 2 });
  });
});

describe('static', () => {
  it('keeps its pinned experts and bypasses every miss', () => {
    // pinned {1,2}, C = 2. s0 R={1,3}: 1 hit, 3 bypass. s1 R={2,3}: 2 hit, 3 bypass. s2 R={4}: bypass.
    const r = replayCache([[1, 3], [3, 2], [4]], 'static', 2, { pinned: [1, 2] });
    expect(summary(r)).toEqual(['0:1:hit', '0:3:bypass', '1:2:hit', '1:3:bypass', '2:4:bypass']);
    expect(r.hits).toBe(2);
  });
  it('bypasses even with free slots', () => {
    const r = replayCache([[3]], 'static', 4, { pinned: [1] });
    expect(summary(r)).toEqual(['0:3:bypass']);
  });
});

describe('LayerCache guards', () => {
  it('refuses a capacity below 1 and pinned experts for a non-static policy', () => {
    expect(() => new LayerCache(8, -1, 'lru')).toThrow(/capacity/);
    expect(() => new LayerCache(8, 1.5, 'lru')).toThrow(/capacity/);
    expect(() => new LayerCache(8, 2, 'lru', { pinned: [1] })).toThrow(/static/);
    expect(() => new LayerCache(8, 1, 'static', { pinned: [1, 2] })).toThrow(/exceed/);
  });
  it('prefetch takes a slot through the policy but is not a request', () => {
    // C = 2, lfu. s0 R={1,2}: insert both [1:1, 2:1]. s1: prefetch 3 protecting {3}: victims {1,2} tie on
    // count, least recent 1 -> evict 1. Then R={3}: hit (count 3:1).
    const c = new LayerCache(8, 2, 'lfu');
    c.beginStep(0, [1, 2]);
    expect([c.request(1, 0), c.request(2, 1)]).toEqual([1, 1]);
    c.beginStep(1, [3]);
    expect(c.prefetch(3)).toBe(2);
    expect(c.lastVictim).toBe(1);
    expect(c.request(3, 2)).toBe(0);
    expect(c.contents()).toEqual([2, 3]);
  });
});

describe('opt (Belady with bypass)', () => {
  it('declines to admit an expert needed no sooner than its would-be victim, where belady must admit', () => {
    // C = 1; steps s0{0} s1{1} s2{0}.
    // belady: s0 insert 0; s1 miss 1, the only candidate 0 (next at s2) is evicted; s2 miss 0 evicts 1. 0 hits.
    // opt:    s1 miss 1, next use of 1 is never, of the victim 0 is s2: never is not sooner -> bypass; s2 hit.
    const trace = [[0], [1], [0]];
    expect(summary(replayCache(trace, 'belady', 1))).toEqual(['0:0:insert', '1:1:evict>0', '2:0:evict>1']);
    const opt = replayCache(trace, 'opt', 1);
    expect(summary(opt)).toEqual(['0:0:insert', '1:1:bypass', '2:0:hit']);
    expect(opt.hits).toBe(1);
  });

  it('admits when the new expert is needed strictly sooner, evicting the farthest like belady', () => {
    // C = 2; s0{0,1} s1{2} s2{2} s3{0} s4{1}: at s1, 2 is next needed at s2; candidates 0 (s3) and 1 (s4):
    // victim 1 (farthest), and s2 < s4 so 2 is admitted. s2 hit; s3 hit; s4 miss 1: candidates {0 never,
    // 2 never}: victim 0 (tie -> lowest id); 1 is never needed again either: never < never is false -> bypass.
    const r = replayCache([[0, 1], [2], [2], [0], [1]], 'opt', 2);
    expect(summary(r)).toEqual(['0:0:insert', '0:1:insert', '1:2:evict>1', '2:2:hit', '3:0:hit', '4:1:bypass']);
  });
});
