/**
 * `quantize-experts`: writes the quantized experts file on a machine without a GPU, then checks it expert by
 * expert; a corrupted expert is reported, re-quantized and the file rewritten; bad input is refused by name.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../../core/test/helpers.js';
import { makeCheckpoint, requireAddonOrSkip } from '../../runtime/test/engine/helpers.js';

const ready = requireAddonOrSkip('quantize-experts');

describe.skipIf(!ready)('quantize-experts', () => {
  const tmp = tempDir('quantize-experts-');
  let model = '';
  beforeAll(async () => {
    model = await makeCheckpoint(join(tmp.path, 'tiny'), 'tiny', 1);
  });
  afterAll(() => tmp.cleanup());

  it('writes, then verifies, then repairs a corrupted expert', () => {
    const args = ['quantize-experts', '--model', model, '--expert-dtype', 'int4', '--expert-group', '16'];
    const file = join(model, 'moe-offload-experts-int4-g16.safetensors');
    const w = runCli(args);
    expect(w.status, w.stderr).toBe(0);
    expect(w.stdout).toContain(`wrote ${file}`);
    const c = runCli(args);
    expect(c.status, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/up to date, every expert's checksum verified/);
    const bytes = readFileSync(file);
    const good = Buffer.from(bytes);
    bytes[bytes.length - 16 * 8 - 100] ^= 0xff; // inside the last blob, before the checksum table
    writeFileSync(file, bytes);
    const r = runCli(args);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/1 of \d+ experts fail their checksum/);
    expect(r.stdout).toMatch(/wrote .*1 re-quantized/);
    expect(readFileSync(file).equals(good)).toBe(true);
  });

  const refusals: Array<[string[], RegExp]> = [
    [['--expert-dtype', 'bf16'], /option --expert-dtype: unknown value 'bf16' \(choose from int8, int4\)/],
    [['--expert-dtype', 'int4', '--expert-group', '48'], /option --expert-group: .*group size 48 must divide/],
    [['--expert-dtype', 'int8', '--quantized-file', 'off'], /option --quantized-file: off writes nothing/],
  ];
  for (const [extra, msg] of refusals) {
    it(`${extra.join(' ')}: refused by name, exit 2, no stack`, () => {
      const r = runCli(['quantize-experts', '--model', model, ...extra]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }
});
