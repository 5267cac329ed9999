/**
 * Issue 6 invariant on the GPU: generated tokens are identical (greedy) between the all-resident engine
 * and the offloaded one at every cache size and policy. One all-resident engine gives the reference; one
 * offloaded engine with a pool of max(caches) slots then runs every (cache, policy) with a fresh, cold
 * session (Engine.resetOffload). Batches cover the three routed-expert paths of the CUDA backend: a
 * single prompt (decode GEMV), four prompts of unequal length (tile kernel at prefill), and four long
 * prompts (>= 2048 prefill rows: cuBLAS per expert).
 * With a cache of every expert (cache = the model's routed experts) two more runs per batch: static with every
 * expert pinned, resident steps on and off (cuda_resident_step.cpp): both must match, and the first must have
 * run resident steps (else the check fails: the path it exists for was not exercised).
 * The reference keeps its logits (recordLogits), so its tokens are sampled on the host from them, while the
 * offloaded runs sample greedy rows on the GPU (Engine::set_keep_logits): the check covers that path too.
 * The prefetchers that need a routing replay (oracle, predicted) are checked on the two short batches with a
 * replayed routing (lanes of the given traces): the reference is the all-resident engine under the same replay.
 */
import type { PolicyName } from '../../../sim/src/cache/types.js';
import { UserError } from '../../../core/src/errors.js';
import { Engine } from '../engine/index.js';
import { fillLanes } from '../offload/replay-lanes.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import { seededIds } from './grid.js';

/** What --check-offload-prefetch takes: next-gate on the model's own routing, oracle and predicted under replay. */
export type CheckPrefetch = 'none' | 'next-gate' | 'oracle' | 'predicted';
const REPLAYED: ReadonlySet<CheckPrefetch> = new Set(['oracle', 'predicted']);
/** the batches (indices into BATCHES) run under replay: the short ones (a trace lane per prompt, prompt + new tokens long) */
const REPLAYED_BATCHES = [0, 1];

export interface OffloadCheckCase {
  label: string;
  cache: number;
  policy: PolicyName;
  /** issue 12: the prefetcher of the offloaded run (prefetch must not change arithmetic) */
  prefetch: CheckPrefetch;
  /** oracle and predicted: the run (and its reference) replayed the routing of trace lanes */
  replayed?: boolean;
  identical: boolean;
  /** decode forwards that ran as resident steps; for the all-pinned cases, whether resident steps were allowed */
  residentSteps: number;
  resident?: 'on' | 'off';
  /** first (sequence, index) whose token differs */
  firstDifference: { sequence: number; index: number } | null;
  bytesH2D: number;
}

export interface OffloadCheck {
  newTokens: number;
  batches: { label: string; promptLengths: number[] }[];
  cases: OffloadCheckCase[];
  allIdentical: boolean;
}

const BATCHES = [
  { label: 'batch 1', promptLengths: [40] },
  { label: 'batch 4', promptLengths: [40, 33, 57, 21] },
  { label: 'batch 4 long (cuBLAS prefill)', promptLengths: [600, 590, 610, 620] },
];

function firstDifference(a: number[][], b: number[][]): { sequence: number; index: number } | null {
  for (let s = 0; s < a.length; s++) {
    for (let i = 0; i < Math.max(a[s].length, b[s]?.length ?? 0); i++) if (a[s][i] !== b[s]?.[i]) return { sequence: s, index: i };
  }
  return null;
}

