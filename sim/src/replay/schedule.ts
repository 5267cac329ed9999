/**
 * Batching of sequences into B lanes (canonical semantics, sim/README.md): the first B sequences go to
 * lanes 0..B-1; at each step every active lane contributes its next token; a lane whose sequence has
 * ended takes the next unassigned sequence (trace order) for the next step, lanes filled in index order;
 * the run ends when every lane is empty and no sequence remains.
 */
import type { RoutingCorpus } from '../../../traces/src/sequences.js';

export interface Schedule {
  batch: number;
  steps: number;
  /** Tokens of step s are [tokenOffsets[s], tokenOffsets[s+1]), in lane order. */
  tokenOffsets: Int32Array;
  /** Index into corpus.sequences of each scheduled token. */
  tokenSeq: Int32Array;
  /** Token index within its sequence. */
  tokenPos: Int32Array;
  /** Lane of each scheduled token. */
  tokenLane: Int32Array;
}

export function buildSchedule(sequenceLengths: ArrayLike<number>, batch: number): Schedule {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be a positive integer, got ${batch}`);
  let total = 0;
  for (let i = 0; i < sequenceLengths.length; i++) {
    if (!(sequenceLengths[i] >= 1)) throw new Error(`sequence ${i} has no tokens`);
    total += sequenceLengths[i];
  }
  const tokenSeq = new Int32Array(total);
  const tokenPos = new Int32Array(total);
  const tokenLane = new Int32Array(total);
  const offsets: number[] = [0];
  const laneSeq = new Int32Array(batch).fill(-1);
  const lanePos = new Int32Array(batch);
  let nextSeq = 0;
  let n = 0;
  for (;;) {
    for (let lane = 0; lane < batch; lane++) {
      if (laneSeq[lane] >= 0 && lanePos[lane] >= sequenceLengths[laneSeq[lane]]) laneSeq[lane] = -1;
      if (laneSeq[lane] < 0 && nextSeq < sequenceLengths.length) {
        laneSeq[lane] = nextSeq++;
        lanePos[lane] = 0;
      }
    }
    const before = n;
    for (let lane = 0; lane < batch; lane++) {
      if (laneSeq[lane] < 0) continue;
      tokenSeq[n] = laneSeq[lane];
      tokenPos[n] = lanePos[lane]++;
      tokenLane[n] = lane;
      n++;
    }
    if (n === before) break;
    offsets.push(n);
  }
  return { batch, steps: offsets.length - 1, tokenOffsets: Int32Array.from(offsets), tokenSeq, tokenPos, tokenLane };
}

export function scheduleCorpus(corpus: RoutingCorpus, batch: number): Schedule {
  return buildSchedule(corpus.sequences.map((s) => s.length), batch);
}
