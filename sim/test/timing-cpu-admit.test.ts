/**
 * --cpu-fill none (cpuAdmit false): a miss the rule puts on the CPU is not admitted to the cache, so
 * nothing is copied for it and the cache keeps what it held; prefill steps (below decodeFrom) fetch every
 * miss. Hand-made routing: one MoE layer, top-2, experts {1, 2} at every position, one slot.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../src/index.js';
import { cpuFillConfig, DEFAULT_CPU_FILL } from '../src/timing/engine.js';
import { handCorpus, roundCosts } from './helpers.js';

const costs = (copyMs: number) => roundCosts('round-admit', copyMs);

const three = handCorpus([[[[1, 2]], [[1, 2]], [[1, 2]]]]);
const run = (o: { miss: 'fetch' | 'cpu' | 'hybrid'; admit?: boolean; decodeFrom?: number; copyMs?: number }) =>
  runSimulation(three, { policy: 'lru', cacheSize: 1, batch: 1, prefetch: 'none', miss: o.miss, cpuFill: true, cpuAdmit: o.admit ?? true, decodeFrom: o.decodeFrom, calibration: costs(o.copyMs ?? 1) });

describe('CPU experts not admitted to the cache (cpuAdmit false)', () => {
  it('cpu: every miss on the CPU, none admitted, nothing copied', () => {
    const r = run({ miss: 'cpu', admit: false });
    expect(r.hits).toBe(0);
    expect(r.cpuExperts).toBe(6);
    expect(r.bytesMoved).toBe(0);
    expect(r.bypasses).toBe(6);
  });

  it('beside background fill (admitted): there expert 1 takes the slot (filled), and is a hit from step 1', () => {
    const r = run({ miss: 'cpu' });
    expect(r.hits).toBe(2);
    expect(r.cpuExperts).toBe(4);
    expect(r.bytesMoved).toBe(1_000_000); // the one fill
  });

  it("is the commands' default (--cpu-fill none); the API's default admits, as the runtime's MissOptions", () => {
    expect(DEFAULT_CPU_FILL).toBe('none');
    expect(cpuFillConfig(DEFAULT_CPU_FILL)).toEqual({ cpuFill: false, cpuAdmit: false });
    const d = runSimulation(three, { policy: 'lru', cacheSize: 1, batch: 1, prefetch: 'none', miss: 'cpu', cpuFill: true, calibration: costs(1) });
    expect(d.hits).toBe(run({ miss: 'cpu', admit: true }).hits);
  });

  it('a prefill step (below decodeFrom) fetches: expert 1 is admitted there and hit afterwards', () => {
    const r = run({ miss: 'cpu', admit: false, decodeFrom: 1 });
    expect(r.hits).toBe(2);
    expect(r.cpuExperts).toBe(2); // expert 2 at steps 1 and 2
    expect(r.bytesMoved).toBe(2_000_000); // step 0: expert 1 into the slot, expert 2 staged
  });

  it('hybrid with copies far cheaper than the CPU: every miss fetched and admitted, as fetch does', () => {
    const h = run({ miss: 'hybrid', admit: false, copyMs: 0.01 });
    const f = run({ miss: 'fetch', copyMs: 0.01 });
    expect(h.cpuExperts).toBe(0);
    expect(h.hits).toBe(f.hits);
    expect(h.bytesMoved).toBe(f.bytesMoved);
  });
});
