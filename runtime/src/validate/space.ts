/**
 * The configuration space of `validate --best`, declared once. For each dimension: every value the
 * simulator can evaluate, and the values the CUDA runtime can RUN under validate's measurement (the offload
 * bench with the routing replayed). The sweep covers the first; only configurations whose every value is in
 * the second are re-run on the GPU (the others are ranked, and the output says they were not validated and why).
 *
 * Prefetch: oracle (the replayed routing of the layers ahead) runs under replay; predicted runs when
 * validate is given the predictor (`--predictor DIR`: the plan annotates the lanes with its predictions, the
 * runtime recomputes the same ones from the same lanes, prefetch-options.ts); next-gate never does (below).
 * Expert dtype: the sweep's dtypes are `--expert-dtype`'s list (default bf16); the runtime runs all three.
 */
import { POLICY_NAMES, type PolicyName } from '../../../sim/src/cache/types.js';
import { PREFETCH_NAMES, type PrefetchName } from '../../../sim/src/prefetch/sources.js';
import { MISS_MODES, type MissMode } from '../../../sim/src/timing/engine.js';
import { EXPERT_DTYPES, type ExpertDtype } from '../../../sim/src/cost/expert-layout.js';

export { EXPERT_DTYPES, type ExpertDtype };

export interface Dimension<T extends string> {
  /** values the simulator sweeps */
  simulator: readonly T[];
  /** values the CUDA runtime runs under validate's measurement */
  runtime: readonly T[];
  /** why the values the runtime lacks are missing (printed with the output) */
  runtimeLacks: string;
}

export interface Space {
  policy: Dimension<PolicyName>;
  prefetch: Dimension<PrefetchName>;
  miss: Dimension<MissMode>;
  dtype: Dimension<ExpertDtype>;
}

/** Why next-gate is never validated: the measurement replays routing, which the model's own gate does not predict. */
export const NEXT_GATE_UNDER_REPLAY =
  "next-gate cannot be validated under routing replay: it applies the random-weight model's own next router, which predicts that model's routing, not the replayed one (the runtime refuses --prefetch next-gate with --routing)";
/** Why predicted is simulation-only without the predictor. */
export const PREDICTED_NEEDS_PREDICTOR = 'predicted runs on the GPU only with validate --predictor DIR (the exported predictor, train-predictor --out DIR), which was not given';

export interface SpaceOptions {
  /** validate was given --predictor DIR */
  predictor: boolean;
  /** the expert dtypes swept (--expert-dtype) */
  dtypes: readonly ExpertDtype[];
}

export function buildSpace(o: SpaceOptions): Space {
  return {
    policy: {
      simulator: POLICY_NAMES,
      runtime: ['lru', 'lfu', 'fifo', 'lfru', 'static'],
      runtimeLacks: 'belady and opt read the future: the runtime has them only with the run schedule record-trace sets up, not in the offload bench',
    },
    prefetch: {
      simulator: PREFETCH_NAMES,
      runtime: o.predictor ? ['none', 'oracle', 'predicted'] : ['none', 'oracle'],
      runtimeLacks: [NEXT_GATE_UNDER_REPLAY, ...(o.predictor ? [] : [PREDICTED_NEEDS_PREDICTOR])].join('; '),
    },
    miss: {
      simulator: MISS_MODES,
      runtime: ['fetch', 'cpu', 'hybrid'],
      runtimeLacks: '',
    },
    dtype: {
      simulator: o.dtypes,
      runtime: o.dtypes.filter((d) => (EXPERT_DTYPES as readonly string[]).includes(d)),
      runtimeLacks: '',
    },
  };
}

/** The default space: bf16 experts, no predictor. */
export const SPACE: Space = buildSpace({ predictor: false, dtypes: ['bf16'] });

export interface Configuration {
  policy: PolicyName;
  /** expert slots per MoE layer (0: naive on-demand loading) */
  cache: number;
  prefetch: PrefetchName;
  miss: MissMode;
  dtype: ExpertDtype;
}

export const configKey = (c: Configuration) => `${c.policy} c${c.cache} prefetch ${c.prefetch} miss ${c.miss} ${c.dtype}`;

/** The dimensions whose value the runtime cannot run (empty: runnable). */
export function runtimeGaps(c: Configuration, space: Space = SPACE): string[] {
  const gaps: string[] = [];
  if (!space.policy.runtime.includes(c.policy)) gaps.push(`policy ${c.policy}`);
  if (!space.prefetch.runtime.includes(c.prefetch)) gaps.push(`prefetch ${c.prefetch}`);
  if (!space.miss.runtime.includes(c.miss)) gaps.push(`miss ${c.miss}`);
  // The runtime stores experts in every dtype (issue 13); a baseline's bf16 counts even when the sweep leaves bf16 out.
  if (!(EXPERT_DTYPES as readonly string[]).includes(c.dtype)) gaps.push(`dtype ${c.dtype}`);
  return gaps;
}

/**
 * Slot counts swept for a budget that holds at most `most` slots per layer: the most, a half and a quarter
 * of it. More slots never cost time in this model except through the policy's choices, so the ladder shows
 * how much the budget matters without sweeping every count (each configuration is a full replay).
 */
export function slotLadder(most: number): number[] {
  return [...new Set([Math.floor(most / 4), Math.floor(most / 2), most])].filter((c) => c >= 1).sort((a, b) => a - b);
}

/**
 * Baselines validated beside the top N: naive on-demand loading, and fetch-only lru with the most slots
 * (`most`: bf16's, whatever dtypes the sweep has: the baselines are the unoptimised runtime).
 */
export function baselines(most: number): { role: string; config: Configuration }[] {
  const base = { prefetch: 'none' as const, miss: 'fetch' as const, dtype: 'bf16' as const };
  return [
    { role: 'naive on-demand (cache 0)', config: { policy: 'lru', cache: 0, ...base } },
    ...(most > 0 ? [{ role: `fetch-only lru, ${most} slots`, config: { policy: 'lru' as const, cache: most, ...base } }] : []),
  ];
}
