/**
 * --expert-dtype / --expert-group / --check-quant on the engine commands (issue 13): refused by name with
 * exit 2 and no stack, before the engine loads. A real tiny checkpoint is passed so that the refusal is the
 * flag's, not a missing model's.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { runCli, tempDir } from '../../core/test/helpers.js';
import { makeCheckpoint } from '../../runtime/test/engine/helpers.js';

const tmp = tempDir('expert-dtype-cli-');
let model = '';
beforeAll(async () => {
  model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny', 1);
});
afterAll(() => tmp.cleanup());

describe('--expert-dtype on generate, chat, serve, bench', () => {
  const cases: Array<[string[], RegExp]> = [
    [['generate', '--prompt-ids', '1,2', '--expert-dtype', 'int9'], /option --expert-dtype: unknown value 'int9' \(choose from bf16, int8, int4\)/],
    [['generate', '--prompt-ids', '1,2', '--expert-group', '32'], /option --expert-group: has no effect here/],
    [['serve', '--expert-dtype', 'fp8'], /option --expert-dtype: unknown value 'fp8'/],
    [['serve', '--expert-dtype', 'int8', '--expert-group', '16'], /option --expert-group: has no effect here/],
    [['bench', '--device', 'cpu', '--expert-dtype', 'int8'], /option --expert-dtype: has no effect here \(it is used with --cache/],
    [['bench', '--device', 'cpu', '--check-sequences', '4'], /option --check-sequences: has no effect here \(it is used with --check or --check-quant\)/],
    [['bench', '--device', 'cpu', '--check-quant-rows', '8'], /option --check-quant-rows: has no effect here \(it is used with --check-quant\)/],
    [['bench', '--device', 'cpu', '--check-quant', 'int8', '--check-quant-rows', '0'], /option --check-quant-rows/],
    [['bench', '--device', 'cpu', '--check-quant', 'bf16'], /option --check-quant: list int8 and\/or int4/],
    // the quantized experts file: only for quantized experts, one path per format
    [['generate', '--prompt-ids', '1,2', '--quantized-file', 'auto'], /option --quantized-file: only with --expert-dtype int8 or int4/],
    [['serve', '--expert-dtype', 'bf16', '--quantized-file', 'x.safetensors'], /option --quantized-file: only with --expert-dtype int8 or int4/],
    [['bench', '--device', 'cpu', '--quantized-file', 'auto'], /option --quantized-file: has no effect here \(it is used with --cache/],
  ];
  for (const [args, msg] of cases) {
    it(`${args.join(' ')}: refused by name, exit 2`, () => {
      const r = runCli([args[0], '--model', model, ...args.slice(1)]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }
});

describe('bench --device cpu --check-quant: the CPU engine with quantized experts against the bf16 one', () => {
  it('compares logits teacher-forced on both paths, runs every routed expert through quantFidelity, and writes json, md and the CDF chart', () => {
    const out = join(tmp.path, 'fid');
    const r = runCli(['bench', '--model', model, '--device', 'cpu', '--check-quant', 'int8,int4', '--expert-group', '16', '--check-quant-rows', '4', '--check-sequences', '2', '--check-length', '24', '--check-prefill', '16', '--threads', '1', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/CPU engine; thresholds/);
    expect(r.stdout).toMatch(/\| int8 \| prefill \| 32 \|/);
    expect(r.stdout).toMatch(/\| int4 g16 \| decode \| 16 \|/);
    expect(r.stdout).toMatch(/\| int8 \| random \| \d+ x \d+ \| 4 \|/);
    expect(r.stdout).toMatch(/\| int4 g16 \| run \| \d+ x \d+ \| 4 \|/);
    expect(r.stderr).toMatch(/int8 per-expert \(random activations\): \d+\/\d+ experts/);
    const doc = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8'));
    expect(doc.quantCheck.device).toBe('cpu');
    // the quantized engine really differs from the bf16 one (its experts are not the bf16 weights), but not by much
    const i8Prefill = doc.quantCheck.cases.find((c: { dtype: string; path: string }) => c.dtype === 'int8' && c.path === 'prefill');
    expect(i8Prefill.logitsRelError.p50).toBeGreaterThan(0);
    expect(i8Prefill.logitsRelError.p50).toBeLessThan(0.05);
    const byKey = (dtype: string) => doc.quantCheck.expertErrors.find((e: { dtype: string; activations?: string }) => e.dtype === dtype && e.activations === 'random');
    const [i8, i4] = [byKey('int8'), byKey('int4')];
    const { layers, experts } = i8.distribution;
    expect(i8.errors).toHaveLength(layers * experts);
    // int4 keeps about one significant digit per weight, int8 about two: its median error must be the larger
    expect(i4.distribution.p50).toBeGreaterThan(i8.distribution.p50);
    expect(i8.distribution.max).toBeLessThan(0.05);
    for (const ext of ['vl.json', 'svg', 'png']) expect(existsSync(join(out, `expert-errors.${ext}`)), ext).toBe(true);
  });
});

describe('quantized experts on the CPU engine, with the quantized experts file', () => {
  it('generate --expert-dtype int4 --quantized-file auto: the first run writes the file, the second reads it, same tokens as without it', () => {
    const args = ['generate', '--model', model, '--prompt-ids', '1,2,3,4', '--max-new-tokens', '6', '--expert-dtype', 'int4', '--expert-group', '16', '--json'];
    const plain = runCli([...args, '--quantized-file', 'off']);
    expect(plain.status, plain.stderr).toBe(0);
    const first = runCli([...args, '--quantized-file', 'auto']);
    expect(first.status, first.stderr).toBe(0);
    expect(existsSync(join(model, 'moe-offload-experts-int4-g16.safetensors'))).toBe(true);
    const second = runCli([...args, '--quantized-file', 'auto']);
    expect(second.status, second.stderr).toBe(0);
    expect(plain.stderr).toMatch(/moe: routed experts in host memory: .* int4 \(quantize /);
    expect(first.stderr).toMatch(/int4 \(quantize .*, written to .*moe-offload-experts-int4-g16\.safetensors\)/);
    expect(second.stderr).toMatch(/int4 \(read .* from .*moe-offload-experts-int4-g16\.safetensors\)/);
    const tokens = (r: { stdout: string }) => JSON.stringify(JSON.parse(r.stdout).tokens);
    expect(tokens(first)).toBe(tokens(plain));
    expect(tokens(second)).toBe(tokens(plain));
  });
});
