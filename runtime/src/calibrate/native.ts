/**
 * The typed surface of the addon's `calibrate` export (native/addon/calibrate_binding.cpp). Every method
 * returns raw samples in ms; runtime/src/calibrate/ takes the medians and builds the profile.
 */
import type { NativeModelConfig } from '../engine/native-binding.js';
import { loadNativeAddon } from '../engine/native-binding.js';
import { UserError } from '../../../core/src/errors.js';

export interface NativeCpuInfo {
  hardwareThreads: number;
  features: string;
  bestIsa: string;
}

export interface NativeDeviceInfo {
  name: string;
  totalGiB: number;
  smCount: number;
  computeCapability: string;
  asyncEngines: number;
  runtimeVersion: number;
  driverVersion: number;
}

export interface NativeCpuCalibrator {
  isa(): string;
  /** issue 13: the expert format it times (absent on builds before it: bf16) */
  expertDtype?(): string;
  expertMs(tokens: number, threads: number, concurrent: number, iters: number, repeats: number): Float64Array;
}

export type GpuPart = 'moe' | 'dense' | 'head';
/** native CudaCalibrator::LayerStepMode (calibrate.h) */
export type LayerStepMode = 'graph' | 'eager' | 'eager-join';

export interface NativeCudaCalibrator {
  device(): NativeDeviceInfo;
  /** issue 13: the expert format it times (absent on builds before it: bf16) */
  expertDtype?(): string;
  copyMs(experts: number, oneCopy: boolean, streams: number, repeats: number): Float64Array;
  expertMs(kernel: 'decode' | 'grouped', tokens: number, repeats: number): Float64Array;
  /** one decode-kernel launch over `experts` experts x `tokens` tokens each (absent on builds before it) */
  launchMs?(experts: number, tokens: number, repeats: number): Float64Array;
  partMs(part: GpuPart, batch: number, context: number, graph: boolean, repeats: number): Float64Array;
  /**
   * an offloaded-style MoE layer step (absent on builds before it): `eager` with the routing's host sync, `eager-join`
   * with a CPU experts' join besides, or `graph` replayed; every mode's expert launch reads experts 0..k-1
   */
  layerStepMs?(batch: number, context: number, mode: LayerStepMode, repeats: number): Float64Array;
  activationMs(tokens: number, repeats: number): Float64Array;
  /** host-to-device copies kept back to back (true) or stopped (false), for CPU timings beside them (absent on
   *  builds before it); stopping returns the copies' mean wall ms per expert over the load (older builds: undefined) */
  copyLoad?(on: boolean): number | undefined;
  close(): void;
}

export interface NativeCalibrate {
  cpuInfo(): NativeCpuInfo;
  cudaBuilt(): boolean;
  /** dtype / group (issue 13): the experts timed are quantized so (default bf16) */
  CpuCalibrator: new (config: NativeModelConfig, pool: number, isa: string, dtype?: string, group?: number) => NativeCpuCalibrator;
  CudaCalibrator: new (config: NativeModelConfig, expertPool: number, layerCopies: number, dtype?: string, group?: number) => NativeCudaCalibrator;
}

export function loadCalibrateNative(): NativeCalibrate {
  const addon = loadNativeAddon() as unknown as { calibrate?: NativeCalibrate };
  if (!addon.calibrate) throw new UserError('the native engine was built without calibrate support: rebuild it with `npm run build:native`');
  return addon.calibrate;
}

/** The clear refusal for `--device cuda` on a build without the CUDA backend (CI, machines without a GPU). */
export const NO_CUDA_MESSAGE =
  'this build has no CUDA backend (the native engine was built where nvcc, the CUDA toolkit or cuBLAS were missing), ' +
  'so calibrate cannot measure GPU figures here; run it on the GPU machine (tools/gpu/README.md), or measure the CPU ' +
  'figures only with --device cpu --cpu-only --base <profile>';
