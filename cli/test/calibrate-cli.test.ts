import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCalibration } from '../../sim/src/cost/calibration.js';
import { parseCalibrateOptions } from '../commands/calibrate.js';
import { rawPathFor } from '../../runtime/src/calibrate/run.js';
import { loadCalibrateNative } from '../../runtime/src/calibrate/native.js';
import { addonBuilt, requireAddonOrSkip } from '../../runtime/test/engine/helpers.js';
import { repoRoot, runCli, tempDir } from '../../core/test/helpers.js';

// A build with the CUDA backend measures instead of refusing: the refusal test needs a CPU-only build.
const cudaBuilt = addonBuilt && loadCalibrateNative().cudaBuilt();
const base = join(repoRoot, 'sim', 'calibration', 'default-h200-pcie5.json');
const tmp = tempDir('calibrate-test-');
afterAll(() => tmp.cleanup());

describe('calibrate option checks (before anything is measured)', () => {
  const out = join(tmp.path, 'p.json');
  const parse = (o: Record<string, unknown>) => () => parseCalibrateOptions({ device: 'cuda', out, ...o } as never, 'test');
  it('refuses bad options with a message naming the option', () => {
    expect(parse({ out: undefined })).toThrow(/option --out: required/);
    expect(parse({ out: join(tmp.path, 'p.txt') })).toThrow(/option --out: .* must end in \.json/);
    expect(parse({ out: join(tmp.path, 'no-such-dir', 'p.json') })).toThrow(/option --out: the folder .* does not exist/);
    expect(parse({ device: 'gpu' })).toThrow(/option --device: unknown value 'gpu'/);
    expect(parse({ device: 'cpu' })).toThrow(/option --device cpu: measures the CPU figures only; add --cpu-only --base/);
    expect(parse({ device: 'cpu', cpuOnly: true })).toThrow(/option --cpu-only: needs --base/);
    expect(parse({ cpuOnly: true, base })).toThrow(/option --cpu-only: goes with --device cpu/);
    expect(parse({ base })).toThrow(/option --base: only used with --cpu-only/);
    expect(parse({ device: 'cpu', cpuOnly: true, base: out })).toThrow(/option --base: must not be the --out file/);
    expect(parse({ threads: '0' })).toThrow(/option --threads: 0 is out of range/);
    expect(parse({ threads: '1,x' })).toThrow(/option --threads: 'x' is not an integer/);
    expect(parse({ model: tmp.path, geometry: 'tiny-a' })).toThrow(/options --model and --geometry/);
    expect(parse({ model: join(tmp.path, 'missing') })).toThrow(/option --model: .* is not a directory/);
    expect(parse({ name: 'a/b' })).toThrow(/option --name/);
    // issue 15: an existing profile (or its raw file) is replaced only with --force; a device is never a profile.
    writeFileSync(join(tmp.path, 'old.json'), '{}');
    expect(parse({ out: join(tmp.path, 'old.json') })).toThrow(/option --out: .*old\.json already exists; pass --force/);
    expect(parse({ out: join(tmp.path, 'old.json'), force: true })).not.toThrow();
    writeFileSync(join(tmp.path, 'old2.raw.json'), '{}');
    expect(parse({ out: join(tmp.path, 'old2.json') })).toThrow(/old2\.raw\.json already exists; pass --force/);
  });
  it('accepts a valid CPU-only request', () => {
    const o = parseCalibrateOptions({ device: 'cpu', cpuOnly: true, base, out, threads: '2,1,2', quick: true }, 'test');
    expect(o.threads).toEqual([1, 2]);
    expect(o.geometry).toBe('lite');
  });
});

describe.skipIf(!addonBuilt)('calibrate end to end on the CPU (native addon)', () => {
  requireAddonOrSkip('calibrate end to end');

  it('--device cpu --cpu-only --quick on tiny shapes writes a profile the simulator loads, and its raw file', () => {
    const out = join(tmp.path, 'tiny-cpu.json');
    const r = runCli(['calibrate', '--device', 'cpu', '--cpu-only', '--base', base, '--quick', '--geometry', 'tiny-a', '--threads', '1', '--out', out]);
    expect(r.stderr).toContain('--device cpu measures the CPU figures only');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/cpu\.expertMs @1/);
    const p = loadCalibration(out);
    const b = loadCalibration(base);
    // tiny-a: d_ff 32, hidden 64 -> 3 x 32 x 64 x 2 bytes
    expect(p.expertBytes).toBe(3 * 32 * 64 * 2);
    expect(p.measured).toBe(false);
    expect(p.transfer).toEqual(b.transfer);
    expect(p.gpu).toEqual(b.gpu);
    expect(p.cpu.expertMs.map((x) => x[0])).toEqual([1, 4]);
    for (const [, ms] of p.cpu.expertMs) expect(ms).toBeGreaterThan(0);
    expect(p.sources?.['cpu.expertMs']).toMatch(/^measured by calibrate on .*mlp_forward/);
    expect(p.sources?.['cpu.workers']).toMatch(/^measured by calibrate on .*chosen by measurement/);
    expect(p.sources?.['gpu.expertMs']).toMatch(/^not measured \(--cpu-only\): taken from /);
    const raw = JSON.parse(readFileSync(rawPathFor(out), 'utf8'));
    expect(raw.format).toBe('moe-offload-calibrate-raw-v1');
    expect(raw.gpu).toBeNull();
    expect(raw.cpu.experts.length).toBeGreaterThanOrEqual(2);
    for (const e of raw.cpu.experts) expect(e.samples.length).toBe(3);

    const sim = runCli(['simulate', '--calibration', out, '--policy', 'lru', '--json', '--quiet']);
    expect(sim.status, sim.stderr).toBe(0);
    expect(JSON.parse(sim.stdout).calibrationLabel).toContain('tiny-cpu');
  });

  it.skipIf(cudaBuilt)('refuses --device cuda on a build without the CUDA backend, and writes nothing', () => {
    const out = join(tmp.path, 'cuda.json');
    const r = runCli(['calibrate', '--out', out, '--quick']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/this build has no CUDA backend/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(rawPathFor(out))).toBe(false);
  });

  it('refuses thread counts above the hardware threads and a malformed base profile, naming them', () => {
    const out = join(tmp.path, 'bad.json');
    const r = runCli(['calibrate', '--device', 'cpu', '--cpu-only', '--base', base, '--quick', '--geometry', 'tiny-a', '--threads', '1,4096', '--out', out]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/option --threads: 4096 exceed the \d+ hardware threads/);
    const badBase = join(tmp.path, 'bad-base.json');
    writeFileSync(badBase, '{"schema": "moe-offload.calibration", "version": 1}');
    const r2 = runCli(['calibrate', '--device', 'cpu', '--cpu-only', '--base', badBase, '--quick', '--geometry', 'tiny-a', '--out', out]);
    expect(r2.status).not.toBe(0);
    expect(r2.stderr).toContain(`${badBase}: not a calibration profile`);
    expect(existsSync(out)).toBe(false);
  });
});
