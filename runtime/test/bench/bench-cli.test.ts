/**
 * `moe bench` end to end on the CPU engine (tiny checkpoint; the GPU figures come from
 * tools/gpu/issue5.sh), Engine.score's prefill and decode paths, and the command's bad inputs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { runCli, tempDir } from '../../../core/test/helpers.js';
import { makeCheckpoint, relativeError, requireAddonOrSkip } from '../engine/helpers.js';

const ready = requireAddonOrSkip('moe bench');

describe.skipIf(!ready)('moe bench on the CPU engine', () => {
  const tmp = tempDir('moe-bench-');
  let model: string;
  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'ckpt'), 'tiny-a', 5);
  });
  afterAll(() => tmp.cleanup());

  it('writes bench.json and bench.md with every grid point', () => {
    const out = join(tmp.path, 'out');
    const r = runCli(['bench', '--model', model, '--device', 'cpu', '--threads', '2', '--batch', '1,2', '--prompt', '5', '--new-tokens', '3', '--repeats', '2', '--warmup', '0', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8'));
    expect(doc.format).toBe('moe-offload-bench-v1');
    expect(doc.grid.map((p: { batch: number }) => p.batch)).toEqual([1, 2]);
    for (const p of doc.grid) {
      expect(p.msPerToken.n).toBe(2 * 2); // repeats x (new tokens - 1)
      expect(p.prefillMs.mean).toBeGreaterThan(0);
      expect(p.decodeTokensPerSecond).toBeCloseTo((p.batch * 1000) / p.msPerToken.mean, 6);
    }
    expect(doc.baseline).toBeNull();
    expect(doc.agreement).toBeNull();
    expect(readFileSync(join(out, 'bench.md'), 'utf8')).toMatch(/\| 2 \| 5 \| 3 \|/);
    // --replot renders the same tables from the file without a run.
    const again = runCli(['bench', '--replot', join(out, 'bench.json')]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain('| 2 | 5 | 3 |');
  });

  it('Engine.score: the decode path gives the prefill path\'s logits, and the last one generate()\'s', async () => {
    const engine = await Engine.load(model, { threads: 2 });
    try {
      const seqs = [[500, 3, 9, 27, 81, 243], [500, 7, 49]];
      const V = engine.config.vocabSize;
      const all = await engine.score(seqs);
      const stepwise = await engine.score(seqs, 2);
      expect(all.length).toBe(9 * V);
      expect(relativeError(stepwise, all)).toBeLessThan(1e-5);
      await engine.generateAll({ prompts: [seqs[0]], maxNewTokens: 1, recordLogits: true });
      const last = engine.logits!.perSequence[0][0];
      expect(relativeError(last, all.subarray(5 * V, 6 * V))).toBeLessThan(1e-5);
      await expect(engine.score([])).rejects.toThrow(/non-empty/);
      await expect(engine.score([[500, 1]], -1)).rejects.toThrow(/prefillTokens/);
      await expect(engine.score([[500, 99999]])).rejects.toThrow(/outside the vocabulary/);
    } finally {
      engine.close();
    }
  });

  it('refuses bad options and bad --replot files by name', () => {
    const cases: [string[], RegExp][] = [
      [['bench', '--device', 'cpu'], /option --model: required/],
      [['bench', '--model', model, '--baseline', 'vllm'], /option --baseline/],
      [['bench', '--model', model, '--check', 'transformers', '--check-length', '16', '--check-prefill', '16'], /option --check-prefill: must be below --check-length/],
      [['bench', '--model', model, '--batch', '0'], /option --batch/],
      [['bench', '--model', model, '--new-tokens', '1'], /option --new-tokens/],
      [['bench', '--replot', join(tmp.path, 'missing.json')], /missing.json: no such file/],
    ];
    for (const [args, want] of cases) {
      const r = runCli(args);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(want);
    }
    const bad = join(tmp.path, 'bad.json');
    writeFileSync(bad, '{"format": "something-else"}');
    const r = runCli(['bench', '--replot', bad]);
    expect(r.stderr).toMatch(/not a bench\.json/);
  });
});
