/**
 * Issue 15 for bench: a failed --check exits non-zero (it printed `pass NO` and exited 0), --out is checked
 * before the run (EEXIST came after the whole run), --device defaults to what the build has, limits and
 * options with no effect are refused before anything loads, and the chart says "vs transformers" only when
 * transformers ran. The failing check uses a stand-in for the Python reference that writes wrong logits.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchChartSpec } from '../../src/bench/chart.js';
import type { BenchDocument } from '../../src/bench/run-bench.js';
import { failedChecks } from '../../src/bench/checks.js';
import { checkOffloadTokens } from '../../src/bench/offload-check.js';
import type { RoutingReplay } from '../../src/offload/routing-replay.js';
import { cudaBuilt } from '../../src/engine/devices.js';
import { makeCheckpoint, requireAddonOrSkip } from '../engine/helpers.js';
import { runCli, tempDir } from '../../../core/test/helpers.js';

const ready = requireAddonOrSkip('bench hardening tests');
const small = ['--batch', '1', '--prompt', '4', '--new-tokens', '2', '--repeats', '1', '--warmup', '0'];

/** A "python" that answers bench_transformers.py's request with reference files of the right size and wrong values. */
function fakeReference(dir: string, config: { vocab_size: number; hidden_size: number; num_hidden_layers: number }): string {
  const path = join(dir, 'fake-python.mjs');
  writeFileSync(
    path,
    `#!${process.execPath}
import { readFileSync, writeFileSync } from 'node:fs';
const args = process.argv.slice(3);
const req = JSON.parse(readFileSync(args[args.indexOf('--request') + 1], 'utf8'));
const out = args[args.indexOf('--out') + 1];
const lens = req.check.sequences.map((s) => s.length);
const rows = lens.reduce((a, b) => a + b, 0);
let x = 12345;
const rnd = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 10 - 5;
writeFileSync(req.check.logitsPath, Buffer.from(Float32Array.from({ length: rows * ${config.vocab_size} }, rnd).buffer));
writeFileSync(req.check.hiddenPath, Buffer.from(Float32Array.from({ length: rows * ${config.num_hidden_layers} * ${config.hidden_size} }, rnd).buffer));
writeFileSync(out, JSON.stringify({ device: 'cpu', dtype: 'bfloat16', attn: 'eager', torch: 'fake', transformers: 'fake', loadSeconds: 0,
  check: { sequences: lens.length, positions: rows, layers: ${config.num_hidden_layers}, seconds: 0 }, grid: [] }));
`,
  );
  chmodSync(path, 0o755);
  return path;
}

describe.skipIf(!ready)('bench hardening', () => {
  const tmp = tempDir('bench-hard-');
  let model = '';
  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny-a', 1);
  });
  afterAll(() => tmp.cleanup());

  it('a failed agreement check exits 1 after printing its table', () => {
    const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
    const python = fakeReference(tmp.path, config);
    const out = join(tmp.path, 'check-out');
    const r = runCli(['bench', '--model', model, '--device', 'cpu', ...small, '--check', 'transformers', '--check-sequences', '1', '--check-length', '8', '--check-prefill', '4', '--python', python, '--out', out]);
    expect(r.stdout).toMatch(/\| NO \|/);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/moe-offload: bench: the agreement check failed \(engine vs transformers-bf16, prefill path: pass NO\)/);
    // The results are still written, so the failure can be studied.
    expect(JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8')).agreement.paths[0].pass).toBe(false);
  });

  it('--out is checked before anything runs: a file, a non-empty folder (without --force), a missing parent', () => {
    const file = join(tmp.path, 'a-file');
    writeFileSync(file, 'x');
    const full = join(tmp.path, 'full');
    mkdirSync(full);
    writeFileSync(join(full, 'keep.txt'), 'x');
    const cases: Array<[string, RegExp]> = [
      [file, /option --out: .*a-file exists and is not a folder/],
      [full, /option --out: the folder .*full already exists; pass --force/],
      [join(tmp.path, 'missing', 'out'), /option --out: the folder .*missing does not exist/],
      [model, /option --out: .*tiny is one of the command's inputs/],
    ];
    for (const [out, want] of cases) {
      const r = runCli(['bench', '--model', model, '--device', 'cpu', ...small, '--out', out]);
      expect(r.status, out).toBe(2);
      expect(r.stderr).toMatch(want);
      expect(r.stderr).not.toMatch(/bench: loading/);
    }
    const empty = join(tmp.path, 'empty');
    mkdirSync(empty);
    expect(runCli(['bench', '--model', model, '--device', 'cpu', ...small, '--out', empty]).status).toBe(0);
    const forced = runCli(['bench', '--model', model, '--device', 'cpu', ...small, '--out', full, '--force']);
    expect(forced.status, forced.stderr).toBe(0);
    expect(readFileSync(join(full, 'keep.txt'), 'utf8')).toBe('x');
  });

  it.skipIf(cudaBuilt())('on a CPU-only build: no --device runs on the CPU, --device cuda is refused before loading', () => {
    const r = runCli(['bench', '--model', model, ...small]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^# moe bench: CPU/);
    const c = runCli(['bench', '--model', model, '--device', 'cuda', ...small]);
    expect(c.status).toBe(2);
    expect(c.stderr).toMatch(/option --device: this build of the native engine has no CUDA backend .*use --device cpu/);
    expect(c.stderr).not.toMatch(/bench: loading/);
  });

  it('limits and options with no effect are refused before loading', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--prompt', '200000'], /option --prompt: 200000 prompt tokens exceed the model's context of 163840/],
      [['--prompt', '100000', '--new-tokens', '70000'], /option --new-tokens: 100000 prompt tokens \+ 70000 new tokens exceed/],
      [['--check-length', '16'], /option --check-length: has no effect here \(it is used with --check or --check-quant\)/],
      [['--python', 'python3'], /option --python: has no effect here \(it is used with --baseline or --check\)/],
      [['--policy', 'lfu'], /option --policy: has no effect here \(it is used with --cache/],
      [['--check-offload-tokens', '4'], /option --check-offload-tokens: has no effect here/],
      [['--force'], /option --force: has no effect here \(it is used with --out\)/],
    ];
    for (const [args, want] of cases) {
      const r = runCli(['bench', '--model', model, '--device', 'cpu', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(want);
      expect(r.stderr).not.toMatch(/bench: loading/);
    }
    const replot = runCli(['bench', '--replot', join(tmp.path, 'x.json'), '--batch', '2']);
    expect(replot.stderr).toMatch(/option --batch: has no effect with --replot/);
  });
});

