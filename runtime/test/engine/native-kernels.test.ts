/** Runs the C++ test executables (kernel, offload cache, miss rule, quantized experts, engine options, the CUDA decode kernels' host emulation; built with the addon) from vitest. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../../core/test/helpers.js';

const exe = join(repoRoot, 'native', 'build', 'moe_kernel_tests');
const offloadExe = join(repoRoot, 'native', 'build', 'moe_offload_tests');
const missExe = join(repoRoot, 'native', 'build', 'moe_miss_tests');
const quantExe = join(repoRoot, 'native', 'build', 'moe_quant_tests');
const optionsExe = join(repoRoot, 'native', 'build', 'moe_engine_options_tests');
const emuExe = join(repoRoot, 'native', 'build', 'moe_cuda_emu_tests');
const emuControlExe = join(repoRoot, 'native', 'build', 'moe_cuda_emu_control');
const all = [exe, offloadExe, missExe, quantExe, optionsExe, emuExe, emuControlExe];
const built = all.every((f) => existsSync(f));
if (!built) {
  const msg = `native tests: ${all.filter((f) => !existsSync(f)).join(', ')} not built; run \`npm run build:native\``;
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

  it('the C++ expert cache passes its hand-worked policy tests', () => {
    const r = spawnSync(offloadExe, [], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/all offload cache tests passed/);
  });

  it('the miss rule and the CPU expert executor pass their hand-worked and reference tests', () => {
    const r = spawnSync(missExe, [], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/all miss policy tests passed/);
  });

  it('the quantized expert formats, quantizer and CPU kernels (every instruction set this CPU runs) pass their reference tests', () => {
    const r = spawnSync(quantExe, [], { encoding: 'utf8' });
    console.log(r.stdout.split('\n').filter((l) => /skipped|FAIL/.test(l)).join('\n'));
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/all quant tests passed/);
  });

  it('the CUDA decode expert kernels, run on the host, give the bits of the CPU expert that rounds as they do (and a sequential warp sum does not)', () => {
    const r = spawnSync(emuExe, [], { encoding: 'utf8' });
    console.log(r.stdout.split('\n').filter((l) => /^case|TOTAL|DIFF/.test(l)).join('\n'));
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/TOTAL: \d+ compared, 0 differ/);
    const c = spawnSync(emuControlExe, ['a', 'b'], { encoding: 'utf8' });
    expect(c.status, c.stdout + c.stderr).toBe(0);
    expect(c.stdout).toMatch(/control: the sequential warp sum differs, as it must/);
  });

  it('int4_fit_bench runs, the search has the lower median expert error than round-to-nearest, and a bad group is refused by name', () => {
    const bench = join(repoRoot, 'native', 'build', 'int4_fit_bench');
    const r = spawnSync(bench, ['--experts', '3', '--hidden', '256', '--d-ff', '128', '--rows', '4'], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const p50 = (fit: string) => Number(new RegExp(`\\| ${fit} \\| [0-9.]+% \\| ([0-9.]+)%`).exec(r.stdout)?.[1]);
    expect(p50('search')).toBeLessThan(p50('nearest'));
    const bad = spawnSync(bench, ['--group', '48'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/group size 48/);
  });

  it('engine options are refused by name where they cannot apply', () => {
    const r = spawnSync(optionsExe, [], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/engine options tests: all passed/);
  });
});
