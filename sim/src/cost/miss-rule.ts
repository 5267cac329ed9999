/**
 * The miss rule: fetch a missed expert or compute it on the CPU. One rule for the simulator and the CUDA
 * runtime (native/include/moe/offload/miss_policy.h is the same arithmetic in C++; a test replays the
 * runtime's logged decisions through this function).
 *
 * List scheduling in the layer's miss order (ascending expert id): the copy engine is free in
 * `copyBacklogMs`, CPU worker w in cpuFree[w] (ms from now). For a miss with n tokens
 *   viaCopy = copyFree + copyMs + gpuMs(n)          (its copy, then its GPU launch)
 *   viaCpu  = min_w cpuFree[w] + cpuMs(n)           (cpuMs includes the activations' round trip)
 * hybrid takes the CPU when viaCpu < viaCopy, cpu always, fetch never; the chosen resource's free time
 * advances. The background fill of a CPU-computed expert that the cache keeps is queued after the layer's
 * demand copies, so it enters the next layer's backlog, not this layer's estimates.
 */
import type { MissMode } from '../timing/engine.js';

export interface MissCostsFn {
  copyMs: number;
  gpuMs(tokens: number): number;
  cpuMs(tokens: number): number;
}

export interface MissDecision {
  onCpu: boolean;
  viaCopyMs: number;
  viaCpuMs: number;
}

/** Decides `tokens.length` misses in order; cpuFree is updated in place. Returns the copy backlog after them. */
export function decideMisses(mode: MissMode, costs: MissCostsFn, copyBacklogMs: number, cpuFree: number[], tokens: ArrayLike<number>, out: MissDecision[]): number {
  if (cpuFree.length === 0) throw new Error('miss rule: at least one CPU worker is needed');
  out.length = tokens.length;
  let copyFree = Math.max(0, copyBacklogMs);
  for (let i = 0; i < tokens.length; i++) {
    const n = tokens[i];
    let w = 0;
    for (let j = 1; j < cpuFree.length; j++) if (cpuFree[j] < cpuFree[w]) w = j;
    const viaCopyMs = copyFree + costs.copyMs + costs.gpuMs(n);
    const viaCpuMs = cpuFree[w] + costs.cpuMs(n);
    const onCpu = mode === 'cpu' || (mode === 'hybrid' && viaCpuMs < viaCopyMs);
    if (onCpu) cpuFree[w] = viaCpuMs;
    else copyFree += costs.copyMs;
    out[i] = { onCpu, viaCopyMs, viaCpuMs };
  }
  return copyFree;
}
