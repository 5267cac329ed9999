import { existsSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { importEsft } from '../src/import-esft.js';
import { readTrace } from '../src/reader.js';
import { toSequences } from '../src/sequences.js';
import { tempDir } from '../../core/test/helpers.js';
import { writeEsftDir } from './fixtures.js';

const geometry = { numLayers: 3, firstMoeLayer: 1, numExperts: 8, topK: 2 };
const dirs: Array<{ cleanup(): void }> = [];
function tmp() {
  const d = tempDir();
  dirs.push(d);
  return d.path;
}
afterEach(() => dirs.splice(0).forEach((d) => d.cleanup()));

// seq 0: 3 tokens, seq 1: 1 token; two MoE layers (model layers 1, 2).
const SEQS = [
  [
    [[0, 1], [2, 3], [4, 5]],
    [[7, 6], [5, 4], [3, 2]],
  ],
  [[[1, 7]], [[0, 2]]],
];

describe('traces import esft', () => {
  it('keeps sequences in file order, one token per step, layers as model layers', () => {
    const src = join(tmp(), 'task');
    writeEsftDir(src, SEQS);
    const out = join(tmp(), 'task.arrow');
    expect(importEsft(src, out, { geometry, quiet: true })).toEqual({ sequences: 2, tokens: 4 });
    const t = readTrace(out);
    expect(t.meta.routingSource).toBe('imported');
    expect(t.meta.moeLayers).toEqual([1, 2]);
    expect([...t.step]).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    expect([...t.layer]).toEqual([1, 2, 1, 2, 1, 2, 1, 2]);
    expect([...t.seq]).toEqual([0, 0, 0, 0, 0, 0, 1, 1]);
    expect([...t.pos]).toEqual([0, 0, 1, 1, 2, 2, 0, 0]);
    expect([...t.experts]).toEqual([0, 1, 7, 6, 2, 3, 5, 4, 4, 5, 3, 2, 1, 7, 0, 2]);
    expect(t.weights[0]).toBeCloseTo(0.5);
    expect(t.weights[1]).toBeCloseTo(0.25);
    const c = toSequences(t);
    expect(c.sequences.map((s) => s.length)).toEqual([3, 1]);
  });

  type Corruption = [name: string, mutate: (dir: string) => void, error: RegExp];
  const corruptions: Corruption[] = [
    ['a missing layer file', (d) => rmSync(join(d, 'expert_weights_2.txt')), /expert_weights_2\.txt is missing: expected MoE layers 1\.\.2/],
    ['an extra layer file', (d) => writeFileSync(join(d, 'expert_weights_3.txt'), '0\t1\t\t0.5\t0.5\n'), /expert_weights_3\.txt: layer 3 is not an MoE layer/],
    ['a truncated file', (d) => truncate(join(d, 'expert_weights_1.txt'), 7), /expert_weights_1\.txt: line 2: no final newline/],
    ['a garbled id', (d) => replaceIn(join(d, 'expert_weights_1.txt'), /^0\t/, 'x\t'), /expert_weights_1\.txt: line 1: expert id 'x' \(field 1\) is not an integer/],
    ['an id out of range', (d) => replaceIn(join(d, 'expert_weights_2.txt'), /^7\t/, '9\t'), /expert_weights_2\.txt: line 1: expert id 9 \(field 1\) is not below 8/],
    ['a bad weight', (d) => replaceIn(join(d, 'expert_weights_1.txt'), /0\.5000/, 'nan'), /line 1: weight 'nan' \(field 8\) is not a probability/],
    ['no separator', (d) => replaceIn(join(d, 'expert_weights_1.txt'), /\t\t/, '\t'), /line 1: no empty field between expert ids and weights/],
    ['ids and weights of different counts', (d) => replaceIn(join(d, 'expert_weights_1.txt'), /\t0\.2500\n/, '\n'), /line 1: 6 expert ids but 5 weights/],
    ['a count that is not a multiple of top-k', (d) => writeFileSync(join(d, 'expert_weights_1.txt'), '0\t1\t2\t\t0.5\t0.5\t0.5\n1\t7\t\t0.5\t0.5\n'), /line 1: 3 expert ids is not a positive multiple of top-k 2/],
    ['layers with different sequence counts', (d) => writeFileSync(join(d, 'expert_weights_2.txt'), '7\t6\t5\t4\t3\t2\t\t0.5\t0.5\t0.5\t0.5\t0.5\t0.5\n'), /expert_weights_2\.txt: 1 sequences, but expert_weights_1\.txt has 2/],
    ['layers with different token counts', (d) => replaceIn(join(d, 'expert_weights_2.txt'), /^7\t6\t5\t4\t3\t2\t\t0\.5000\t0\.2500\t0\.5000\t0\.2500\t0\.5000\t0\.2500/, '7\t6\t\t0.5\t0.25'), /expert_weights_2\.txt: line 1: 1 tokens, but expert_weights_1\.txt has 3/],
    ['a repeated expert in a token', (d) => replaceIn(join(d, 'expert_weights_1.txt'), /^0\t1\t/, '0\t0\t'), /line 1: token 0 repeats an expert \(0,0\)/],
    ['an empty file', (d) => writeFileSync(join(d, 'expert_weights_1.txt'), ''), /expert_weights_1\.txt: empty file/],
  ];
  for (const [name, mutate, error] of corruptions) {
    it(`rejects ${name} with the file and problem named, leaving no output`, () => {
      const src = join(tmp(), 'task');
      writeEsftDir(src, SEQS);
      mutate(src);
      const outDir = tmp();
      expect(() => importEsft(src, join(outDir, 'out.arrow'), { geometry, quiet: true })).toThrow(error);
      expect(readdirSync(outDir)).toEqual([]);
    });
  }

  it('rejects a folder with no layer files and a missing folder', () => {
    expect(() => importEsft(tmp(), join(tmp(), 'o.arrow'), { geometry, quiet: true })).toThrow(/no expert_weights_<layer>\.txt files/);
    expect(() => importEsft('/nonexistent/esft', join(tmp(), 'o.arrow'), { geometry, quiet: true })).toThrow(/\/nonexistent\/esft: not a directory/);
  });

  it('leaves an existing output untouched when the import fails', () => {
    const src = join(tmp(), 'task');
    writeEsftDir(src, SEQS);
    rmSync(join(src, 'expert_weights_1.txt'));
    const out = join(tmp(), 'out.arrow');
    writeFileSync(out, 'previous result');
    expect(() => importEsft(src, out, { geometry, quiet: true })).toThrow();
    expect(readFileSync(out, 'utf8')).toBe('previous result');
    expect(existsSync(out)).toBe(true);
  });
});

function replaceIn(file: string, pattern: RegExp, by: string): void {
  const before = readFileSync(file, 'utf8');
  const after = before.replace(new RegExp(pattern.source, pattern.flags.includes('m') ? pattern.flags : pattern.flags + 'm'), by);
  if (after === before) throw new Error(`fixture mutation did not apply to ${file}`);
  writeFileSync(file, after);
}

function truncate(file: string, bytes: number): void {
  const b = readFileSync(file);
  writeFileSync(file, b.subarray(0, b.length - bytes));
}
