/**
 * The simulator against committed offload bench points: each point recomputed on the bench's own lanes with
 * a profile (per expert dtype, the run's CPU workers, its fill mode), beside what was measured. Used by the
 * simulator-vs-H200 tests and, written as JSON, by the report.
 *
 *   node dist/runtime/src/bench/sim-vs-bench.js --bench a/bench.json[,b/bench.json] --profile P --traces T1,T2,.. --out F
 * (--traces: the bench's routing files, in its --routing order). Prefetch `predicted` points are left out:
 * their plan needs the predictor, which the bench file does not hold.
 *
 * `--cpu-jobs point` gives each cpu/hybrid point's simulation the CPU job times that point measured (its
 * bench entry's cpuJobs.jobMs: its timed generations' jobs, from its whole miss log) instead of the profile's: the CPU of a shared
 * device host moves between points (reports/bench/h100-2026-12-07c: int8 jobs of 0.35 and 0.66 ms in one
 * grid), which no profile measured before the bench can know. It checks the timing model with the CPU
 * the run really had; the default (`profile`) is the simulator's prediction. `--cpu-jobs sample` does the
 * same from the point's committed miss-log sample (its first 400 decisions, in the warm-up generation), for
 * files from before cpuJobs: a weaker stand-in, since the sample holds a few steps.
 */
import { readFileSync } from 'node:fs';
import { loadCalibration, type CostModel } from '../../../sim/src/cost/calibration.js';
import { costModelForDtype } from '../../../sim/src/cost/expert-dtype.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { optionalScriptArg, parseChoiceOption, requiredScriptArg } from '../../../core/src/options.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import { cpuFillName, specCurve } from '../offload/miss-options.js';
import { benchLanes, predictBenchPoint, withCpuWorkers, type BenchPrediction } from './sim-prediction.js';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import type { ExpertDtype } from '../../../sim/src/cost/expert-layout.js';
import type { MissMode } from '../../../sim/src/timing/engine.js';
import type { CpuEstimate } from '../../../sim/src/cost/cpu-correction.js';
import { sampleCpuJobColumns, summarizeCpuJobs, type CpuJobSummary } from '../offload/cpu-job-summary.js';
import type { MissLogSample } from './offload-bench.js';
import type { TokenCurve } from '../../../sim/src/cost/calibration.js';

/** Whose CPU job times a re-simulation uses (see the header). */
export const CPU_JOB_SOURCES = ['profile', 'point', 'sample'] as const;
export type CpuJobSource = (typeof CPU_JOB_SOURCES)[number];

export interface SimVsMeasuredRow {
  bench: string;
  dtype: string;
  cache: number;
  policy: string;
  miss: string;
  /** --cpu-fill (null for fetch) */
  fill: string | null;
  prefetch: string;
  batch: number;
  prompt: number;
  measuredMs: number;
  simulatedMs: number;
  error: number;
  /** per decode MoE layer, measured (absent in files before the counters: null) and simulated: head and tail */
  layerHeadMs: { measured: number | null; simulated: number };
  layerTailMs: { measured: number | null; simulated: number };
  expertGpuMsPerStep?: { measured: number; simulated: number };
}

/** A grid point as a bench.json records it: the fields that decide its simulation. */
export interface RecordedPoint {
  batch: number;
  prompt: number;
  newTokens: number;
  repeats: number;
  cache: number;
  policy: PolicyName;
  miss: MissMode;
  prefetch?: 'none' | 'next-gate' | 'oracle';
  expertDtype?: ExpertDtype;
  cpuWorkers?: number | null;
  cpuFill?: boolean | null;
  cpuAdmit?: boolean | null;
  /** absent in files before resident steps existed: the runtime had none */
  residentStepsOn?: boolean;
  /** absent in files before the CPU correction: those runs decided with the profile's times */
  cpuEstimate?: CpuEstimate | null;
  /** absent in files before it (then --cpu-jobs point keeps the profile's for the point) */
  cpuJobs?: CpuJobSummary | null;
  missLogSample?: MissLogSample | null;
}

/** The CPU job times a re-simulation gives the point (null: the profile's). */
function pointJobMs(p: RecordedPoint, source: CpuJobSource): TokenCurve | null {
  let curve: TokenCurve | undefined;
  if (source === 'point') curve = p.cpuJobs?.jobMs;
  else if (source === 'sample' && p.missLogSample) {
    curve = summarizeCpuJobs(sampleCpuJobColumns(p.missLogSample), specCurve(p.missLogSample.spec.cpuExpertMs)).jobMs;
  }
  return curve && curve.length > 0 ? curve : null;
}

