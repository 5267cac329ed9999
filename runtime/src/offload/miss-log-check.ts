/**
 * Replays the runtime's logged miss decisions (Engine.takeMissLog) through the simulator's rule
 * (sim/src/cost/miss-rule.ts) with the costs the run used: the same inputs must give the same decisions.
 * The log keeps the copy backlog each layer's decisions started from (float32), so a decision whose two
 * estimates are within `tieMs` of each other is counted as a tie, not as a disagreement.
 */
import { interpolate } from '../../../sim/src/cost/cost-model.js';
import { decideMisses, type MissDecision } from '../../../sim/src/cost/miss-rule.js';
import type { NativeMissLog } from '../engine/native-binding.js';
import type { NativeMissSpec } from './miss-options.js';

export interface MissLogCheck {
  rows: number;
  layers: number;
  agree: number;
  ties: number;
  disagree: number;
  /** the first disagreeing row, for the report */
  firstDisagreement: { row: number; layer: number; expert: number; runtime: boolean; rule: boolean } | null;
}

function curve(flat: Float64Array): Array<[number, number]> {
  const c: Array<[number, number]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) c.push([flat[i], flat[i + 1]]);
  return c;
}

export function checkMissLog(log: NativeMissLog, spec: NativeMissSpec, tieMs = 1e-3): MissLogCheck {
  const gpu = curve(spec.gpuExpertMs);
  const cpu = curve(spec.cpuExpertMs);
  const costs = { copyMs: spec.copyMs, gpuMs: (n: number) => interpolate(gpu, n), cpuMs: (n: number) => interpolate(cpu, n) + spec.activationCopyMs };
  const out: MissLogCheck = { rows: log.rows, layers: 0, agree: 0, ties: 0, disagree: 0, firstDisagreement: null };
  const decisions: MissDecision[] = [];
  let i = 0;
  while (i < log.rows) {
    let j = i + 1;
    while (j < log.rows && !log.firstOfLayer[j]) j++;
    out.layers++;
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
    i = j;
  }
  return out;
}
