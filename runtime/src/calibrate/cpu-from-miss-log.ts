/**
 * A calibration profile whose CPU job durations come from the runtime itself: the mean measured time of
 * the CPU jobs in offload bench files' miss-decision logs (each logged CPU decision keeps its job's wall
 * time), by token count (counts with at least `minSamples` jobs), per expert dtype: bf16's as `cpu.jobMs`,
 * int8's and int4's as `byExpertDtype.<d>.cpu.jobMs` (a dtype without logged jobs keeps bf16's, scaled:
 * sim/src/cost/expert-dtype.ts). Everything else is the base profile's, cpu.expertMs included: that is the
 * estimate the runtime's miss rule was given, so the simulator's rule keeps deciding as the runtime did while
 * its jobs last as long as the runtime's did (inside the runtime a job runs beside the other worker and the
 * copy engine, and after the layer's GPU work has left the worker idle: 0.43-0.69 ms at 1 token against
 * calibrate's back-to-back 0.43 on an H200 host; an H100 host's int8 jobs 0.36 against 0.30).
 *
 *   node dist/runtime/src/calibrate/cpu-from-miss-log.js --bench a.json[,b.json] --base sim/calibration/h200-measured.json --out F
 */
import { readFileSync } from 'node:fs';
import { loadCalibration, type CostModel, type TokenCurve } from '../../../sim/src/cost/calibration.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { requiredScriptArg } from '../../../core/src/options.js';
import type { MissLogSample } from '../bench/offload-bench.js';
import { collectCpuJobs, meanCurve, sampleCpuJobColumns } from '../offload/cpu-job-summary.js';

type Dtype = 'bf16' | 'int8' | 'int4';

/** The logged CPU jobs of one expert dtype's points (a bench point without expertDtype is bf16). */
export function cpuCurveFromLogs(benches: string[], dtype: Dtype = 'bf16', minSamples = 20): { curve: TokenCurve; jobs: number } {
  const byTokens = new Map<number, number[]>();
  let jobs = 0;
  for (const path of benches) {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { grid?: Array<{ expertDtype?: string; missLogSample?: MissLogSample | null }> };
    if (!Array.isArray(doc.grid)) throw new UserError(`--bench ${path}: not a bench.json`);
    for (const p of doc.grid) {
      const s = p.missLogSample;
      if (!s || (p.expertDtype ?? 'bf16') !== dtype) continue;
      jobs += collectCpuJobs(sampleCpuJobColumns(s), byTokens);
    }
  }
  return { curve: meanCurve(byTokens, minSamples), jobs };
}

export function withRuntimeCpuCurve(base: CostModel, benches: string[], minSamples = 20): CostModel {
  const out: CostModel = { ...base, cpu: { ...base.cpu }, sources: { ...(base.sources ?? {}) } };
  if (base.byExpertDtype) out.byExpertDtype = { ...base.byExpertDtype };
  const from = (jobs: number) => `mean wall time of ${jobs} CPU expert jobs logged by the CUDA runtime (${benches.join(', ')}), by token count; the rest is ${base.name}`;
  const found: string[] = [];
  for (const dtype of ['bf16', 'int8', 'int4'] as const) {
    const { curve, jobs } = cpuCurveFromLogs(benches, dtype, minSamples);
    if (curve.length === 0) continue;
    if (dtype === 'bf16') {
      out.cpu.jobMs = curve;
      out.sources!['cpu.jobMs'] = from(jobs);
    } else {
      const entry = base.byExpertDtype?.[dtype];
      if (!entry) throw new UserError(`--base ${base.name}: has no byExpertDtype.${dtype} entry for the logged ${dtype} CPU jobs (calibrate --expert-dtype ${dtype})`);
      out.byExpertDtype![dtype] = { ...entry, cpu: { ...entry.cpu, jobMs: curve } };
      out.sources![`byExpertDtype.${dtype}.cpu.jobMs`] = from(jobs);
    }
    found.push(dtype);
  }
  if (found.length === 0) throw new UserError(`--bench: no expert dtype has a token count with ${minSamples} logged CPU jobs`);
  return { ...out, name: `${base.name}-runtime-cpu`, label: `${base.label}; CPU job times (${found.join(', ')}) from the runtime's logged CPU jobs` };
}

if (process.argv[1] && process.argv[1].endsWith('cpu-from-miss-log.js')) {
  try {
    const profile = withRuntimeCpuCurve(loadCalibration(requiredScriptArg('--base')), requiredScriptArg('--bench').split(','));
    writeFileAtomic(requiredScriptArg('--out'), JSON.stringify(profile, null, 1) + '\n');
    const own = Object.entries(profile.byExpertDtype ?? {}).filter(([, e]) => e?.cpu.jobMs).map(([d, e]) => `, ${d} ${JSON.stringify(e!.cpu.jobMs)}`);
    process.stdout.write(`${requiredScriptArg('--out')}: cpu.jobMs ${JSON.stringify(profile.cpu.jobMs ?? null)}${own.join('')}\n`);
  } catch (err) {
    process.stderr.write(`cpu-from-miss-log: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
