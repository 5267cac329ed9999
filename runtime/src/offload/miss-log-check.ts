/**
 * Replays the runtime's logged miss decisions (Engine.takeMissLog) through the simulator's rule
 * (sim/src/cost/miss-rule.ts) with the costs the run used: the same inputs must give the same decisions.
 * The log keeps the copy backlog each layer's decisions started from and the CPU correction factor they
 * used (float32), so a decision whose two estimates are within `tieMs` of each other is counted as a tie,
 * not as a disagreement. The factor itself is replayed too: the simulator's CpuCorrection, started at the
 * log's first factor and fed the logged CPU jobs layer by layer, must reach each layer's logged factor.
 */
import { interpolate } from '../../../sim/src/cost/cost-model.js';
import { CpuCorrection } from '../../../sim/src/cost/cpu-correction.js';
import { decideMisses, type MissDecision } from '../../../sim/src/cost/miss-rule.js';
import type { NativeMissLog } from '../engine/native-binding.js';
import { specCurve, type NativeMissSpec } from './miss-options.js';

export interface MissLogCheck {
  rows: number;
  layers: number;
  agree: number;
  ties: number;
  disagree: number;
  /** the first disagreeing row, for the report */
  firstDisagreement: { row: number; layer: number; expert: number; runtime: boolean; rule: boolean } | null;
  /** layers whose logged CPU factor differs from the replayed one by more than `factorTol`, and the largest difference */
  factorMismatches: number;
  factorMaxDiff: number;
}

export function checkMissLog(log: NativeMissLog, spec: NativeMissSpec, tieMs = 1e-3, factorTol = 1e-4): MissLogCheck {
  const gpu = specCurve(spec.gpuExpertMs);
  const cpu = specCurve(spec.cpuExpertMs);
  let factor = 1;
  const costs = { copyMs: spec.copyMs, gpuMs: (n: number) => interpolate(gpu, n), cpuMs: (n: number) => factor * interpolate(cpu, n) + spec.activationCopyMs };
  const out: MissLogCheck = { rows: log.rows, layers: 0, agree: 0, ties: 0, disagree: 0, firstDisagreement: null, factorMismatches: 0, factorMaxDiff: 0 };
  const twin = new CpuCorrection(spec.correctCpu);
  if (log.rows > 0) twin.factor = log.cpuFactor[0];
  const decisions: MissDecision[] = [];
  let i = 0;
  while (i < log.rows) {
    let j = i + 1;
    while (j < log.rows && !log.firstOfLayer[j]) j++;
    out.layers++;
    const diff = Math.abs(twin.factor - log.cpuFactor[i]);
    out.factorMaxDiff = Math.max(out.factorMaxDiff, diff);
    if (diff > factorTol) out.factorMismatches++;
    factor = log.cpuFactor[i];  // the decisions are checked with the factor the runtime used
    const cpuFree = new Array<number>(spec.workers).fill(0);
    decideMisses(spec.mode, costs, log.copyBacklogMs[i], cpuFree, log.tokens.subarray(i, j), decisions);
    for (let r = i; r < j; r++) {
      const d = decisions[r - i];
      const runtime = log.onCpu[r] === 1;
      if (d.onCpu === runtime) out.agree++;
      else if (Math.abs(d.viaCpuMs - d.viaCopyMs) <= tieMs) out.ties++;
      else {
        out.disagree++;
        out.firstDisagreement ??= { row: r, layer: log.layer[r], expert: log.expert[r], runtime, rule: d.onCpu };
      }
    }
    for (let r = i; r < j; r++) if (log.onCpu[r] === 1) twin.observe(log.cpuMeasuredMs[r], interpolate(cpu, log.tokens[r]));
    i = j;
  }
  return out;
}
