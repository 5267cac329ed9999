/** The raw-measurements document written next to the profile (`<profile>.raw.json`). */
import type { NativeCpuInfo, NativeDeviceInfo } from './native.js';

export const RAW_FORMAT = 'moe-offload-calibrate-raw-v1';

export interface Sampled {
  /** every timed sample (ms) */
  samples: number[];
  medianMs: number;
}

export interface RawCopy extends Sampled {
  experts: number;
  oneCopy: boolean;
  streams: number;
}
export interface RawGpuExpert extends Sampled {
  kernel: 'decode' | 'grouped';
  tokens: number;
}
export interface RawPart extends Sampled {
  part: 'moe' | 'dense' | 'head';
  batch: number;
  context: number;
  graph: boolean;
  /** set when the graph replay failed and eager launches were timed instead */
  graphError?: string;
}
export interface RawActivation extends Sampled {
  tokens: number;
}
export interface RawCpuExpert extends Sampled {
  tokens: number;
  threads: number;
  /** experts running at once (1: alone) */
  workers: number;
}

export interface RawGpu {
  device: NativeDeviceInfo;
  copies: RawCopy[];
  experts: RawGpuExpert[];
  /** multi-expert launches (measure-launch.ts); null: the addon cannot time them */
  launches?: import('./measure-launch.js').RawLaunch[] | null;
  parts: RawPart[];
  /** offloaded-style layer steps, eager + synchronised and as a graph (measure-layer-step.ts); null: the addon cannot time them */
  layerSteps?: import('./measure-layer-step.js').RawLayerStep[] | null;
  activation: RawActivation[];
}

export interface RawCpu {
  info: NativeCpuInfo;
  isa: string;
  poolExperts: number;
  threads: number[];
  experts: RawCpuExpert[];
}

export interface RawDocument {
  /** issue 13: per quantized dtype (calibrate --expert-dtype), absent for bf16 only */
  byExpertDtype?: import('./measure-dtype.js').RawDtype[];
  format: typeof RAW_FORMAT;
  createdAt: string;
  command: string;
  model: { source: string; expertBytes: number };
  quick: boolean;
  gpu: RawGpu | null;
  cpu: RawCpu;
  /** CPU experts alone and beside the copy load (device cuda) */
  cpuUnderCopy?: import('./measure-cpu-under-copy.js').RawCpuUnderCopy[];
  /** numbers derived from the samples (fits and choices), as written into the profile */
  derived: Record<string, unknown>;
}

export function sampled(samples: Float64Array | number[], med: (s: ArrayLike<number>) => number): Sampled {
  const s = Array.from(samples);
  return { samples: s, medianMs: med(s) };
}