describe('offload check under replay: refused before loading', () => {
  it('oracle / predicted without --routing, predicted without --predictor', async () => {
    const log = () => {};
    await expect(checkOffloadTokens('/nonexistent', [16], ['lru'], 4, 1, log, ['none', 'oracle'])).rejects.toThrow(/--check-offload-prefetch oracle: needs --routing/);
    const replay = { path: 't.arrow', corpus: {} } as unknown as RoutingReplay;
    await expect(checkOffloadTokens('/nonexistent', [16], ['lru'], 4, 1, log, ['predicted'], { routing: [replay] })).rejects.toThrow(/--check-offload-prefetch predicted: needs --predictor/);
  });
});

describe('bench chart and checks (no engine)', () => {
  const point = (batch: number, prompt: number, newTokens: number, ms: number, extra = {}) => ({
    batch, prompt, newTokens, repeats: 1, prefillMs: { mean: ms * 10 }, msPerToken: { mean: ms }, decodeTokensPerSecond: 1, endToEndTokensPerSecond: 1, device: {}, ...extra,
  });
  const doc = (grid: unknown[], baseline: unknown = null, offload: unknown = null) =>
    ({ engine: { device: 'CPU', backend: 'cpu' }, grid, baseline, offload, agreement: null, offloadCheck: null }) as unknown as BenchDocument;

  it('says "vs transformers" only when a baseline point was timed', () => {
    expect(JSON.stringify(benchChartSpec(doc([point(1, 8, 4, 1)])).title)).not.toMatch(/transformers/);
    expect(JSON.stringify(benchChartSpec(doc([point(1, 8, 4, 1)], { grid: [point(1, 8, 4, 5)] })).title)).toMatch(/vs transformers/);
  });

  it('gives offload points and points of several --new-tokens their own bars', () => {
    const pts = (spec: ReturnType<typeof benchChartSpec>) => new Set(((spec as any).data.values as { point: string }[]).map((v) => v.point));
    expect(pts(benchChartSpec(doc([point(1, 8, 4, 1), point(1, 8, 8, 2)])))).toEqual(new Set(['b1 p8 n4', 'b1 p8 n8']));
    const off = doc([point(1, 8, 4, 1, { cache: 0, policy: 'lru' }), point(1, 8, 4, 1, { cache: 16, policy: 'lfu' })], null, { caches: [0, 16] });
    expect(pts(benchChartSpec(off))).toEqual(new Set(['b1 p8 c0 lru', 'b1 p8 c16 lfu']));
  });

  it('failedChecks: a check that did not pass, and only that', () => {
    const d = (paths: { pass: boolean | null }[], allIdentical = true) =>
      ({ agreement: { paths: paths.map((p) => ({ compared: 'engine vs transformers-bf16', path: 'prefill', ...p })) }, offloadCheck: { allIdentical } }) as unknown as BenchDocument;
    expect(failedChecks(d([{ pass: true }, { pass: null }]))).toEqual([]);
    expect(failedChecks(d([{ pass: false }]))).toHaveLength(1);
    expect(failedChecks(d([], false))[0]).toMatch(/offload check failed/);
  });
});
