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
 */
import type { PolicyName } from '../../../sim/src/cache/types.js';
import { Engine } from '../engine/index.js';
import { seededIds } from './grid.js';

export interface OffloadCheckCase {
  label: string;
  cache: number;
  policy: PolicyName;
  /** issue 12: the prefetcher of the offloaded run (prefetch must not change arithmetic) */
  prefetch: 'none' | 'next-gate';
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
  prefetches: Array<'none' | 'next-gate'> = ['none'],
): Promise<OffloadCheck> {
  const ref = await Engine.load(model, { device: 'cuda' });
  const vocab = ref.config.vocabSize;
  const avoid = new Set([ref.config.bosTokenId, ref.config.eosTokenId]);
  const prompts = BATCHES.map((b, bi) => b.promptLengths.map((n, s) => [ref.config.bosTokenId, ...seededIds(seed * 977 + bi * 131 + s, n - 1, vocab, avoid)]));
  const run = async (e: Engine, i: number, recordLogits = false) =>
    (await e.generateAll({ prompts: prompts[i], maxNewTokens: newTokens, stopOnEos: false, recordLogits })).tokens;
  const reference: number[][][] = [];
  try {
    for (let i = 0; i < BATCHES.length; i++) reference.push(await run(ref, i, true));
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
        for (const prefetch of cache > 0 ? prefetches : ['none' as const])
        for (let i = 0; i < BATCHES.length; i++) {
          eng.resetOffload({ cache: { slotsPerLayer: cache, policy }, ...(prefetch !== 'none' ? { prefetch: { name: prefetch } } : {}) });
          cases.push(await runCase(i, cache, policy, prefetch));
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

  async function runCase(i: number, cache: number, policy: PolicyName, prefetch: 'none' | 'next-gate', resident?: 'on' | 'off'): Promise<OffloadCheckCase> {
    const before = eng.offloadStats();
    const tokens = await run(eng, i);
    const after = eng.offloadStats();
    const diff = firstDifference(reference[i], tokens);
    const residentSteps = (after?.residentForwards ?? 0) - (before?.residentForwards ?? 0);
    log(`offload check: cache ${cache} ${policy}${prefetch !== 'none' ? ` prefetch ${prefetch}` : ''}${resident ? ` (every expert pinned, resident steps ${resident})` : ''} ${BATCHES[i].label}: ` +
      `${diff === null ? 'identical' : `DIFFERS at sequence ${diff.sequence} token ${diff.index}`}, ${residentSteps} resident steps`);
    return { label: BATCHES[i].label, cache, policy, prefetch, identical: diff === null, residentSteps, firstDifference: diff, bytesH2D: (after?.bytesH2D ?? 0) - (before?.bytesH2D ?? 0) };
  }
}
