/**
 * Replay-speed benchmark: the three ESFT tasks concatenated (about 25k tokens x 26 MoE layers), one
 * configuration at a time on one core. Reports, per configuration, the canonical cache replay (lanes and
 * request sets included) in requests per second, and the full timing simulation in events per second.
 *   node dist/sim/src/bench/replay-speed.js [--out reports/bench/sim-replay-speed.json] [--esft DIR]
 * Skips with a message when ../shared/traces/esft is absent.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { importEsft } from '../../../traces/src/import-esft.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences, type RoutingCorpus } from '../../../traces/src/sequences.js';
import { replayLayers } from '../cache/replay.js';
import type { PolicyName } from '../cache/types.js';
import { defaultCalibration } from '../cost/calibration.js';
import { prepareReplay } from '../replay/replay-corpus.js';
import { runSimulation } from '../simulation.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), existsSync(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json')) ? '../../..' : '../../../..');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function concatCorpora(parts: RoutingCorpus[]): RoutingCorpus {
  const sequences = parts.flatMap((p) => p.sequences).map((s, i) => ({ ...s, seq: i }));
  return { ...parts[0], meta: { ...parts[0].meta, dataset: 'esft/intent+summary+translation' }, sequences };
}

function best(n: number, f: () => void): number {
  let min = Infinity;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    f();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

function main(): void {
  const esft = resolve(arg('--esft', join(repoRoot, '..', 'shared', 'traces', 'esft')));
  const out = arg('--out', join(repoRoot, 'reports', 'bench', 'sim-replay-speed.json'));
  if (!existsSync(esft)) {
    process.stdout.write(`replay-speed: skipped, ${esft} is absent (the ESFT traces are needed to build the 25k-token trace)\n`);
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'sim-bench-'));
  let corpus: RoutingCorpus;
  try {
    corpus = concatCorpora(
      ['intent', 'summary', 'translation'].map((task) => {
        const f = join(tmp, `${task}.arrow`);
        importEsft(join(esft, task), f, { quiet: true });
        return toSequences(readTrace(f));
      }),
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const tokens = corpus.sequences.reduce((a, s) => a + s.length, 0);
  const L = corpus.moeLayers.length;
  const calibration = defaultCalibration();
  const rows: Array<Record<string, string | number>> = [];
  const configs: Array<[PolicyName, number, number]> = [
    ['lru', 16, 1], ['lfu', 16, 1], ['lfru', 16, 1], ['belady', 16, 1], ['fifo', 16, 1], ['lru', 32, 16], ['belady', 32, 16],
  ];
  for (const [policy, cache, batch] of configs) {
    let requests = 0;
    // Canonical replay, everything included: lanes, request sets, next-use table, caches.
    const replayMs = best(3, () => {
      const p = prepareReplay(corpus, batch);
      requests = replayLayers(p.sets, policy, cache).requests;
    });
    let events = 0;
    const timingMs = best(1, () => {
      events = runSimulation(corpus, { policy, cacheSize: cache, batch, prefetch: 'none', miss: 'fetch', calibration }).events;
    });
    rows.push({
      policy, cache, batch, requests,
      replay_ms: +replayMs.toFixed(1),
      replay_requests_per_s: Math.round(requests / (replayMs / 1000)),
      timing_ms: +timingMs.toFixed(1),
      timing_events: events,
      timing_events_per_s: Math.round(events / (timingMs / 1000)),
    });
  }
  const header = `replay speed: ${corpus.sequences.length} sequences, ${tokens} tokens x ${L} MoE layers (ESFT intent+summary+translation), node ${process.version}, ${cpus()[0]?.model ?? 'cpu'}`;
  const cols = Object.keys(rows[0]);
  const lines = [header, cols.map((c) => c.padStart(Math.max(c.length, 8))).join(' ')];
  for (const r of rows) lines.push(cols.map((c) => String(r[c]).padStart(Math.max(c.length, 8))).join(' '));
  process.stdout.write(lines.join('\n') + '\n');
  mkdirSync(dirname(out), { recursive: true });
  writeFileAtomic(out, JSON.stringify({ benchmark: 'sim-replay-speed', tokens, moeLayers: L, node: process.version, cpu: cpus()[0]?.model, createdAt: new Date().toISOString(), rows }, null, 2) + '\n');
  process.stdout.write(`wrote ${out}\n`);
}

main();
