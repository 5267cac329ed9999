import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { run } from '../main.js';
import { readTrace } from '../../traces/src/reader.js';
import { toSequences } from '../../traces/src/sequences.js';
import { runSimulation } from '../../sim/src/index.js';
import { defaultCalibration } from '../../sim/src/cost/calibration.js';
import { annotateCorpus } from '../../predictor/src/annotate.js';
import { runCli, tempDir } from '../../core/test/helpers.js';
import { structuredSequences, writeTinyTrace } from '../../predictor/test/fixtures.js';

const d = tempDir('predictor-cli-');
afterAll(() => d.cleanup());
const g = { L: 4, k: 2, E: 8 };
const trace = (name: string, seed: number, geometry = g) => {
  const path = join(d.path, `${name}.arrow`);
  writeTinyTrace(path, geometry, structuredSequences(geometry, 6, 12, seed), `tiny/${name}`);
  return path;
};
const a = trace('a', 1);
const b = trace('b', 2);
const c = trace('c', 3);
const wide = trace('wide', 4, { L: 4, k: 2, E: 10 });
const out = join(d.path, 'pred');
/** never written: refusals that are not about --out name it */
const fresh = join(d.path, 'never-written');

/**
 * Runs the CLI entry point in this process (a spawned CLI per refusal costs seconds) expecting a clean
 * refusal: exit 2, one line naming the problem, no stack trace.
 */
async function refused(args: string[], message: RegExp): Promise<void> {
  let stderr = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  let status: number;
  try {
    status = await run(['node', 'moe-offload', 'train-predictor', ...args, '--quiet']);
  } finally {
    spy.mockRestore();
  }
  expect(stderr).toMatch(message);
  expect(stderr).not.toMatch(/internal error|\n\s+at /);
  expect(status).toBe(2);
}

