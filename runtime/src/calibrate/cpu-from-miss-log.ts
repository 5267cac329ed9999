/**
 * A calibration profile whose CPU job durations come from the runtime itself: the mean measured time of
 * the CPU jobs in offload bench files' miss-decision logs (each logged CPU decision keeps its job's wall
 * time), by token count (counts with at least `minSamples` jobs), as `cpu.jobMs`. Everything else is the
 * base profile's, cpu.expertMs included: that is the estimate the runtime's miss rule was given, so the
 * simulator's rule keeps deciding as the runtime did while its jobs last as long as the runtime's did
 * (inside the runtime a job runs beside the other worker and the copy engine, 0.43-0.69 ms at 1 token
 * against calibrate's isolated 0.43).
 *
 *   node dist/runtime/src/calibrate/cpu-from-miss-log.js --bench a.json[,b.json] --base sim/calibration/h200-measured.json --out F
 */
import { readFileSync } from 'node:fs';
import { loadCalibration, type CostModel, type TokenCurve } from '../../../sim/src/cost/calibration.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { requiredScriptArg } from '../../../core/src/options.js';
import type { MissLogSample } from '../bench/offload-bench.js';

// The mean, not the median: the timing model adds job durations up (a worker's jobs run back to back), and
// the logged times are skewed to the right (1 token: median 0.50 ms, mean 0.53, p90 0.68).
function mean(v: number[]): number {
  return v.reduce((a, b) => a + b, 0) / v.length;
}

export function cpuCurveFromLogs(benches: string[], minSamples = 20): { curve: TokenCurve; jobs: number } {
  const byTokens = new Map<number, number[]>();
  let jobs = 0;
  for (const path of benches) {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { grid?: Array<{ missLogSample?: MissLogSample | null }> };
    if (!Array.isArray(doc.grid)) throw new UserError(`--bench ${path}: not a bench.json`);
    for (const p of doc.grid) {
      const s = p.missLogSample;
      if (!s) continue;
      const c = s.columns;
      for (let i = 0; i < s.rows; i++) {
        if (c.onCpu[i] !== 1 || !(c.cpuMeasuredMs[i] >= 0)) continue;
        const v = byTokens.get(c.tokens[i]) ?? [];
        v.push(c.cpuMeasuredMs[i]);
        byTokens.set(c.tokens[i], v);
        jobs++;
      }
    }
  }
  const curve: TokenCurve = [...byTokens.entries()].filter(([, v]) => v.length >= minSamples).sort((a, b) => a[0] - b[0]).map(([n, v]) => [n, Number(mean(v).toFixed(4))]);
  if (curve.length === 0) throw new UserError(`--bench: no token count has ${minSamples} logged CPU jobs`);
  return { curve, jobs };
}

export function withRuntimeCpuCurve(base: CostModel, benches: string[]): CostModel {
  const { curve, jobs } = cpuCurveFromLogs(benches);
  return {
    ...base,
    name: `${base.name}-runtime-cpu`,
    label: `${base.label}; cpu.jobMs from the runtime's logged CPU jobs`,
    cpu: { ...base.cpu, jobMs: curve },
    sources: {
      ...(base.sources ?? {}),
      'cpu.jobMs': `mean wall time of ${jobs} CPU expert jobs logged by the CUDA runtime (${benches.join(', ')}), by token count; the rest is ${base.name}`,
    },
  };
}

if (process.argv[1] && process.argv[1].endsWith('cpu-from-miss-log.js')) {
  try {
    const profile = withRuntimeCpuCurve(loadCalibration(requiredScriptArg('--base')), requiredScriptArg('--bench').split(','));
    writeFileAtomic(requiredScriptArg('--out'), JSON.stringify(profile, null, 1) + '\n');
    process.stdout.write(`${requiredScriptArg('--out')}: cpu.jobMs ${JSON.stringify(profile.cpu.jobMs)}\n`);
  } catch (err) {
    process.stderr.write(`cpu-from-miss-log: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
