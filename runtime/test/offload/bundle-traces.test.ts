/**
 * tools/gpu/bundle-traces.mjs: the ESFT tasks travel to the GPU machine as xz-compressed trace v1 files
 * that unpack to valid traces with the task's sequences. Uses the real ../shared/traces/esft (skipped
 * when it is absent); a fake CLI stands in for the importer where only the bookkeeping is tested.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { importEsft } from '../../../traces/src/import-esft.js';
import { repoRoot, tempDir } from '../../../core/test/helpers.js';
// @ts-expect-error plain JS module of the tools folder
import { bundleTraces, ESFT_TASKS, esftTasks } from '../../../tools/gpu/bundle-traces.mjs';

const esft = resolve(repoRoot, '..', 'shared', 'traces', 'esft');
const tmp = tempDir('bundle-traces-');
afterAll(() => tmp.cleanup());

describe('bundle: ESFT traces for the device', () => {
  it('reports every task missing when the ESFT folder is absent, imports nothing', () => {
    const calls: string[][] = [];
    const r = bundleTraces(join(tmp.path, 'nowhere'), join(tmp.path, 'out0'), (a: string[]) => calls.push(a));
    expect(r.missing).toEqual(ESFT_TASKS);
    expect(calls).toEqual([]);
  });

  it('re-imports only a task whose source is newer than its bundled file', () => {
    const src = join(tmp.path, 'esft');
    for (const t of ESFT_TASKS) {
      mkdirSync(join(src, t), { recursive: true });
      writeFileSync(join(src, t, 'expert_weights_1.txt'), 'x');
    }
    const out = join(tmp.path, 'out1');
    const calls: string[][] = [];
    const fakeCli = (a: string[]) => {
      calls.push(a);
      writeFileSync(a[a.indexOf('--out') + 1], 'arrow bytes');
    };
    expect(bundleTraces(src, out, fakeCli).imported).toEqual(ESFT_TASKS);
    expect(calls.map((c) => c.slice(0, 3))).toEqual(ESFT_TASKS.map(() => ['traces', 'import', 'esft']));
    expect(existsSync(join(out, 'summary.arrow'))).toBe(false); // only the .xz stays
    const again = bundleTraces(src, out, fakeCli);
    expect(again.skipped).toEqual(ESFT_TASKS);
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(src, 'intent', 'expert_weights_1.txt'), later, later);
    expect(bundleTraces(src, out, fakeCli).imported).toEqual(['intent']);
    expect(execFileSync('xz', ['-dc', join(out, 'intent.arrow.xz')]).toString()).toBe('arrow bytes');
  });

  it('bundles a task it does not know (routing not seen) after the known three; ignores folders without a dump', () => {
    const src = join(tmp.path, 'esft-extra');
    for (const t of [...ESFT_TASKS, 'law', 'code']) {
      mkdirSync(join(src, t), { recursive: true });
      writeFileSync(join(src, t, 'expert_weights_1.txt'), 'x');
    }
    mkdirSync(join(src, 'notes'), { recursive: true });
    writeFileSync(join(src, 'README.md'), 'not a task');
    expect(esftTasks(src)).toEqual([...ESFT_TASKS, 'code', 'law']);
    const out = join(tmp.path, 'out3');
    const fakeCli = (a: string[]) => writeFileSync(a[a.indexOf('--out') + 1], `arrow of ${a[3]}`);
    expect(bundleTraces(src, out, fakeCli).imported).toEqual([...ESFT_TASKS, 'code', 'law']);
    expect(execFileSync('xz', ['-dc', join(out, 'law.arrow.xz')]).toString()).toBe(`arrow of ${join(src, 'law')}`);
    expect(existsSync(join(out, 'notes.arrow.xz'))).toBe(false);
  });

  describe.skipIf(!existsSync(join(esft, 'intent')))('with the real ESFT intent task', () => {
    if (!existsSync(join(esft, 'intent'))) console.warn(`[skip] ${esft}/intent is missing: the real-trace bundle test does not run`);
    it('the bundled file unpacks to the task as trace v1 (127 sequences)', () => {
      const out = join(tmp.path, 'out2');
      const cli = (a: string[]) => {
        importEsft(a[3], a[a.indexOf('--out') + 1]);
      };
      const only = join(tmp.path, 'only-intent');
      mkdirSync(only, { recursive: true });
      execFileSync('ln', ['-s', join(esft, 'intent'), join(only, 'intent')]);
      const r = bundleTraces(only, out, cli);
      expect(r.imported).toEqual(['intent']);
      const arrow = join(tmp.path, 'intent.arrow');
      writeFileSync(arrow, execFileSync('xz', ['-dc', join(out, 'intent.arrow.xz')], { maxBuffer: 1 << 28 }));
      const corpus = toSequences(readTrace(arrow));
      expect(corpus.sequences.length).toBe(127);
      expect(corpus.numExperts).toBe(64);
      expect(readFileSync(arrow).length).toBeGreaterThan(1000);
    });
  });
});
