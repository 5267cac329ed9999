/** The table `calibrate` prints last: every figure of the new profile beside the reference profile's. */
import type { CostModel, TokenCurve } from '../../../sim/src/cost/calibration.js';
import { interpolate } from '../../../sim/src/cost/cost-model.js';

const fmt = (x: number) => (x === 0 ? '0' : Math.abs(x) >= 100 ? x.toFixed(0) : Number(x.toPrecision(3)).toString());

export function comparisonRows(profile: CostModel, reference: CostModel): Array<[string, string, string]> {
  const rows: Array<[string, string, string]> = [];
  const scalar = (name: string, a: number, b: number) => rows.push([name, fmt(a), fmt(b)]);
  scalar('expertBytes', reference.expertBytes, profile.expertBytes);
  scalar('transfer.h2dGBps', reference.transfer.h2dGBps, profile.transfer.h2dGBps);
  scalar('transfer.perCopyMs', reference.transfer.perCopyMs, profile.transfer.perCopyMs);
  scalar('transfer.copyEngines', reference.transfer.copyEngines, profile.transfer.copyEngines);
  const curve = (name: string, ref: TokenCurve, mine: TokenCurve) => {
    for (const [t, ms] of mine) rows.push([`${name} @${t}`, fmt(interpolate(ref, t)), fmt(ms)]);
  };
  curve('gpu.expertMs', reference.gpu.expertMs, profile.gpu.expertMs);
  curve('gpu.moeLayerOtherMs', reference.gpu.moeLayerOtherMs, profile.gpu.moeLayerOtherMs);
  curve('gpu.denseLayerMs', reference.gpu.denseLayerMs, profile.gpu.denseLayerMs);
  curve('gpu.headMs', reference.gpu.headMs, profile.gpu.headMs);
  for (const [ctx, c] of profile.gpu.byContext?.moeLayerOtherMs ?? []) {
    if (ctx === profile.gpu.byContext!.referenceContext) continue;
    for (const [t, ms] of c) rows.push([`gpu.moeLayerOtherMs @${t} ctx ${ctx}`, '-', fmt(ms)]);
  }
  scalar('cpu.workers', reference.cpu.workers, profile.cpu.workers);
  curve('cpu.expertMs', reference.cpu.expertMs, profile.cpu.expertMs);
  scalar('cpu.activationCopyMs', reference.cpu.activationCopyMs, profile.cpu.activationCopyMs);
  return rows;
}

export function comparisonTable(profile: CostModel, reference: CostModel): string {
  const head: [string, string, string] = ['quantity (ms unless named)', reference.name, profile.name];
  const rows = [head, ...comparisonRows(profile, reference)];
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: [string, string, string]) => `${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padStart(w[2])}`;
  return [line(head), '-'.repeat(w[0] + w[1] + w[2] + 4), ...rows.slice(1).map(line)].join('\n');
}
