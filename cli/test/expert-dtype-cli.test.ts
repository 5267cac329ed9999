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
    [['generate', '--prompt-ids', '1,2', '--expert-dtype', 'int8'], /option --expert-dtype int8: needs --device cuda/],
    [['generate', '--prompt-ids', '1,2', '--expert-group', '32'], /option --expert-group: has no effect here/],
    [['chat', '--expert-dtype', 'int4', '--cache', '2'], /option --expert-dtype int4: needs --device cuda/],
    [['serve', '--expert-dtype', 'fp8'], /option --expert-dtype: unknown value 'fp8'/],
    [['serve', '--expert-dtype', 'int8', '--expert-group', '16'], /option --expert-group: has no effect here/],
    [['bench', '--device', 'cpu', '--expert-dtype', 'int8'], /option --expert-dtype: has no effect here \(it is used with --cache/],
    // --check-quant on the CPU is the per-expert part alone: options of the generations it skips are refused
    [['bench', '--device', 'cpu', '--check-quant', 'int8', '--check-sequences', '4'], /option --check-sequences: has no effect here \(it is used with --check, or --check-quant on --device cuda\)/],
    [['bench', '--device', 'cpu', '--check-quant', 'int8', '--check', 'transformers'], /option --check-quant: on --device cpu it runs alone \(the per-expert part only\); run --check separately/],
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

describe('bench --device cpu --check-quant: the per-expert part on the CPU', () => {
  it('runs every routed expert through quantFidelity, says the logits part needs cuda, and writes json, md and the CDF chart', () => {
    const out = join(tmp.path, 'fid');
    const r = runCli(['bench', '--model', model, '--device', 'cpu', '--check-quant', 'int8,int4', '--expert-group', '16', '--check-quant-rows', '4', '--threads', '1', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/logits comparison not run: it needs --device cuda/);
    expect(r.stdout).toMatch(/\| int8 \| random \| \d+ x \d+ \| 4 \|/);
    expect(r.stdout).toMatch(/\| int4 g16 \| random \| \d+ x \d+ \| 4 \|/);
    expect(r.stderr).toMatch(/int8 per-expert \(random activations\): \d+\/\d+ experts/);
    const doc = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8'));
    expect(doc.quantCheck.pass).toBeNull();
    const [i8, i4] = doc.quantCheck.expertErrors;
    const { layers, experts } = i8.distribution;
    expect(i8.errors).toHaveLength(layers * experts);
    // int4 keeps about one significant digit per weight, int8 about two: its median error must be the larger
    expect(i4.distribution.p50).toBeGreaterThan(i8.distribution.p50);
    expect(i8.distribution.max).toBeLessThan(0.05);
    for (const ext of ['vl.json', 'svg', 'png']) expect(existsSync(join(out, `expert-errors.${ext}`)), ext).toBe(true);
  });
});
