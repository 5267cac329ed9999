import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { UserError } from '../../core/src/errors.js';
import { parseChoiceOption, parseIntOption } from '../../core/src/options.js';
import { checkOutputFile } from '../../core/src/output-path.js';
import { DEEPSEEK_V2_LITE_GEOMETRY, esftLayerFiles, importEsftInterruptible } from '../../traces/src/import-esft.js';
import { readTrace } from '../../traces/src/reader.js';
import { traceColumns } from '../../traces/src/columns.js';

// DuckDB is a native package: it is loaded only by the subcommands that use it, so that the CLI bundle
// carried to the GPU machine (which has no DuckDB binding) still starts.

export function register(program: Command): void {
  const traces = program.command('traces').description('import, inspect and export routing traces (trace format v1, traces/SCHEMA.md)');

  traces
    .command('import')
    .description('convert routing traces from another format into trace v1')
    .argument('<format>', 'source format: esft')
    .argument('<dir>', 'folder of the source traces (for esft: expert_weights_<layer>.txt files)')
    .requiredOption('--out <file>', 'trace v1 file to write (.arrow)')
    .option('--layers <n>', 'model layers, dense ones included', String(DEEPSEEK_V2_LITE_GEOMETRY.numLayers))
    .option('--first-moe-layer <n>', 'model index of the first MoE layer', String(DEEPSEEK_V2_LITE_GEOMETRY.firstMoeLayer))
    .option('--experts <n>', 'routed experts per MoE layer', String(DEEPSEEK_V2_LITE_GEOMETRY.numExperts))
    .option('--top-k <n>', 'experts per token', String(DEEPSEEK_V2_LITE_GEOMETRY.topK))
    .option('--force', 'replace --out if it exists')
    .option('--quiet', 'no progress output')
    .action(async (format: string, dir: string, o) => {
      parseChoiceOption('<format>', format, ['esft'] as const);
      const numLayers = parseIntOption('--layers', o.layers, 2, 4096);
      const geometry = {
        numLayers,
        firstMoeLayer: parseIntOption('--first-moe-layer', o.firstMoeLayer, 0, numLayers - 1),
        numExperts: parseIntOption('--experts', o.experts, 1, 65535),
        topK: parseIntOption('--top-k', o.topK, 1, 65535),
      };
      if (geometry.topK > geometry.numExperts) throw new UserError(`option --top-k: ${geometry.topK} exceeds --experts ${geometry.numExperts}`);
      // Before parsing anything: a bad --out must not cost the whole parse.
      checkOutputFile(o.out, { option: '--out', force: o.force, inputs: [...esftLayerFiles(dir).values()] });
      const r = await importEsftInterruptible(dir, o.out, { geometry, quiet: o.quiet });
      process.stdout.write(`wrote ${o.out}: ${r.sequences} sequences, ${r.tokens} tokens\n`);
    });

  traces
    .command('info')
    .description('sequences, tokens, layers, experts, popularity skew and consecutive-token overlap of a trace')
    .argument('<file>', 'trace v1 file')
    .option('--json', 'print JSON')
    .action(async (file: string, o) => {
      const { formatTraceInfo, traceInfo } = await import('../../traces/src/info.js');
      const t = readTrace(file);
      const info = await traceInfo(t, traceColumns(t));
      process.stdout.write(o.json ? JSON.stringify(info, null, 2) + '\n' : formatTraceInfo(info) + '\n');
    });

  traces
    .command('export')
    .description('export a trace for other tools: Parquet (DuckDB, polars, pandas) or CSV')
    .argument('<file>', 'trace v1 file')
    .requiredOption('--out <file>', 'output file')
    .option('--format <fmt>', 'parquet or csv', 'parquet')
    .option('--long', 'one row per routed expert (step, layer, seq, pos, rank, expert, weight) instead of one per token and layer')
    .option('--force', 'replace --out if it exists')
    .action(async (file: string, o) => {
      const format = parseChoiceOption('--format', o.format, ['parquet', 'csv'] as const);
      if (!existsSync(file)) throw new UserError(`${file}: no such file`);
      checkOutputFile(o.out, { option: '--out', force: o.force, inputs: [file] });
      const { exportTrace } = await import('../../traces/src/export.js');
      await exportTrace(readTrace(file), o.out, format, !!o.long);
      process.stdout.write(`wrote ${o.out}\n`);
    });
}
