/**
 * The request sets of a replay: for every step s and MoE layer l, R(s, l) = the union of the top-k experts
 * of the step's tokens at layer l, ascending. Stored flat, (s, l) at index s * layers + l.
 */
import type { RoutingCorpus } from '../../../traces/src/sequences.js';
import { NO_EXPERT } from '../../../traces/src/sequences.js';
import type { Schedule } from './schedule.js';

export interface RequestSets {
  steps: number;
  layers: number;
  numExperts: number;
  /** R(s, l) = experts[offsets[s*layers+l] .. offsets[s*layers+l+1]). */
  offsets: Int32Array;
  /** Ascending, unique within each set. */
  experts: Uint16Array;
  /** Tokens of the step that named each expert (parallel to experts): the expert's batch for compute time. */
  tokens: Uint16Array;
}

export function buildRequestSets(corpus: RoutingCorpus, schedule: Schedule): RequestSets {
  // The hot path of every replay: a direct loop (no per-id callback) with a stamp array for the union.
  const L = corpus.moeLayers.length;
  const k = corpus.topK;
  const E = corpus.numExperts;
  const S = schedule.steps;
  const offsets = new Int32Array(S * L + 1);
  const cap = Math.min(schedule.tokenSeq.length * L * k, S * L * E) + 1;
  const buf = new Uint16Array(cap);
  const cnt = new Uint16Array(cap);
  const seen = new Int32Array(E).fill(-1);
  const routing = corpus.sequences.map((s) => s.experts);
  let n = 0;
  for (let s = 0; s < S; s++) {
    const t0 = schedule.tokenOffsets[s];
    const t1 = schedule.tokenOffsets[s + 1];
    for (let l = 0; l < L; l++) {
      const mark = s * L + l;
      const start = n;
      for (let t = t0; t < t1; t++) {
        const ids = routing[schedule.tokenSeq[t]];
        const base = (schedule.tokenPos[t] * L + l) * k;
        for (let j = 0; j < k; j++) {
          const id = ids[base + j];
          if (seen[id] === mark) {
            for (let i = start; i < n; i++) if (buf[i] === id) cnt[i]++;
            continue;
          }
          seen[id] = mark;
          let i = n++;
          while (i > start && buf[i - 1] > id) {
            buf[i] = buf[i - 1];
            cnt[i] = cnt[i - 1];
            i--;
          }
          buf[i] = id;
          cnt[i] = 1;
        }
      }
      offsets[mark + 1] = n;
    }
  }
  return { steps: S, layers: L, numExperts: E, offsets, experts: buf.slice(0, n), tokens: cnt.slice(0, n) };
}

/**
 * Builds per-(step, layer) unions from any per-token id source (routing, predictions, gate_next).
 * `forEach(token, layer, visit)` calls visit(id) for the token's ids at that layer; NO_EXPERT is skipped.
 */
export function collectSets(
  schedule: Schedule,
  layers: number,
  numExperts: number,
  forEach: (token: number, layer: number, visit: (id: number) => void) => void,
): RequestSets {
  const S = schedule.steps;
  const offsets = new Int32Array(S * layers + 1);
  let buf = new Uint16Array(Math.max(1024, schedule.tokenSeq.length * 2));
  let cnt = new Uint16Array(buf.length);
  let n = 0;
  const seen = new Int32Array(numExperts).fill(-1);
  let mark = 0;
  let start = 0;
  const visit = (id: number) => {
    if (id === NO_EXPERT) return;
    if (id >= numExperts) throw new Error(`expert id ${id} >= numExperts ${numExperts}`);
    if (seen[id] === mark) {
      for (let i = start; i < n; i++) if (buf[i] === id) cnt[i]++;
      return;
    }
    seen[id] = mark;
    if (n === buf.length) {
      const grown = new Uint16Array(buf.length * 2);
      grown.set(buf);
      buf = grown;
      const grownCnt = new Uint16Array(cnt.length * 2);
      grownCnt.set(cnt);
      cnt = grownCnt;
    }
    // insertion into the ascending run [start, n)
    let i = n++;
    while (i > start && buf[i - 1] > id) {
      buf[i] = buf[i - 1];
      cnt[i] = cnt[i - 1];
      i--;
    }
    buf[i] = id;
    cnt[i] = 1;
  };
  for (let s = 0; s < S; s++) {
    for (let l = 0; l < layers; l++) {
      mark = s * layers + l;
      start = n;
      for (let t = schedule.tokenOffsets[s]; t < schedule.tokenOffsets[s + 1]; t++) forEach(t, l, visit);
      offsets[mark + 1] = n;
    }
  }
  return { steps: S, layers, numExperts, offsets, experts: buf.slice(0, n), tokens: cnt.slice(0, n) };
}

/** Request sets of one layer from plain lists (hand-made tests, the decision-log API). */
export function requestSetsFromLists(requestsPerStep: ReadonlyArray<ReadonlyArray<number>>, numExperts: number): RequestSets {
  const offsets = new Int32Array(requestsPerStep.length + 1);
  const all: number[] = [];
  const tokens: number[] = [];
  requestsPerStep.forEach((r, s) => {
    const sorted = [...new Set(r)].sort((a, b) => a - b);
    for (const e of sorted) {
      if (!Number.isInteger(e) || e < 0 || e >= numExperts) throw new Error(`step ${s}: expert ${e} is not in [0, ${numExperts})`);
      all.push(e);
      tokens.push(r.filter((x) => x === e).length);
    }
    offsets[s + 1] = all.length;
  });
  return { steps: requestsPerStep.length, layers: 1, numExperts, offsets, experts: Uint16Array.from(all), tokens: Uint16Array.from(tokens) };
}