describe('train-predictor CLI', () => {
  it('trains by task, exports, and --eval of the export reproduces the test metrics', () => {
    const r = runCli(['train-predictor', '--traces', `${a},${b}`, '--test-traces', c, '--k', '1', '--out', out, '--epochs', '3', '--hidden', '16', '--json', '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const trained = JSON.parse(r.stdout);
    expect(trained.training.split.kind).toBe('task');
    expect(trained.training.split.test).toEqual([{ path: c, task: 'tiny/c', seqs: [0, 1, 2, 3, 4, 5] }]);
    expect(trained.evaluation.samples).toBe(6 * 12 * 3);
    expect(Object.keys(trained.evaluation.baselines).sort()).toEqual(['popularity', 'previousToken']);
    expect(existsSync(join(out, 'predictor.json')) && existsSync(join(out, 'weights.safetensors'))).toBe(true);

    const e = runCli(['train-predictor', '--eval', out, '--traces', c, '--json', '--quiet']);
    expect(e.status).toBe(0);
    const evaluated = JSON.parse(e.stdout).evaluation;
    // Pure-TS inference on the exported weights must score the held-out task as the TF.js model did.
    // A budget of all 8 experts is recall 100% by construction: it is not reported.
    expect(evaluated.budgets).toEqual([2, 6]);
    for (const budget of ['2', '6']) {
      expect(evaluated.predictor.overall.at[budget].recall).toBeCloseTo(trained.evaluation.predictor.overall.at[budget].recall, 6);
      expect(evaluated.baselines.popularity.overall.at[budget].recall).toBeCloseTo(trained.evaluation.baselines.popularity.overall.at[budget].recall, 9);
    }
    const text = runCli(['train-predictor', '--eval', out, '--traces', c, '--quiet']);
    expect(text.stdout).toMatch(/recall@2 \(%\) by target layer, k = 1/);
    expect(text.stdout).toMatch(/weakest layer: recall@2 lead over the better of previous token and most popular/);
    // one name per figure: the per-layer column is the lead over the best baseline shown
    expect(text.stdout).not.toMatch(/margin/);
  });

  it('simulate --predictor DIR prefetches what the exported predictor names (same figures as annotating by hand)', () => {
    expect(existsSync(join(out, 'predictor.json')), 'the first test exports the predictor').toBe(true);
    const args = ['simulate', '--trace', c, '--policy', 'lru', '--cache', '3', '--prefetch', 'predicted', '--json', '--quiet'];
    const r = runCli([...args, '--predictor', out, '--predictor-budget', '2']);
    // only the warning that the default (DeepSeek-V2-Lite) cost profile is another geometry's
    expect(r.stderr).toMatch(/^moe-offload: warning: the cost profile h200-measured was made for 26 MoE layers x 64 experts, top-6; .*c\.arrow has 4 MoE layers x 8 experts, top-2: its times are another model's\n$/);
    expect(r.status).toBe(0);
    const viaCli = JSON.parse(r.stdout);
    const corpus = toSequences(readTrace(c));
    annotateCorpus(corpus, out, 2);
    const direct = runSimulation(corpus, { policy: 'lru', cacheSize: 3, batch: 1, prefetch: 'predicted', miss: 'fetch', calibration: defaultCalibration() });
    expect(viaCli.prefetch.issued).toBeGreaterThan(0);
    expect(viaCli.prefetch.issued).toBe(direct.prefetch.issued);
    expect(viaCli.hits).toBe(direct.hits);
    // A confidence floor of 1 leaves nothing to prefetch: the option reaches the predictions.
    const none = JSON.parse(runCli([...args, '--predictor', out, '--predictor-min-prob', '1']).stdout);
    expect(none.prefetch.issued).toBe(0);
    expect(runCli([...args.slice(0, -2), '--predictor-budget', '3', '--quiet']).stderr).toMatch(/need --predictor DIR/);
  });

  it('writes the report (tables, charts, report.json) from trained predictors', async () => {
    const runs = join(d.path, 'runs');
    mkdirSync(runs);
    const r1 = runCli(['train-predictor', '--traces', `${a},${b}`, '--test-traces', c, '--out', join(runs, 'k1-task'), '--epochs', '1', '--hidden', '8', '--quiet']);
    expect(r1.status).toBe(0);
    const report = join(d.path, 'report');
    const r = runCli(['train-predictor', '--report', report, '--runs', runs, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const md = readFileSync(join(report, 'README.md'), 'utf8');
    expect(md).toMatch(/\| k1-task \| task held out: trained on tiny\/a \+ tiny\/b, tested on tiny\/c \| 216 \|/);
    expect(md).toMatch(/predicted top-2/);
    // says what was run, not the ESFT script's story (item 15)
    expect(md).toMatch(/Generated by `train-predictor --report .* --runs .*` from 1 trained predictor \(k1-task\)\. Do not edit by hand\./);
    expect(md).not.toMatch(/esft-report\.sh|must-show|real router choices of ESFT/);
    for (const f of ['recall-per-layer-k1-task.svg', 'sim-gain.svg', 'report.json']) expect(existsSync(join(report, f)), f).toBe(true);
    const data = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8'));
    expect(data.runs['k1-task'].evaluation.samples).toBe(216);
    await refused(['--report', report, '--runs', join(d.path, 'no-runs-here')], /option --runs: .*no-runs-here: no such directory/);
  });

  it('splits by sequence by default', () => {
    const r = runCli(['train-predictor', '--traces', `${a},${b}`, '--k', '2', '--out', join(d.path, 'seq'), '--epochs', '1', '--hidden', '8', '--json', '--quiet']);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.training.split.kind).toBe('sequence');
    expect(j.lookahead).toBe(2);
    // Every file gives sequences to every part, and no sequence is in two parts.
    for (const part of ['train', 'val', 'test']) expect(j.training.split[part].map((f: { task: string }) => f.task)).toEqual(['tiny/a', 'tiny/b']);
    const seqsOf = (part: string, file: number) => j.training.split[part][file].seqs as number[];
    for (const f of [0, 1]) expect(new Set([...seqsOf('train', f), ...seqsOf('val', f), ...seqsOf('test', f)]).size).toBe(6);
  });

  it('refuses bad options with a message naming the option', async () => {
    await refused(['--traces', a], /option --out: required/);
    await refused(['--out', fresh], /option --traces: required/);
    await refused(['--traces', a, '--out', fresh, '--k', '0'], /option --k: 0 is out of range/);
    await refused(['--traces', a, '--out', fresh, '--k', '4'], /option --k: 4 must be below the 4 MoE layers/);
    await refused(['--traces', a, '--out', fresh, '--split', 'bogus'], /option --split: unknown value 'bogus'/);
    await refused(['--traces', a, '--out', fresh, '--hidden', '16,x'], /option --hidden: 'x' is not an integer/);
    await refused(['--traces', a, '--out', fresh, '--learning-rate', 'fast'], /option --learning-rate: 'fast' is not a number/);
    await refused(['--traces', a, '--test-traces', b, '--split', 'sequence', '--out', fresh], /held-out traces make a split by task/);
    await refused(['--traces', a, '--split', 'task', '--out', fresh], /needs at least two traces/);
    await refused(['--traces', `${a},${b}`, '--test-traces', a, '--out', fresh], /is also a training trace/);
    await refused(['--eval', out, '--traces', c, '--k', '2'], /option --k: not used with --eval/);
    await refused(['--report', d.path], /needs --runs/);
  });

  it('refuses missing, foreign and mismatched files by name', async () => {
    await refused(['--traces', join(d.path, 'missing.arrow'), '--out', fresh], /missing\.arrow: no such file/);
    const junk = join(d.path, 'junk.arrow');
    writeFileSync(junk, 'not a trace at all');
    await refused(['--traces', junk, '--out', fresh], /junk\.arrow: not an Arrow IPC file/);
    await refused(['--traces', a, '--out', junk], /option --out: .*junk\.arrow exists and is not a folder/);
    await refused(['--traces', `${a},${b}`, '--test-traces', wide, '--out', fresh], /wide\.arrow: geometry 4 MoE layers \(1\.\.4\), 10 experts, top-2 differs/);
    const sameTask = join(d.path, 'a-again.arrow');
    writeTinyTrace(sameTask, g, structuredSequences(g, 3, 5, 9), 'tiny/a');
    await refused(['--traces', `${a},${b}`, '--test-traces', sameTask, '--out', fresh], /task 'tiny\/a' is also in the training traces/);
  });

  it('refuses to evaluate a predictor on traces of another geometry, or a folder that is no predictor', async () => {
    await refused(['--eval', out, '--traces', wide], /wide\.arrow: geometry .* differs from the predictor/);
    await refused(['--eval', d.path, '--traces', c], /not a predictor directory \(no predictor\.json\)/);
    await refused(['--eval', join(d.path, 'nowhere'), '--traces', c], /nowhere: not a predictor directory/);
  });
});
