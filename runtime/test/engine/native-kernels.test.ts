/** Runs the C++ kernel tests (native/tests/kernel_tests.cpp, built with the addon) from vitest. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers.js';

const exe = join(repoRoot, 'native', 'build', 'moe_kernel_tests');
const built = existsSync(exe);
if (!built) {
  const msg = `native kernel tests: ${exe} is not built; run \`npm run build:native\``;
  if (process.env.CI === 'true') throw new Error(msg);
  console.warn(`[skip] ${msg}`);
}

describe.skipIf(!built)('native kernels against their references', () => {
  it('all kernel checks pass on every instruction set this CPU runs', () => {
    const r = spawnSync(exe, [], { encoding: 'utf8' });
    console.log(r.stdout.split('\n').filter((l) => /CPU|skipped|FAIL/.test(l)).join('\n'));
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/all kernel tests passed/);
  });
});