/** A recorded point simulated again on its own lanes with `profile` (per its dtype, CPU workers, fill mode). */
export function simulateRecordedPoint(p: RecordedPoint, warmup: number, profile: CostModel, replays: RoutingReplay[], cpuJobs: CpuJobSource = 'profile'): BenchPrediction {
  const shape = { batch: p.batch, prompt: p.prompt, newTokens: p.newTokens, warmup, repeats: p.repeats };
  let model = withCpuWorkers(costModelForDtype(profile, p.expertDtype ?? 'bf16').model, p.cpuWorkers);
  const own = cpuJobs === 'profile' ? null : pointJobMs(p, cpuJobs);
  if (own) model = { ...model, cpu: { ...model.cpu, jobMs: own } };
  return predictBenchPoint(benchLanes(replays, shape), shape, { policy: p.policy, cacheSize: p.cache, prefetch: p.prefetch ?? 'none', miss: p.miss, calibration: model, cpuFill: p.cpuFill ?? true, cpuAdmit: p.cpuAdmit ?? true, cpuEstimate: p.cpuEstimate ?? 'profile', residentSteps: p.residentStepsOn ?? false });
}

export function simVsBench(benches: string[], profile: CostModel, replays: RoutingReplay[], cpuJobs: CpuJobSource = 'profile'): SimVsMeasuredRow[] {
  const rows: SimVsMeasuredRow[] = [];
  for (const file of benches) {
    const b = JSON.parse(readFileSync(file, 'utf8'));
    if (!Array.isArray(b.grid) || !b.options) throw new UserError(`--bench ${file}: not a bench.json`);
    for (const p of b.grid) {
      if (p.prefetch === 'predicted' || p.cache === undefined) continue;
      const pred = simulateRecordedPoint(p, b.options.warmup, profile, replays, cpuJobs);
      const sim = pred.msPerToken.mean;
      const r4 = (x: number) => Number(x.toFixed(4));
      const measured = p.msPerToken.mean;
      rows.push({ bench: file, dtype: p.expertDtype ?? 'bf16', cache: p.cache, policy: p.policy, miss: p.miss, fill: cpuFillName(p.cpuFill, p.cpuAdmit), prefetch: p.prefetch ?? 'none', batch: p.batch, prompt: p.prompt, measuredMs: measured, simulatedMs: Number(sim.toFixed(4)), error: Number((sim / measured - 1).toFixed(5)),
        layerHeadMs: { measured: typeof p.layerHeadMs === 'number' ? r4(p.layerHeadMs) : null, simulated: r4(pred.layerHeadMs) },
        layerTailMs: { measured: typeof p.layerTailMs === 'number' ? r4(p.layerTailMs) : null, simulated: r4(pred.layerTailMs) },
        // MOE_TIME_EXPERT_LAUNCHES=1 benches: the routed-expert launches' GPU time per step against the simulator's
        ...(typeof p.expertGpuMsPerStep === 'number' ? { expertGpuMsPerStep: { measured: r4(p.expertGpuMsPerStep), simulated: r4(pred.expertGpuMsPerStep) } } : {}) });
    }
  }
  return rows;
}

if (process.argv[1] && process.argv[1].endsWith('sim-vs-bench.js')) {
  try {
    const profileFile = requiredScriptArg('--profile');
    const replays = requiredScriptArg('--traces').split(',').map((path) => ({ path, corpus: toSequences(readTrace(path)) }));
    const benches = requiredScriptArg('--bench').split(',');
    const cpuJobs = parseChoiceOption('--cpu-jobs', optionalScriptArg('--cpu-jobs', 'profile'), CPU_JOB_SOURCES);
    const rows = simVsBench(benches, loadCalibration(profileFile), replays, cpuJobs);
    const generatedBy = `node dist/runtime/src/bench/sim-vs-bench.js (profile ${profileFile}${cpuJobs !== 'profile' ? `, --cpu-jobs ${cpuJobs}` : ''})`;
    writeFileAtomic(requiredScriptArg('--out'), JSON.stringify({ generatedBy, profile: profileFile, ...(cpuJobs !== 'profile' ? { cpuJobs } : {}), rows }, null, 1) + '\n');
    process.stdout.write(`${requiredScriptArg('--out')}: ${rows.length} points\n`);
  } catch (err) {
    process.stderr.write(`sim-vs-bench: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
