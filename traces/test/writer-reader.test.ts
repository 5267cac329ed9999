import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readTrace } from '../src/reader.js';
import { toSequences } from '../src/sequences.js';
import { TraceWriter } from '../src/writer.js';
import { tempDir } from '../../core/test/helpers.js';
import { tinyMeta } from './fixtures.js';

const dirs: Array<{ cleanup(): void }> = [];
function tmp() {
  const d = tempDir();
  dirs.push(d);
  return d.path;
}
afterEach(() => dirs.splice(0).forEach((d) => d.cleanup()));

/** Two sequences x 2 tokens x 2 layers, batch 2: one step per token position. */
function rowsForStep(step: number) {
  return {
    step: [step, step, step, step],
    phase: [1, 1, 1, 1],
    layer: [1, 1, 2, 2],
    seq: [0, 1, 0, 1],
    pos: [step, step, step, step],
    experts: [0, 1, 2, 3, 4, 5, 6, 7].map((e) => (e + step) % 8),
    weights: [0.5, 0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 0.25],
  };
}

describe('trace v1 writer and reader', () => {
  it('round-trips required columns and metadata', () => {
    const path = join(tmp(), 't.arrow');
    const w = TraceWriter.create(path, tinyMeta());
    w.append(rowsForStep(0));
    w.flush();
    w.append(rowsForStep(1));
    w.close();
    const t = readTrace(path);
    expect(t.rows).toBe(8);
    expect(t.meta).toEqual(tinyMeta());
    expect([...t.step]).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect([...t.experts.subarray(8, 16)]).toEqual([1, 2, 3, 4, 5, 6, 7, 0]);
    expect(t.weights[1]).toBeCloseTo(0.25);
    expect(t.scores).toBeUndefined();
    const corpus = toSequences(t);
    expect(corpus.sequences.map((s) => s.length)).toEqual([2, 2]);
    // sequence 1, token 1, layer index 1 (model layer 2): row 7 of the file -> experts 7, 0
    const s1 = corpus.sequences[1];
    expect([...s1.experts.subarray((1 * 2 + 1) * 2, (1 * 2 + 1) * 2 + 2)]).toEqual([7, 0]);
  });

  it('round-trips every optional column, nulls in gate_next included', () => {
    const path = join(tmp(), 't.arrow');
    const meta = tinyMeta();
    const w = TraceWriter.create(path, meta, { tokens: true, scores: true, gateNext: true, predicted: true, timings: true });
    const base = rowsForStep(0);
    w.append({
      ...base,
      token: [10, 11, 10, 11],
      scores: Array.from({ length: 32 }, (_, i) => i / 32),
      gateNext: [1, 2, 3, 4, 0, 0, 0, 0],
      gateNextValid: [1, 1, 0, 0],
      predicted: [[1, 2, 3], [1, 2, 3], [], []],
      layerUs: [100, 100, 120, 120],
      transferWaitUs: [5, 5, 0, 0],
      hits: [3, 3, 4, 4],
      misses: [1, 1, 0, 0],
      cpuExperts: [0, 0, 1, 1],
    });
    w.close();
    const t = readTrace(path);
    expect([...t.token!]).toEqual([10, 11, 10, 11]);
    expect(t.scores![31]).toBeCloseTo(31 / 32);
    expect([...t.gateNextValid!]).toEqual([1, 1, 0, 0]);
    expect([...t.gateNext!.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
    expect(t.predicted!.map((p) => [...p])).toEqual([[1, 2, 3], [1, 2, 3], [], []]);
    expect([...t.hits!]).toEqual([3, 3, 4, 4]);
    expect([...t.layerUs!]).toEqual([100, 100, 120, 120]);
  });

  it('refuses rows that do not fit the declared geometry', () => {
    const path = join(tmp(), 't.arrow');
    const w = TraceWriter.create(path, tinyMeta());
    expect(() => w.append({ ...rowsForStep(0), experts: [0, 1, 2] })).toThrow(/experts has 3 values, expected 8/);
    expect(() => w.append({ ...rowsForStep(0), experts: [0, 1, 2, 3, 4, 5, 6, 8] })).toThrow(/expert id 8 is not in \[0, 8\)/);
    w.abort();
    expect(existsSync(path)).toBe(false);
  });

  it('leaves no file at the target until close, and nothing at all after abort', () => {
    const dir = tmp();
    const path = join(dir, 't.arrow');
    const w = TraceWriter.create(path, tinyMeta());
    w.append(rowsForStep(0));
    w.flush();
    expect(existsSync(path)).toBe(false);
    w.abort();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('reports a truncated file, a foreign file and a missing file by name', () => {
    const dir = tmp();
    const path = join(dir, 't.arrow');
    const w = TraceWriter.create(path, tinyMeta());
    w.append(rowsForStep(0));
    w.close();
    const bytes = readFileSync(path);
    const truncated = join(dir, 'truncated.arrow');
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 40));
    expect(() => readTrace(truncated)).toThrow(/truncated\.arrow: truncated Arrow IPC file/);
    const foreign = join(dir, 'foreign.arrow');
    writeFileSync(foreign, 'step,layer\n0,1\n');
    expect(() => readTrace(foreign)).toThrow(/foreign\.arrow: not an Arrow IPC file/);
    expect(() => readTrace(join(dir, 'absent.arrow'))).toThrow(/absent\.arrow: cannot read trace \(ENOENT\)/);
    // Same bytes with the footer intact but the body garbled.
    const garbled = Buffer.from(bytes);
    for (let i = 64; i < 400 && i < garbled.length - 64; i++) garbled[i] = 0xff;
    writeFileSync(join(dir, 'garbled.arrow'), garbled);
    expect(() => readTrace(join(dir, 'garbled.arrow'))).toThrow(/garbled\.arrow: /);
  });
});
