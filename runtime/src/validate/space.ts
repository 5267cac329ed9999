/**
 * The configuration space of `validate --best`, declared once. For each dimension: every value the
 * simulator can evaluate, and the values the CUDA runtime can RUN today. The sweep covers the first; only
 * configurations whose every value is in the second are re-run on the GPU (the others are ranked, and the
 * output says they were not validated and why).
 *
 * When the runtime gains a value (issue 12: `--miss cpu|hybrid`, `--prefetch next-gate|predicted`; the
 * quantized-experts issue: another expert dtype), enabling it here is a one-line change in `runtime`; the
 * measurement (runtime/src/validate/measure.ts) must then pass it on to the engine, which is the part
 * issue 12 adds to the offload bench.
 */
import { POLICY_NAMES, type PolicyName } from '../../../sim/src/cache/types.js';
import { PREFETCH_NAMES, type PrefetchName } from '../../../sim/src/prefetch/sources.js';
import { MISS_MODES, type MissMode } from '../../../sim/src/timing/engine.js';

export const EXPERT_DTYPES = ['bf16'] as const;
export type ExpertDtype = (typeof EXPERT_DTYPES)[number];

export interface Dimension<T extends string> {
  /** values the simulator sweeps */
  simulator: readonly T[];
  /** values the CUDA runtime runs today */
  runtime: readonly T[];
  /** why the values the runtime lacks are missing (printed with the output) */
  runtimeLacks: string;
}

export const SPACE: { policy: Dimension<PolicyName>; prefetch: Dimension<PrefetchName>; miss: Dimension<MissMode>; dtype: Dimension<ExpertDtype> } = {
  policy: {
    simulator: POLICY_NAMES,
    runtime: ['lru', 'lfu', 'fifo', 'lfru', 'static'],
    runtimeLacks: 'belady and opt read the future: the runtime has them only with the run schedule record-trace sets up, not in the offload bench',
  },
  prefetch: {
    simulator: PREFETCH_NAMES,
    runtime: ['none'],
    runtimeLacks: 'the CUDA runtime prefetches (--prefetch next-gate|oracle|predicted, issue 12), but validate\'s measurement (measure.ts) does not pass a prefetcher to the engine yet',
  },
  miss: {
    simulator: MISS_MODES,
    runtime: ['fetch', 'cpu', 'hybrid'],
    runtimeLacks: '',
  },
  dtype: {
    simulator: EXPERT_DTYPES,
    runtime: ['bf16'],
    runtimeLacks: 'the runtime and the simulator have int8/int4 experts (--expert-dtype, issue 13), but validate\'s sweep and measurement do not take them yet',
  },
};

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
export function runtimeGaps(c: Configuration): string[] {
  const gaps: string[] = [];
  if (!SPACE.policy.runtime.includes(c.policy)) gaps.push(`policy ${c.policy}`);
  if (!SPACE.prefetch.runtime.includes(c.prefetch)) gaps.push(`prefetch ${c.prefetch}`);
  if (!SPACE.miss.runtime.includes(c.miss)) gaps.push(`miss ${c.miss}`);
  if (!SPACE.dtype.runtime.includes(c.dtype)) gaps.push(`dtype ${c.dtype}`);
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

/** Baselines validated beside the top N: naive on-demand loading, and fetch-only lru with the most slots. */
export function baselines(most: number): { role: string; config: Configuration }[] {
  const base = { prefetch: 'none' as const, miss: 'fetch' as const, dtype: 'bf16' as const };
  return [
    { role: 'naive on-demand (cache 0)', config: { policy: 'lru', cache: 0, ...base } },
    ...(most > 0 ? [{ role: `fetch-only lru, ${most} slots`, config: { policy: 'lru' as const, cache: most, ...base } }] : []),
  ];
}