export async function checkOffloadTokens(
  model: string,
  caches: number[],
  policies: PolicyName[],
  newTokens: number,
  seed: number,
  log: (line: string) => void,
  prefetches: CheckPrefetch[] = ['none'],
  replay?: { routing: RoutingReplay[]; predictor?: string },
): Promise<OffloadCheck> {
  const replayed = prefetches.filter((p) => REPLAYED.has(p));
  if (replayed.length > 0 && !replay?.routing.length) throw new UserError(`option --check-offload-prefetch ${replayed.join(',')}: needs --routing (they prefetch from a replayed routing)`);
  if (replayed.includes('predicted') && replay?.predictor === undefined) throw new UserError('option --check-offload-prefetch predicted: needs --predictor DIR');
  const ref = await Engine.load(model, { device: 'cuda' });
  const vocab = ref.config.vocabSize;
  const avoid = new Set([ref.config.bosTokenId, ref.config.eosTokenId]);
  const prompts = BATCHES.map((b, bi) => b.promptLengths.map((n, s) => [ref.config.bosTokenId, ...seededIds(seed * 977 + bi * 131 + s, n - 1, vocab, avoid)]));
  const run = async (e: Engine, i: number, recordLogits = false) =>
    (await e.generateAll({ prompts: prompts[i], maxNewTokens: newTokens, stopOnEos: false, recordLogits })).tokens;
  const reference: number[][][] = [];
  // under replay: one lane per prompt of the largest replayed batch, as long as its longest prompt + new tokens
  const lanes = replayed.length > 0
    ? fillLanes(replay!.routing, Math.max(...REPLAYED_BATCHES.map((i) => BATCHES[i].promptLengths.length)), Math.max(...REPLAYED_BATCHES.flatMap((i) => BATCHES[i].promptLengths)) + newTokens - 1)
    : null;
  const replayReference = new Map<number, number[][]>();
  try {
    for (let i = 0; i < BATCHES.length; i++) reference.push(await run(ref, i, true));
    if (lanes) {
      for (const i of REPLAYED_BATCHES) {
        ref.resetOffload({ routing: lanes.replay });  // all resident, routing forced from the lanes (sequence g -> prompt g)
        replayReference.set(i, await run(ref, i, true));
      }
    }
  } finally {
    ref.close();
  }
  log(`offload check: all-resident reference done (${BATCHES.length} batches x ${newTokens} tokens)`);
  const pool = Math.max(...caches);
  const shape = { batch: 4, contextTokens: 620 + newTokens, prefillRows: 2420 };
  const eng = await Engine.load(model, { device: 'cuda', cache: { slotsPerLayer: pool, policy: policies[0] }, poolSlots: pool, runShape: shape });
  const cases: OffloadCheckCase[] = [];
  try {
    for (const cache of caches) {
      for (const policy of policies) {
        // The check runs on the model's own routing, so next-gate is the prefetcher it can run (oracle and
        // predicted need a routing replay); its copies take the same device path as theirs.
        for (const prefetch of cache > 0 ? prefetches.filter((p) => !REPLAYED.has(p)) : ['none' as const])
        for (let i = 0; i < BATCHES.length; i++) {
          eng.resetOffload({ cache: { slotsPerLayer: cache, policy }, ...(prefetch !== 'none' ? { prefetch: { name: prefetch } } : {}) });
          cases.push(await runCase(i, cache, policy, prefetch));
        }
        // oracle and predicted: the same device copy path, prefetching what the replayed routing (or the
        // predictor run on it) names; compared with the all-resident engine under the same replay
        for (const prefetch of cache > 0 && lanes ? replayed : []) {
          for (const i of REPLAYED_BATCHES) {
            eng.resetOffload({ cache: { slotsPerLayer: cache, policy }, routing: lanes!.replay, prefetch: { name: prefetch, ...(prefetch === 'predicted' ? { predictor: replay!.predictor } : {}) } });
            cases.push({ ...(await runCase(i, cache, policy, prefetch, undefined, replayReference.get(i)!)), replayed: true });
          }
        }
      }
    }
    const E = ref.config.nRoutedExperts;
    if (caches.includes(E)) {
      const pinned = ref.config.moeLayers.map(() => Array.from({ length: E }, (_, e) => e));
      for (const resident of ['on', 'off'] as const) {
        for (let i = 0; i < BATCHES.length; i++) {
          eng.resetOffload({ cache: { slotsPerLayer: E, policy: 'static', pinned }, residentSteps: resident === 'on' });
          cases.push({ ...(await runCase(i, E, 'static', 'none', resident)), resident });
        }
      }
    }
  } finally {
    eng.close();
  }
  // resident steps on with every expert pinned: the check holds only if they ran
  const exercised = cases.every((c) => c.resident !== 'on' || c.residentSteps > 0);
  if (!exercised) log('offload check: FAILED: resident steps were allowed with every expert pinned but none ran');
  return { newTokens, batches: BATCHES, cases, allIdentical: cases.every((c) => c.identical) && exercised };

  async function runCase(i: number, cache: number, policy: PolicyName, prefetch: CheckPrefetch, resident?: 'on' | 'off', against = reference[i]): Promise<OffloadCheckCase> {
    const before = eng.offloadStats();
    const tokens = await run(eng, i);
    const after = eng.offloadStats();
    const diff = firstDifference(against, tokens);
    const residentSteps = (after?.residentForwards ?? 0) - (before?.residentForwards ?? 0);
    log(`offload check: cache ${cache} ${policy}${prefetch !== 'none' ? ` prefetch ${prefetch}` : ''}${REPLAYED.has(prefetch) ? ' (routing replayed)' : ''}${resident ? ` (every expert pinned, resident steps ${resident})` : ''} ${BATCHES[i].label}: ` +
      `${diff === null ? 'identical' : `DIFFERS at sequence ${diff.sequence} token ${diff.index}`}, ${residentSteps} resident steps`);
    return { label: BATCHES[i].label, cache, policy, prefetch, identical: diff === null, residentSteps, firstDifference: diff, bytesH2D: (after?.bytesH2D ?? 0) - (before?.bytesH2D ?? 0) };
  }
}
