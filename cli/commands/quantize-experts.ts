import type { Command } from 'commander';
import { UserError } from '../../core/src/errors.js';
import { parseChoiceOption, parseIntOption } from '../../core/src/options.js';
import { loadNativeAddon } from '../../runtime/src/engine/native-binding.js';
import { toNativeConfig, toNativeTensors } from '../../runtime/src/engine/native-config.js';
import { openCheckpoint } from '../../runtime/src/model/checkpoint.js';
import { nativeQuantizerId, planQuantizedFile } from '../../runtime/src/offload/quantized-file.js';
import { resolveExpertFormat } from '../../runtime/src/offload/expert-format.js';
import { printWarnings } from '../warnings.js';

/**
 * `quantize-experts`: the quantized experts file built (or checked) ahead of a GPU run, on any machine with
 * the native engine; no GPU needed. It does what a `--quantized-file` load does (quantized-file.ts, the addon's
 * expertBlobs): an up-to-date file is read and every expert checked against its checksum (a bad one
 * re-quantized and the file rewritten); otherwise the experts are quantized and the file written.
 */
export function register(program: Command): void {
  program
    .command('quantize-experts')
    .description('write the quantized experts file a later --quantized-file load reads (no GPU needed), or check an existing one expert by expert')
    .requiredOption('--model <dir>', 'checkpoint directory (Hub layout)')
    .requiredOption('--expert-dtype <dtype>', 'int8 or int4')
    .option('--expert-group <n>', 'with int4: inputs per group (must divide hidden_size and moe_intermediate_size)', '64')
    .option('--quantized-file <f>', 'auto (<checkpoint>/moe-offload-experts-<dtype>[-g<group>].safetensors) or a path', 'auto')
    .option('--force', 'quantize and write even when an up-to-date file is there')
    .action(async (o: { model: string; expertDtype: string; expertGroup: string; quantizedFile: string; force?: boolean }) => {
      const dtype = parseChoiceOption('--expert-dtype', o.expertDtype, ['int8', 'int4'] as const);
      const group = parseIntOption('--expert-group', o.expertGroup, 2, 1 << 16);
      if (o.quantizedFile === 'off') throw new UserError('option --quantized-file: off writes nothing; name auto or a path');
      const ckpt = openCheckpoint(o.model);
      printWarnings(ckpt.warnings);
      // the CPU engine's checks of the format (the group must divide the expert's dims)
      const format = resolveExpertFormat(ckpt.config, { expertDtype: dtype, ...(dtype === 'int4' ? { expertGroup: group } : {}) }, 'cpu', false);
      const addon = loadNativeAddon();
      const plan = planQuantizedFile(ckpt, format, o.quantizedFile, () => nativeQuantizerId(addon, ckpt.config, format), (w) => process.stderr.write(`moe-offload: warning: ${w}\n`))!;
      if (o.force) plan.mode = 'write';
      process.stderr.write(`quantize-experts: ${plan.mode === 'read' ? 'checking' : 'writing'} ${plan.path}\n`);
      const t0 = performance.now();
      const r = await addon.expertBlobs!({ config: toNativeConfig(ckpt.config), tensors: toNativeTensors(ckpt), dtype, group: format.group, file: plan });
      const f = r.file!;
      const gb = (r.bytes / 1e9).toFixed(2);
      const seconds = ((performance.now() - t0) / 1e3).toFixed(1);
      if (f.read && f.rebuiltExperts === 0 && f.warning === '') {
        process.stdout.write(`${f.path}: up to date, every expert's checksum verified (${gb} GB of ${dtype} experts read in ${f.readSeconds.toFixed(1)} s)\n`);
      } else if (f.written) {
        process.stdout.write(`wrote ${f.path}: ${gb} GB of ${dtype} experts (${f.rebuiltExperts > 0 && f.read ? `${f.rebuiltExperts} re-quantized, ` : ''}quantized in ${r.quantizeSeconds.toFixed(1)} s, written in ${f.writeSeconds.toFixed(1)} s; ${seconds} s in all)\n`);
      } else {
        throw new UserError(`quantize-experts: ${f.path} was not written: ${f.warning}`, 1);
      }
    });
}
