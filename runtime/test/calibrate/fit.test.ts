import { describe, expect, it } from 'vitest';
import { chooseCopyEngines, chooseCpuWorkers, fitCopyCost, median } from '../../src/calibrate/fit.js';

describe('median', () => {
  it('takes the middle sample, or the mean of the two middle ones', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow(/no samples/);
  });
});

describe('fitCopyCost: ms = copies x overhead + bytes / bandwidth', () => {
  it('recovers overhead and bandwidth from exact timings', () => {
    // 5 us per copy, 50 GB/s = 2e-8 ms per byte; an expert of 1e7 bytes moves in 0.2 ms.
    const pts = [
      { copies: 1, bytes: 1e7, ms: 0.205 },
      { copies: 1, bytes: 4e7, ms: 0.805 },
      { copies: 4, bytes: 4e7, ms: 0.82 },
    ];
    const f = fitCopyCost(pts);
    expect(f.gbps).toBeCloseTo(50, 9);
    expect(f.perCopyMs).toBeCloseTo(0.005, 12);
    expect(f.rmsMs).toBeCloseTo(0, 12);
  });

  it('matches a least-squares fit worked by hand', () => {
    // bytes in MB: copies (1, 1, 2), MB (1, 2, 2), ms (1.0, 1.5, 2.5).
    // Normal equations: sum c^2 = 6, sum cb = 7, sum b^2 = 9, sum ct = 7.5, sum bt = 9, det = 54 - 49 = 5;
    // o = (7.5*9 - 9*7) / 5 = 0.9 ms; s = (6*9 - 7*7.5) / 5 = 0.3 ms per MB = 3.333 GB/s.
    // Residuals -0.2, 0, +0.1: rms = sqrt(0.05 / 3) = 0.1291 ms.
    const f = fitCopyCost([
      { copies: 1, bytes: 1e6, ms: 1.0 },
      { copies: 1, bytes: 2e6, ms: 1.5 },
      { copies: 2, bytes: 2e6, ms: 2.5 },
    ]);
    expect(f.perCopyMs).toBeCloseTo(0.9, 9);
    expect(f.gbps).toBeCloseTo(10 / 3, 9);
    expect(f.rmsMs).toBeCloseTo(Math.sqrt(0.05 / 3), 9);
  });

  it('clamps a negative overhead at 0 and keeps the bandwidth', () => {
    // o = -0.01, s = 0.1 ms per MB: exact points, the fit finds o < 0 and reports 0.
    const f = fitCopyCost([
      { copies: 1, bytes: 1e6, ms: 0.09 },
      { copies: 1, bytes: 4e6, ms: 0.39 },
      { copies: 4, bytes: 4e6, ms: 0.36 },
    ]);
    expect(f.perCopyMs).toBe(0);
    expect(f.gbps).toBeCloseTo(10, 9);
  });

  it('refuses points that cannot separate overhead from bandwidth, and noise with no positive slope', () => {
    expect(() => fitCopyCost([{ copies: 1, bytes: 1e6, ms: 1 }, { copies: 4, bytes: 4e6, ms: 4 }])).toThrow(/same bytes per copy/);
    expect(() => fitCopyCost([{ copies: 1, bytes: 1e6, ms: 2 }, { copies: 1, bytes: 4e6, ms: 1 }])).toThrow(/not positive/);
    expect(() => fitCopyCost([{ copies: 1, bytes: 1e6, ms: 1 }])).toThrow(/two points/);
    expect(() => fitCopyCost([{ copies: 1, bytes: 1e6, ms: 1 }, { copies: 0, bytes: 1e6, ms: 1 }])).toThrow(/bad point/);
  });
});

describe('choices made from measurements', () => {
  it('counts a second copy engine only when two streams are at least 1.5x faster', () => {
    expect(chooseCopyEngines(5.04, 5.05)).toEqual({ engines: 1, speedup: 5.04 / 5.05 });
    expect(chooseCopyEngines(5, 2.5).engines).toBe(2);
    expect(chooseCopyEngines(3, 2.01).engines).toBe(1);
  });

  it('picks the CPU configuration that finishes top-k experts soonest', () => {
    // Figures of the H200 machine's measurement: 16x1 threads 3.72 ms (1 round = 3.72), 4x4 0.91 (2 rounds
    // = 1.82), 2x8 0.427 (3 rounds = 1.281), 1x16 0.265 (6 rounds = 1.59): 2 workers.
    const best = chooseCpuWorkers(
      [
        { workers: 16, threads: 1, msPerExpert: 3.72 },
        { workers: 4, threads: 4, msPerExpert: 0.91 },
        { workers: 2, threads: 8, msPerExpert: 0.427 },
        { workers: 1, threads: 16, msPerExpert: 0.265 },
      ],
      6,
    );
    expect(best.workers).toBe(2);
    expect(best.makespanMs).toBeCloseTo(1.281, 9);
  });

  it('breaks a tie toward fewer workers', () => {
    // 2 workers: 3 rounds x 0.5 = 1.5; 3 workers: 2 rounds x 0.75 = 1.5.
    const best = chooseCpuWorkers([{ workers: 3, threads: 5, msPerExpert: 0.75 }, { workers: 2, threads: 8, msPerExpert: 0.5 }], 6);
    expect(best.workers).toBe(2);
    expect(() => chooseCpuWorkers([], 6)).toThrow(/no candidates/);
  });
});
