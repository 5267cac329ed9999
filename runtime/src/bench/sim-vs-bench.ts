/**
 * The simulator against committed offload bench points: each point recomputed on the bench's own lanes with
 * a profile (per expert dtype, the run's CPU workers, its fill mode), beside what was measured. Used by the
 * simulator-vs-H200 tests and, written as JSON, by the report.
 *
 *   node dist/runtime/src/bench/sim-vs-bench.js --bench a/bench.json[,b/bench.json] --profile P --traces T1,T2,.. --out F
 * (--traces: the bench's routing files, in its --routing order). Prefetch `predicted` points are left out:
 * their plan needs the predictor, which the bench file does not hold.
 */
import { readFileSync } from 'node:fs';
import { loadCalibration, type CostModel } from '../../../sim/src/cost/calibration.js';
import { costModelForDtype } from '../../../sim/src/cost/expert-dtype.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { requiredScriptArg } from '../../../core/src/options.js';
import type { RoutingReplay } from '../offload/routing-replay.js';
import { cpuFillName } from '../offload/miss-options.js';
import { benchLanes, predictBenchPoint, withCpuWorkers, type BenchPrediction } from './sim-prediction.js';
import type { PolicyName } from '../../../sim/src/cache/types.js';
import type { ExpertDtype } from '../../../sim/src/cost/expert-layout.js';
import type { MissMode } from '../../../sim/src/timing/engine.js';

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
}

/** A recorded point simulated again on its own lanes with `profile` (per its dtype, CPU workers, fill mode). */
export function simulateRecordedPoint(p: RecordedPoint, warmup: number, profile: CostModel, replays: RoutingReplay[]): BenchPrediction {
  const shape = { batch: p.batch, prompt: p.prompt, newTokens: p.newTokens, warmup, repeats: p.repeats };
  const model = withCpuWorkers(costModelForDtype(profile, p.expertDtype ?? 'bf16').model, p.cpuWorkers);
  return predictBenchPoint(benchLanes(replays, shape), shape, { policy: p.policy, cacheSize: p.cache, prefetch: p.prefetch ?? 'none', miss: p.miss, calibration: model, cpuFill: p.cpuFill ?? true, cpuAdmit: p.cpuAdmit ?? true, residentSteps: p.residentStepsOn ?? false });
}

export function simVsBench(benches: string[], profile: CostModel, replays: RoutingReplay[]): SimVsMeasuredRow[] {
  const rows: SimVsMeasuredRow[] = [];
  for (const file of benches) {
    const b = JSON.parse(readFileSync(file, 'utf8'));
    if (!Array.isArray(b.grid) || !b.options) throw new UserError(`--bench ${file}: not a bench.json`);
    for (const p of b.grid) {
      if (p.prefetch === 'predicted' || p.cache === undefined) continue;
      const pred = simulateRecordedPoint(p, b.options.warmup, profile, replays);
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
    const rows = simVsBench(benches, loadCalibration(profileFile), replays);
    writeFileAtomic(requiredScriptArg('--out'), JSON.stringify({ generatedBy: `node dist/runtime/src/bench/sim-vs-bench.js (profile ${profileFile})`, profile: profileFile, rows }, null, 1) + '\n');
    process.stdout.write(`${requiredScriptArg('--out')}: ${rows.length} points\n`);
  } catch (err) {
    process.stderr.write(`sim-vs-bench: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
