import { MARGIN_BINS, type NoiseFloor, type PathAgreement } from './agreement.js';
import type { PointResult } from './engine-bench.js';
import type { TargetResult } from './targets.js';
import type { BaselinePoint } from './transformers-baseline.js';

const f = (v: number | undefined, d = 2) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));
const gib = (b: unknown) => (typeof b === 'number' ? (b / 2 ** 30).toFixed(1) : '-');

/** The grid as a markdown table (engine figures, then transformers' and the ratios when present). */
export function gridTable(points: readonly PointResult[], baseline: readonly BaselinePoint[] | null): string {
  const head = ['batch', 'prompt', 'new', 'prefill ms', 'ms/token mean', 'p50', 'p99', 'tok/s', 'peak GiB'];
  if (baseline) head.push('hf prefill ms', 'hf ms/token', 'hf tok/s', 'prefill x', 'decode x');
  const rows = points.map((p) => {
    const r = [String(p.batch), String(p.prompt), String(p.newTokens), f(p.prefillMs.mean, 1), f(p.msPerToken.mean), f(p.msPerToken.p50), f(p.msPerToken.p99), f(p.decodeTokensPerSecond, 0), gib(p.device.enginePeakBytes)];
    if (baseline) {
      const b = baseline.find((x) => x.batch === p.batch && x.prompt === p.prompt && x.newTokens === p.newTokens);
      r.push(f(b?.prefillMs.mean, 1), f(b?.msPerToken.mean), f(b?.decodeTokensPerSecond, 0), f(b ? b.prefillMs.mean / p.prefillMs.mean : undefined, 1), f(b ? b.msPerToken.mean / p.msPerToken.mean : undefined, 1));
    }
    return r;
  });
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export function agreementTable(a: readonly PathAgreement[]): string {
  const head = ['compared', 'path', 'positions', 'top-1 agreement', 'logits rel err mean', 'p99', 'max', 'hidden rel err max (layer)', 'pass'];
  const rows = a.map((x) => {
    let worst = '-';
    if (x.hiddenRelError) {
      const m = Math.max(...x.hiddenRelError);
      worst = `${m.toExponential(2)} (${x.hiddenRelError.indexOf(m)})`;
    }
    return [x.compared, x.path, String(x.positions), `${(100 * x.top1Agreement).toFixed(2)}%`, x.logitsRelError.mean.toExponential(2), x.logitsRelError.p99.toExponential(2), x.logitsRelError.max.toExponential(2), worst, x.pass === null ? '(info)' : x.pass ? 'yes' : 'NO'];
  });
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export function targetsTable(t: readonly TargetResult[]): string {
  const head = ['target', 'value', 'limit', 'pass'];
  const rows = t.map((x) => [x.name, f(x.value), `${x.limit} ${x.unit}`, x.pass ? 'yes' : 'NO']);
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** Top-1 agreement by the reference's top-1/top-2 logit gap, one column per bin. */
export function marginTable(a: readonly PathAgreement[]): string {
  const head = ['compared', 'path', ...a[0].byReferenceMargin.map((b) => `gap ${b.margin}`)];
  const rows = a.map((x) => [x.compared, x.path, ...x.byReferenceMargin.map((b) => (b.positions ? `${(100 * b.top1Agreement).toFixed(1)}% of ${b.positions}` : '-'))]);
  void MARGIN_BINS;
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

export function noiseFloorText(n: NoiseFloor): string {
  const f = (x: { logitsRelErrorMean: number; hiddenRelErrorMax: number; top1Agreement: number }) =>
    `logits rel err mean ${x.logitsRelErrorMean.toExponential(2)}, worst layer ${x.hiddenRelErrorMax.toExponential(2)}, top-1 ${(100 * x.top1Agreement).toFixed(2)}%`;
  return [
    `Against transformers in float32: engine ${f(n.engineVsFp32)}; transformers-bf16 ${f(n.bf16VsFp32)}.`,
    `Engine at least as accurate as transformers-bf16: ${n.engineAtLeastAsAccurate ? 'yes' : 'NO'}.`,
  ].join('\n');
}
