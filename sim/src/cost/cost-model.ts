/** Durations (ms) from a calibration profile. */
import type { CostModel, TokenCurve } from './calibration.js';

export function interpolate(curve: TokenCurve, tokens: number): number {
  if (curve.length === 1) return curve[0][1];
  let i = 1;
  while (i < curve.length - 1 && curve[i][0] < tokens) i++;
  const [x0, y0] = curve[i - 1];
  const [x1, y1] = curve[i];
  return Math.max(0, y0 + ((y1 - y0) * (tokens - x0)) / (x1 - x0));
}

export class Costs {
  readonly copyMs: number;
  constructor(readonly model: CostModel) {
    this.copyMs = model.transfer.perCopyMs + model.expertBytes / (model.transfer.h2dGBps * 1e6);
  }
  gpuExpert(tokens: number): number {
    return interpolate(this.model.gpu.expertMs, tokens);
  }
  cpuExpert(tokens: number): number {
    return interpolate(this.model.cpu.expertMs, tokens) + this.model.cpu.activationCopyMs;
  }
  moeLayerOther(tokens: number): number {
    return interpolate(this.model.gpu.moeLayerOtherMs, tokens);
  }
  denseLayer(tokens: number): number {
    return interpolate(this.model.gpu.denseLayerMs, tokens);
  }
  head(tokens: number): number {
    return interpolate(this.model.gpu.headMs, tokens);
  }
}
