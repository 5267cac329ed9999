import type { EvictionPolicy } from './types.js';

/**
 * `lfru`: LRFU (Lee et al., "LRFU: a spectrum of policies that subsumes the LRU and LFU policies",
 * IEEE Trans. Computers 2001), a frequency-recency hybrid. Each expert has a combined recency and
 * frequency value CRF = sum over its past requests of d^(steps since that request); the victim has the
 * smallest CRF at the current step; ties go to the least recently accessed, then the lowest id.
 * d = 1 would be LFU, d -> 0 LRU. Every request counts (like `lfu`, history survives eviction).
 *
 * Exactness for the C++ twin: d^n is the table D[n] built by repeated multiplication in float64
 * (D[0] = 1, D[n] = D[n-1] * d), never pow(); CRF is updated at a request as 1 + CRF * D[now - last];
 * the comparison value is CRF * D[now - last]. All IEEE-754 double operations, so both sides agree bit for bit.
 */
export const LFRU_DEFAULT_DECAY = 0.9375;

export class LfruPolicy implements EvictionPolicy {
  readonly name = 'lfru' as const;
  readonly evicts = true;
  private readonly crf: Float64Array;
  private readonly lastStep: Int32Array;
  private pow: Float64Array;
  constructor(
    numExperts: number,
    private readonly lastAccess: Float64Array,
    readonly decay = LFRU_DEFAULT_DECAY,
  ) {
    if (!(decay > 0 && decay <= 1)) throw new Error(`lfru decay must be in (0, 1], got ${decay}`);
    this.crf = new Float64Array(numExperts);
    this.lastStep = new Int32Array(numExperts);
    this.pow = new Float64Array([1]);
  }
  private decayOver(n: number): number {
    if (n >= this.pow.length) {
      const grown = new Float64Array(Math.max(n + 1, this.pow.length * 2));
      grown.set(this.pow);
      for (let i = this.pow.length; i < grown.length; i++) grown[i] = grown[i - 1] * this.decay;
      this.pow = grown;
    }
    return this.pow[n];
  }
  requested(expert: number, step: number): void {
    this.crf[expert] = 1 + this.crf[expert] * this.decayOver(step - this.lastStep[expert]);
    this.lastStep[expert] = step;
  }
  pickVictim(slots: Int32Array, used: number, protectedAt: Int32Array, stamp: number, step: number): number {
    let victim = -1;
    let vv = Infinity;
    let vr = Infinity;
    for (let s = 0; s < used; s++) {
      const e = slots[s];
      if (protectedAt[e] === stamp) continue;
      const v = this.crf[e] * this.decayOver(step - this.lastStep[e]);
      const r = this.lastAccess[e];
      // smallest CRF now, then least recent, then lowest id
      if (v < vv || (v === vv && (r < vr || (r === vr && e < victim)))) {
        vv = v;
        vr = r;
        victim = e;
      }
    }
    return victim;
  }
}
