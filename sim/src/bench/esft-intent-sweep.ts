/**
 * Regenerates reports/sim/esft-intent/: every policy over cache sizes 4..48 on the real ESFT intent trace
 * (batch 1, no prefetch, misses fetched, default calibration profile).
 *   node dist/sim/src/bench/esft-intent-sweep.js [--out reports/sim/esft-intent] [--esft DIR]
 * Skips with a message when ../shared/traces/esft is absent. The trace is imported to a temporary file and
 * never copied into the repository.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProgress } from '../../../core/src/progress.js';
import { importEsft } from '../../../traces/src/import-esft.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences } from '../../../traces/src/sequences.js';
import { defaultCalibration } from '../cost/calibration.js';
import { writeSweepOutputs } from '../report/outputs.js';
import { formatTable } from '../report/table.js';
import { runSweep, sweepSize, type SweepGrid } from '../sweep.js';

export const ESFT_INTENT_GRID: SweepGrid = {
  policies: ['lru', 'lfu', 'fifo', 'lfru', 'belady', 'opt', 'static'],
  caches: [4, 6, 8, 12, 16, 20, 24, 32, 40, 48],
  batches: [1],
  prefetchers: ['none'],
  misses: ['fetch'],
};

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = resolve(dir, '..');
  return dir;
}

async function main(): Promise<void> {
  const root = findRepoRoot();
  const argv = process.argv;
  const opt = (name: string, fallback: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
  const esft = resolve(opt('--esft', join(root, '..', 'shared', 'traces', 'esft')));
  const out = opt('--out', join(root, 'reports', 'sim', 'esft-intent'));
  if (!existsSync(join(esft, 'intent'))) {
    process.stdout.write(`esft-intent-sweep: skipped, ${join(esft, 'intent')} is absent\n`);
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'sim-esft-'));
  try {
    const file = join(tmp, 'esft-intent.arrow');
    importEsft(join(esft, 'intent'), file, { quiet: true });
    const corpus = toSequences(readTrace(file));
    const progress = startProgress('esft intent sweep', sweepSize(ESFT_INTENT_GRID), { unit: 'configurations' });
    const results = runSweep(corpus, ESFT_INTENT_GRID, { calibration: defaultCalibration() }, () => progress.tick());
    progress.done();
    const files = await writeSweepOutputs(out, results, {
      tracePath: '../shared/traces/esft/intent (imported with traces import esft)',
      traceName: 'esft-intent',
      generatedBy: 'node dist/sim/src/bench/esft-intent-sweep.js',
    });
    process.stdout.write(`${formatTable(results)}\nwrote ${files.length} files to ${out}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
