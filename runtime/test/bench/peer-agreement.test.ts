import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareLogits } from '../../src/bench/agreement.js';
import { judgePeer, readIdsFile } from '../../src/bench/peer-agreement.js';

const V = 16;
function rows(n: number, f: (r: number, i: number) => number): Float32Array {
  const a = new Float32Array(n * V);
  for (let r = 0; r < n; r++) for (let i = 0; i < V; i++) a[r * V + i] = f(r, i);
  return a;
}

describe('peer agreement (second oracle)', () => {
  const ref = rows(6, (r, i) => Math.sin(r * 7 + i * 3) * 4);
  it('passes small noise and counts only separated positions', () => {
    const ours = ref.map((x, k) => x * (1 + 0.003 * Math.cos(k)));
    const p = judgePeer(compareLogits('prefill', 'engine vs llama.cpp', ours, ref, V, [3, 3], 0));
    expect(p.pass).toBe(true);
    expect(p.separatedPositions).toBeGreaterThan(0);
    expect(p.top1AgreementSeparated).toBe(1);
  });
  it('fails a wrong mapping (permuted vocabulary)', () => {
    const ours = rows(6, (r, i) => ref[r * V + ((i + 5) % V)]);
    const p = judgePeer(compareLogits('prefill', 'engine vs llama.cpp', ours, ref, V, [3, 3], 0));
    expect(p.pass).toBe(false);
  });
  it('reads ids files and refuses ids outside the vocabulary', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peer-ids-'));
    writeFileSync(join(dir, 'ok'), '1 2 3\n4 5\n');
    expect(readIdsFile(join(dir, 'ok'), 8)).toEqual([[1, 2, 3], [4, 5]]);
    writeFileSync(join(dir, 'bad'), '1 9\n');
    expect(() => readIdsFile(join(dir, 'bad'), 8)).toThrow(/line 1/);
  });
});
