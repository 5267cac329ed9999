/**
 * The routing the committed H200 offload benches replayed: the ESFT tasks summary, translation and intent
 * (their `offload.routing`, in that order), imported here from ../shared/traces/esft into `dir`. Shared by
 * the tests that recompute the simulator's prediction for committed bench points.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { importEsft } from '../../../traces/src/import-esft.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import type { RoutingReplay } from '../../src/offload/routing-replay.js';

export const BENCH_ESFT_TASKS = ['summary', 'translation', 'intent'] as const;

export function importBenchReplays(esftDir: string, dir: string): RoutingReplay[] {
  return BENCH_ESFT_TASKS.map((t) => {
    const path = join(dir, `${t}.arrow`);
    importEsft(join(esftDir, t), path);
    return { path, corpus: toSequences(readTrace(path)) };
  });
}

/** ../shared/traces/esft beside the checkout (or one level further up, for a worktree), and whether the tasks are there. */
export function benchEsftDir(repo: string): { dir: string; have: boolean } {
  const dir = [resolve(repo, '..', 'shared', 'traces', 'esft'), resolve(repo, '..', '..', 'shared', 'traces', 'esft')].find((d) => existsSync(join(d, 'intent'))) ??
    resolve(repo, '..', 'shared', 'traces', 'esft');
  return { dir, have: BENCH_ESFT_TASKS.every((t) => existsSync(join(dir, t))) };
}
