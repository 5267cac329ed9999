import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findRepoRoot } from '../engine/native-binding.js';
import { UserError } from '../../../core/src/errors.js';
import type { GridPoint } from './grid.js';

/** What tools/oracle/bench_transformers.py returns for one grid point (times in ms). */
export interface BaselinePoint extends GridPoint {
  repeats: number;
  prefillMs: { mean: number; min: number };
  msPerToken: { mean: number; p50: number; p99: number };
  decodeTokensPerSecond: number;
  peakGpuBytes: number;
}

export interface BaselineResult {
  device: string;
  dtype: string;
  attn: string;
  torch: string;
  transformers: string;
  loadSeconds: number;
  check: { sequences: number; positions: number; layers: number; seconds: number } | null;
  checkFp32?: { sequences: number; positions: number; layers: number; seconds: number };
  grid: BaselinePoint[];
}

export interface BaselineRequest {
  check: { sequences: number[][]; logitsPath: string; hiddenPath: string; fp32: { logitsPath: string; hiddenPath: string } | null } | null;
  grid: (GridPoint & { prompts: number[][] })[];
  repeats: number;
  warmupTokens: number;
}

/** The Python to run: --python, else $MOE_PYTHON, else the repository's .venv, else python3 (the GPU machine's). */
export function resolvePython(option: string | undefined): string {
  if (option) return option;
  if (process.env.MOE_PYTHON) return process.env.MOE_PYTHON;
  const venv = join(findRepoRoot(), '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

/**
 * Runs transformers on the same checkpoint (one process: load once, then the reference for the
 * agreement check and the timing grid). Its stderr passes through as progress.
 */
export function runTransformers(python: string, model: string, request: BaselineRequest, workDir: string): BaselineResult {
  const script = join(findRepoRoot(), 'tools', 'oracle', 'bench_transformers.py');
  if (!existsSync(script)) throw new UserError(`--baseline/--check transformers: ${script} is missing`);
  const reqPath = join(workDir, 'transformers-request.json');
  const outPath = join(workDir, 'transformers-result.json');
  writeFileSync(reqPath, JSON.stringify(request));
  const r = spawnSync(python, [script, '--model', model, '--request', reqPath, '--out', outPath], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) throw new UserError(`--baseline transformers: cannot run ${python} (${r.error.message}); give --python`);
  if (r.status !== 0) throw new UserError(`--baseline transformers: ${script} failed with exit status ${r.status} (its messages are above)`);
  return JSON.parse(readFileSync(outPath, 'utf8')) as BaselineResult;
}
