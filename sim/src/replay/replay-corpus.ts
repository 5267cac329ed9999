/**
 * The canonical replay of a whole corpus: lanes -> request sets -> per-layer caches. Hit and request
 * counts of this function are what the exact-agreement tests compare.
 */
import type { RoutingCorpus } from '../../../traces/src/sequences.js';
import { replayLayers, type ReplayResult } from '../cache/replay.js';
import type { PolicyName } from '../cache/types.js';
import { buildRequestSets, type RequestSets } from './requests.js';
import { scheduleCorpus, type Schedule } from './schedule.js';
import { checkSameGeometry, defaultWarmupLabel, firstHalf, pinnedForCorpus } from './warmup.js';

export interface CorpusReplayConfig {
  policy: PolicyName;
  cacheSize: number;
  batch: number;
  /** static only: popularity source; default: the first half of `corpus`. */
  warmup?: RoutingCorpus;
  lfruDecay?: number;
  log?: boolean;
}

export interface PreparedReplay {
  schedule: Schedule;
  sets: RequestSets;
}

/** Lanes and request sets depend only on the corpus and the batch: sweeps build them once per batch. */
export function prepareReplay(corpus: RoutingCorpus, batch: number): PreparedReplay {
  const schedule = scheduleCorpus(corpus, batch);
  return { schedule, sets: buildRequestSets(corpus, schedule) };
}

export function staticPinned(corpus: RoutingCorpus, cacheSize: number, warmup?: RoutingCorpus): { pinned: number[][]; label: string } {
  if (warmup) {
    checkSameGeometry(corpus, warmup, 'the warm-up trace');
    return { pinned: pinnedForCorpus(warmup, cacheSize), label: `warm-up trace (${warmup.meta.dataset}, ${warmup.sequences.length} sequences)` };
  }
  return { pinned: pinnedForCorpus(firstHalf(corpus), cacheSize), label: defaultWarmupLabel(corpus) };
}

export function replayCorpus(corpus: RoutingCorpus, cfg: CorpusReplayConfig, prepared?: PreparedReplay): ReplayResult & { warmupLabel?: string } {
  const p = prepared ?? prepareReplay(corpus, cfg.batch);
  if (p.schedule.batch !== cfg.batch) throw new Error('prepared replay was built for another batch size');
  let pinned: number[][] | undefined;
  let warmupLabel: string | undefined;
  if (cfg.policy === 'static') ({ pinned, label: warmupLabel } = staticPinned(corpus, cfg.cacheSize, cfg.warmup));
  const r = replayLayers(p.sets, cfg.policy, cfg.cacheSize, { pinned, lfruDecay: cfg.lfruDecay, log: cfg.log });
  return warmupLabel ? { ...r, warmupLabel } : r;
}
