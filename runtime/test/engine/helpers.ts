/** Helpers of the engine tests: is the native addon built, tiny checkpoints, the transformers oracle. */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelConfig } from '../../src/model/config.js';
import { resolveGeometry } from '../../src/model/synth/geometries.js';
import { loadRoutingReplay, type RoutingReplay } from '../../src/offload/routing-replay.js';
import { recordTrace } from '../../src/record/recorder.js';
import { writeSyntheticCheckpoint } from '../../src/model/synth/write-checkpoint.js';
import { pythonBin, repoRoot } from '../../../core/test/helpers.js';

export const addonDir = join(repoRoot, 'native', 'build', 'Release');
export const addonBuilt = existsSync(addonDir) && readdirSync(addonDir).some((f) => f.endsWith('.node'));

/** Skips (with a warning) when the addon is not built; in CI its absence is a failure. */
export function requireAddonOrSkip(suite: string): boolean {
  if (!addonBuilt) {
    const msg = `${suite}: the native addon is not built (${addonDir}/*.node); run \`npm run build:native\``;
    if (process.env.CI === 'true') throw new Error(msg);
    console.warn(`[skip] ${msg}`);
  }
  return addonBuilt;
}

export async function makeCheckpoint(out: string, geometry: string, seed: number): Promise<string> {
  await writeSyntheticCheckpoint({ geometry: resolveGeometry(geometry), seed, out, quiet: true });
  return out;
}

/**
 * A tiny-a checkpoint (seed 3) and a routing replay of `sequences` sequences recorded from a tiny-a model
 * of another seed (4), so the replayed routing differs from the model's own.
 */
export async function checkpointWithForeignReplay(dir: string, sequences: number): Promise<{ model: string; replay: RoutingReplay }> {
  const model = await makeCheckpoint(join(dir, 'model'), 'tiny-a', 3);
  const other = await makeCheckpoint(join(dir, 'other'), 'tiny-a', 4);
  const trace = join(dir, 'trace.arrow');
  await recordTrace({ model: other, dataset: 'builtin', batch: sequences, promptLen: 8, gen: 8, sequences, out: trace, quiet: true });
  return { model, replay: loadRoutingReplay(trace, loadModelConfig(model)) };
}

export interface OracleResult {
  prompt: number[];
  tokens: number[];
  logits: number[][];
  hidden_states?: { embed: number[][]; layers: number[][][]; final_norm: number[][] };
}

/** Runs tools/oracle/dump_logits.py (greedy, fp32, every prompt on its own). */
export function runOracle(model: string, prompts: number[][], maxNewTokens: number, work: string, hiddenStates = false): OracleResult[] {
  const inputs = join(work, 'oracle-prompts.json');
  const out = join(work, 'oracle-out.json');
  writeFileSync(inputs, JSON.stringify(prompts));
  const args = [join(repoRoot, 'tools', 'oracle', 'dump_logits.py'), '--model', model, '--inputs', inputs, '--max-new-tokens', String(maxNewTokens), '--out', out, '--no-stop-at-eos'];
  if (hiddenStates) args.push('--hidden-states');
  const r = spawnSync(pythonBin, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`oracle failed (${r.status}): ${r.stderr}`);
  return (JSON.parse(readFileSync(out, 'utf8')) as { results: OracleResult[] }).results;
}

/** ||got - want|| / ||want|| */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} != ${want.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i] - want[i]) ** 2;
    den += want[i] ** 2;
  }
  return Math.sqrt(num / den);
}
