/** The expert-storage options (issue 13) that generate, chat, serve, simulate and calibrate share; bench takes --expert-dtype as a list. */
import type { Command } from 'commander';

export const EXPERT_DTYPE_HELP =
  'routed experts stored as bf16 (the checkpoint as it is), int8 (symmetric per output channel) or int4 (groups of --expert-group inputs, fp16 scale and zero); quantized on --device cuda: the offloaded experts (needs --cache or --gpu-memory); on --device cpu: the CPU engine\'s own copy';

export const QUANTIZED_FILE_HELP =
  'with --expert-dtype int8 / int4: off (quantize at every load), auto (<checkpoint>/moe-offload-experts-<dtype>[-g<group>].safetensors) or a path: the first load writes the quantized experts there, later loads read them (checked: a file from another checkpoint or format is rebuilt)';

export function addExpertDtypeFlags(cmd: Command, opts: { list?: boolean; help?: string } = {}): Command {
  return cmd
    .option(opts.list ? '--expert-dtype <list>' : '--expert-dtype <dtype>', opts.help ?? (opts.list ? `${EXPERT_DTYPE_HELP} (comma-separated: a grid dimension)` : EXPERT_DTYPE_HELP), 'bf16')
    .option('--expert-group <n>', 'with --expert-dtype int4: inputs per group (must divide hidden_size and moe_intermediate_size)', '64')
    .option('--quantized-file <f>', QUANTIZED_FILE_HELP, 'off');
}
