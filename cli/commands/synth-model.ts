import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { UserError } from '../../core/src/errors.js';
import { resolveGeometry, TINY_VARIANTS } from '../../runtime/src/model/synth/geometries.js';
import { writeSyntheticCheckpoint } from '../../runtime/src/model/synth/write-checkpoint.js';
import { parseIntOption } from '../../core/src/options.js';

export function register(program: Command): void {
  program
    .command('synth-model')
    .description('write a synthetic DeepSeek-V2 checkpoint (Hub layout, bf16 shards, tokenizer) with random weights from a seed')
    .requiredOption('--geometry <g>', `tiny, lite (full DeepSeek-V2-Lite), ${TINY_VARIANTS.join(', ')}, or a JSON file of config.json keys overriding lite's`)
    .option('--tiny-variant <name>', `with --geometry tiny: ${TINY_VARIANTS.join(', ')} (default tiny-a)`)
    .option('--seed <n>', 'random seed (same seed and geometry give the same bytes)', '0')
    .requiredOption('--out <dir>', 'checkpoint directory to create (built beside it, then renamed into place)')
    .option('--force', 'replace --out if it exists')
    .option('--threads <n>', 'worker threads generating weights (default: 0 for small checkpoints, else cores - 1, at most 8)')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      // A geometry file inside --out would be deleted with the old checkpoint that --force replaces.
      if (existsSync(o.geometry) && resolve(o.geometry).startsWith(resolve(o.out) + sep)) {
        throw new UserError(`option --geometry: ${o.geometry} is inside --out ${o.out}, which this run replaces; copy it elsewhere first`);
      }
      const geometry = resolveGeometry(o.geometry, o.tinyVariant);
      const seed = parseIntOption('--seed', o.seed, 0, Number.MAX_SAFE_INTEGER);
      const threads = o.threads === undefined ? undefined : parseIntOption('--threads', o.threads, 0, 256);
      const r = await writeSyntheticCheckpoint({ geometry, seed, out: o.out, force: !!o.force, quiet: !!o.quiet, threads });
      const gb = r.totalBytes / 1e9;
      process.stdout.write(
        `wrote ${r.dir}: ${geometry.name}, seed ${seed}, ${r.shards.length} shards, ${gb.toFixed(3)} GB of weights in ${r.seconds.toFixed(1)} s (${(gb / r.seconds).toFixed(2)} GB/s)\n`,
      );
    });
}
