/**
 * What `calibrate` measures: the points of every curve, repeats and pool sizes, full or --quick.
 * The full plan is sized to a couple of minutes on the GPU machine; --quick is for tests and a first look.
 */

export interface CalibratePlan {
  quick: boolean;
  /** timed samples per measurement (medians are taken over these) */
  repeats: number;
  /** experts per host-to-device copy group (one copy of n experts, and n copies back to back) */
  copyExperts: number[];
  /** tokens per routed expert on the GPU */
  gpuExpertTokens: number[];
  /** decode batches of the non-expert parts */
  batches: number[];
  /** context lengths (cached tokens per row) of the non-expert parts; the profile's main curves use referenceContext */
  contexts: number[];
  referenceContext: number;
  /** rows per step that the backend replays as a CUDA graph (CudaBackend::kGraphMaxRows) */
  graphMaxRows: number;
  /** rows up to which the backend runs routed experts with expert_ffn_decode (CudaBackend::kGemvMaxRows) */
  gemvMaxRows: number;
  /** experts the CUDA calibrator keeps on the GPU (at least the largest launch: its experts must be distinct) */
  gpuExpertPool: number;
  /** experts per launch and tokens per expert of the multi-expert launches (measure-launch.ts) */
  launchExperts: number[];
  launchTokens: number[];
  layerCopies: number;
  /** tokens per expert on the CPU */
  cpuTokens: number[];
  /** tokens per CPU job (a missed expert's rows at decode: mostly 1-4) timed alone and beside the copy load */
  cpuJobTokens: number[];
  /** bytes of the CPU cold-expert pool (more than the last-level cache) */
  cpuPoolBytes: number;
  /** target wall time of one CPU sample (ms) */
  cpuSampleMs: number;
  activationTokens: number[];
}

export const DEFAULT_THREADS = [1, 4, 8, 16];

export function makePlan(quick: boolean): CalibratePlan {
  return {
    quick,
    repeats: quick ? 3 : 7,
    copyExperts: [1, 4, 16],
    gpuExpertTokens: quick ? [1, 16] : [1, 16, 64, 256],
    batches: quick ? [1, 16] : [1, 16, 64, 256],
    contexts: quick ? [512] : [128, 512, 2048, 4096],
    referenceContext: 512,
    graphMaxRows: 64,
    gemvMaxRows: 32,
    gpuExpertPool: 64,
    launchExperts: quick ? [1, 16] : [1, 4, 16, 64],
    launchTokens: quick ? [1, 4] : [1, 2, 4, 16],
    layerCopies: quick ? 2 : 4,
    cpuTokens: quick ? [1, 4] : [1, 4, 16, 64],
    cpuJobTokens: quick ? [1, 4] : [1, 2, 4, 8, 16],
    cpuPoolBytes: quick ? 64e6 : 1e9,
    cpuSampleMs: quick ? 5 : 20,
    activationTokens: quick ? [1] : [1, 16, 64],
  };
}
