/** The miss options that generate, chat and record-trace share (bench takes --miss as a list: bench.ts). */
import type { Command } from 'commander';

export function addMissFlags(cmd: Command): Command {
  return cmd
    .option('--miss <mode>', 'device cuda, offloaded: what to do with a missed expert: fetch (copy it to the GPU), cpu (compute it on the CPU), hybrid (whichever the cost model says finishes first)', 'fetch')
    .option('--cpu-workers <n>', '--miss cpu/hybrid: CPU experts computed at once (default: the calibration profile\'s choice)')
    .option('--cpu-threads <n>', '--miss cpu/hybrid: threads per CPU worker (default: the machine\'s threads / workers)')
    .option('--cpu-fill <how>', '--miss cpu/hybrid: what becomes of a miss computed on the CPU: the cache admits it and a background copy fills its slot (background), it is admitted and copied when the GPU needs it (lazy), or it is not admitted and nothing is copied (none; Fiddler\'s way): background, lazy or none (default none: the faster on the H200)')
    .option('--cpu-spin-us <us>', '--miss cpu/hybrid: idle CPU threads poll this long for the next layer before sleeping (default 2000)')
    .option('--cpu-rounding <how>', '--miss cpu/hybrid, bf16 experts: fast (the dpbf16 kernel, the default) or gpu-order (rounds exactly as the GPU\'s decode kernel, so CPU-computed misses change no logit; needs AVX-512BW)')
    .option('--cpu-estimate <how>', '--miss cpu/hybrid: the hybrid rule\'s CPU times: the profile\'s as they are (profile, the default), or corrected by the CPU jobs this run has finished (measured; not yet measured on a GPU machine)')
    .option('--calibration <file>', '--miss hybrid: the cost model (default: sim/calibration/h200-measured.json)');
}
