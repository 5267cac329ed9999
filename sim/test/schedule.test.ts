/** Lanes, request sets and the corpus replay on hand-made corpora. */
import { describe, expect, it } from 'vitest';
import { buildRequestSets } from '../src/replay/requests.js';
import { prepareReplay, replayCorpus } from '../src/replay/replay-corpus.js';
import { buildSchedule, scheduleCorpus } from '../src/replay/schedule.js';
import { handCorpus } from './helpers.js';

const steps = (lengths: number[], batch: number) => {
  const s = buildSchedule(lengths, batch);
  const out: string[][] = [];
  for (let i = 0; i < s.steps; i++) {
    const row: string[] = [];
    for (let t = s.tokenOffsets[i]; t < s.tokenOffsets[i + 1]; t++) row.push(`L${s.tokenLane[t]}:s${s.tokenSeq[t]}t${s.tokenPos[t]}`);
    out.push(row);
  }
  return out;
};

describe('lanes', () => {
  it('a lane whose sequence ended takes the next sequence at the next step', () => {
    // lengths 3,1,2 with B = 2: seq 1 ends after step 0, so lane 1 takes seq 2 at step 1.
    expect(steps([3, 1, 2], 2)).toEqual([
      ['L0:s0t0', 'L1:s1t0'],
      ['L0:s0t1', 'L1:s2t0'],
      ['L0:s0t2', 'L1:s2t1'],
    ]);
  });
  it('freed lanes are refilled in lane order, and idle lanes stay idle when no sequence remains', () => {
    // lengths 1,1,1,2 with B = 3: step 0 seqs 0,1,2; all three end; lane 0 takes seq 3; lanes 1,2 idle.
    expect(steps([1, 1, 1, 2], 3)).toEqual([['L0:s0t0', 'L1:s1t0', 'L2:s2t0'], ['L0:s3t0'], ['L0:s3t1']]);
  });
  it('B = 1 is the sequences one after the other', () => {
    expect(steps([2, 1], 1)).toEqual([['L0:s0t0'], ['L0:s0t1'], ['L0:s1t0']]);
  });
  it('refuses a batch below 1', () => {
    expect(() => buildSchedule([1], 0)).toThrow(/batch/);
  });
});

describe('request sets and the corpus replay', () => {
  // Two sequences, top-2, two MoE layers. tokens[seq][t][layer].
  const corpus = handCorpus([
    [
      [[1, 2], [5, 6]],
      [[2, 3], [5, 7]],
    ],
    [
      [[3, 1], [0, 6]],
      [[4, 2], [0, 7]],
    ],
  ]);

  it('R is the union of the step tokens top-k, ascending', () => {
    const sets = buildRequestSets(corpus, scheduleCorpus(corpus, 2));
    const R = (s: number, l: number) => Array.from(sets.experts.subarray(sets.offsets[s * 2 + l], sets.offsets[s * 2 + l + 1]));
    expect(sets.steps).toBe(2);
    expect([R(0, 0), R(0, 1), R(1, 0), R(1, 1)]).toEqual([[1, 2, 3], [0, 5, 6], [2, 3, 4], [0, 5, 7]]);
  });

  it('layers have separate caches and counts add up over layers', () => {
    // B = 2, lru, C = 2.
    // layer 0: s0 R={1,2,3}: 1 insert, 2 insert, 3 bypass. s1 R={2,3,4}: 2 hit; 3 miss, candidates {1} -> evict 1;
    //          4 miss, candidates {} -> bypass. layer 0: 1 hit of 6.
    // layer 1: s0 R={0,5,6}: 0 insert, 5 insert, 6 bypass. s1 R={0,5,7}: 0 hit, 5 hit, 7 bypass. 2 hits of 6.
    const r = replayCorpus(corpus, { policy: 'lru', cacheSize: 2, batch: 2 });
    expect([r.hits, r.requests]).toEqual([3, 12]);
    expect(Array.from(r.layerHits)).toEqual([1, 2]);
    // B = 1: seq 0 then seq 1, one token per step.
    // layer 0: {1,2} ins ins; {2,3}: 2 hit, 3 evicts 1; {1,3}: 1 evicts 2 (only non-R), 3 hit; {2,4}: 2 evicts 1
    //          (1 at (2,1) vs 3 at (2,3) -> 1), 4 evicts 3. hits 2 of 8.
    // layer 1: {5,6}; {5,7}: 5 hit, 7 evicts 6; {0,6}: 0 evicts 5 (5 at (1,5) older than 7 at (1,7)), 6 evicts 7;
    //          {0,7}: 0 hit, 7 evicts 6. hits 2 of 8.
    const r1 = replayCorpus(corpus, { policy: 'lru', cacheSize: 2, batch: 1 }, prepareReplay(corpus, 1));
    expect([r1.hits, r1.requests]).toEqual([4, 16]);
  });

  it('static pins the most popular experts of the warm-up corpus (default: first half of the sequences)', () => {
    // Warm-up = sequence 0. layer 0 counts: 1:1, 2:2, 3:1 -> top-2 {2, then 1 (lowest id among ties)} = {1,2}.
    // layer 1 counts: 5:2, 6:1, 7:1 -> {5,6}.
    // Replay B = 1: layer 0 requests {1,2},{2,3},{1,3},{2,4}: hits 1,2,2,1,2 -> 5 (3 and 4 bypass).
    // layer 1 requests {5,6},{5,7},{0,6},{0,7}: hits 5,6,5,6 -> 4.
    const r = replayCorpus(corpus, { policy: 'static', cacheSize: 2, batch: 1 });
    expect([r.hits, r.requests]).toEqual([9, 16]);
    expect(r.warmupLabel).toMatch(/first 1 of 2 sequences/);
  });
});
