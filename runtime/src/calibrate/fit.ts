/**
 * The arithmetic of `calibrate`: medians of samples, the copy-cost fit (bandwidth and per-copy overhead)
 * and the two choices made from measurements (copy engines, CPU workers). Pure functions, tested against
 * hand-worked numbers in runtime/test/calibrate/fit.test.ts.
 */

export function median(samples: ArrayLike<number>): number {
  if (samples.length === 0) throw new Error('median of no samples');
  const s = Array.from(samples).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One timed group of host-to-device copies: `copies` copies moving `bytes` in all, taking `ms`. */
export interface CopyPoint {
  copies: number;
  bytes: number;
  ms: number;
}

export interface CopyFit {
  /** 1e9 bytes per second */
  gbps: number;
  /** fixed cost of each copy (ms), clamped at 0 */
  perCopyMs: number;
  /** root-mean-square residual of the fit (ms), before clamping */
  rmsMs: number;
}

/**
 * Least squares of ms = copies * o + bytes / bw over the points (no intercept: a group of copies costs
 * its copies' overheads plus its bytes at the link's bandwidth; the event pair's own cost is part of o).
 * Points must include at least two different bytes-per-copy ratios, else o and bw cannot be told apart.
 * Solved from the 2x2 normal equations in the unknowns o and s = 1 / bw (ms per byte).
 */
export function fitCopyCost(points: readonly CopyPoint[]): CopyFit {
  if (points.length < 2) throw new Error('fitCopyCost: need at least two points');
  let cc = 0, cb = 0, bb = 0, ct = 0, bt = 0;
  for (const p of points) {
    if (!(p.copies >= 1 && p.bytes > 0 && p.ms > 0)) throw new Error(`fitCopyCost: bad point ${JSON.stringify(p)}`);
    cc += p.copies * p.copies;
    cb += p.copies * p.bytes;
    bb += p.bytes * p.bytes;
    ct += p.copies * p.ms;
    bt += p.bytes * p.ms;
  }
  const det = cc * bb - cb * cb;
  // Relative determinant: zero when every point has the same bytes per copy.
  if (Math.abs(det) <= 1e-12 * cc * bb) throw new Error('fitCopyCost: all points have the same bytes per copy; overhead and bandwidth cannot be separated');
  const o = (ct * bb - bt * cb) / det;
  const s = (cc * bt - cb * ct) / det;
  if (!(s > 0)) throw new Error('fitCopyCost: the fitted time per byte is not positive (copies got faster with more bytes); the timings are noise');
  let sq = 0;
  for (const p of points) sq += (p.copies * o + p.bytes * s - p.ms) ** 2;
  return { gbps: 1 / s / 1e6, perCopyMs: Math.max(0, o), rmsMs: Math.sqrt(sq / points.length) };
}

/**
 * Copy engines for the simulator: 2 when two streams copying at once finish the same bytes at least 1.5x
 * faster than one stream (the simulator would then model two servers each at the one-stream bandwidth),
 * else 1 (a shared link: a second stream only splits the bandwidth).
 */
export function chooseCopyEngines(oneStreamMs: number, twoStreamMs: number): { engines: number; speedup: number } {
  const speedup = oneStreamMs / twoStreamMs;
  return { engines: speedup >= 1.5 ? 2 : 1, speedup };
}

/** One CPU configuration: `workers` experts at once, each on `threads` threads, `msPerExpert` each meanwhile. */
export interface CpuWorkerCandidate {
  workers: number;
  threads: number;
  msPerExpert: number;
}

/**
 * The CPU worker count for the simulator: the configuration that finishes `experts` experts (a decode
 * token's top-k at one layer, the most a batch-1 step can miss at once) soonest, ceil(experts / workers)
 * rounds of msPerExpert; ties go to fewer workers (each expert then finishes sooner).
 */
export function chooseCpuWorkers(candidates: readonly CpuWorkerCandidate[], experts: number): CpuWorkerCandidate & { makespanMs: number } {
  if (candidates.length === 0) throw new Error('chooseCpuWorkers: no candidates');
  let best: (CpuWorkerCandidate & { makespanMs: number }) | undefined;
  for (const c of candidates) {
    const makespanMs = Math.ceil(experts / c.workers) * c.msPerExpert;
    if (!best || makespanMs < best.makespanMs - 1e-12 || (Math.abs(makespanMs - best.makespanMs) <= 1e-12 && c.workers < best.workers)) {
      best = { ...c, makespanMs };
    }
  }
  return best!;
}
