/**
 * --expert-dtype / --expert-group / --check-quant on the engine commands (issue 13): refused by name with
 * exit 2 and no stack, before the engine loads. A real tiny checkpoint is passed so that the refusal is the
 * flag's, not a missing model's.
 */
import { describe, expect, it } from 'vitest';
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
    [['bench', '--device', 'cpu', '--check-quant', 'int8'], /option --check-quant: needs --device cuda/],
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
