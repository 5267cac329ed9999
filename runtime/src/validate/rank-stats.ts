/**
 * The statistics `validate --best` reports: ranks with ties, Spearman's rank correlation between the
 * simulator's order and the measured order, and the regret of the simulator's pick.
 */

/** Ranks 1..n of `xs` ascending; tied values share the mean of the ranks they span (fractional ranking). */
export function ranks(xs: readonly number[]): number[] {
  const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  const r = new Array<number>(xs.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && xs[order[j + 1]] === xs[order[i]]) j++;
    const mean = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[order[k]] = mean;
    i = j + 1;
  }
  return r;
}

/**
 * Spearman's rho: the Pearson correlation of the two rank vectors (exact with ties, unlike 1 - 6 sum d^2 /
 * (n (n^2 - 1)), which it equals when there are none). null when it is undefined: fewer than 2 values, or
 * one side constant.
 */
export function spearman(a: readonly number[], b: readonly number[]): number | null {
  if (a.length !== b.length) throw new Error(`spearman: ${a.length} against ${b.length} values`);
  if (a.length < 2) return null;
  const ra = ranks(a);
  const rb = ranks(b);
  const mean = (ra.length + 1) / 2;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < ra.length; i++) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) ** 2;
    sbb += (rb[i] - mean) ** 2;
  }
  if (saa === 0 || sbb === 0) return null;
  return sab / Math.sqrt(saa * sbb);
}

/**
 * Regret of the simulator's pick (lower is better, e.g. ms per token): how much worse its measured value is
 * than the best measured one, as a fraction (0: the pick was the measured best).
 */
export function regret(pickMeasured: number, measured: readonly number[]): number {
  if (measured.length === 0) throw new Error('regret: no measured values');
  const best = Math.min(...measured);
  return pickMeasured / best - 1;
}

/** Relative error of a prediction: predicted / measured - 1 (negative: the simulator is low). */
export const relativeError = (predicted: number, measured: number) => predicted / measured - 1;
