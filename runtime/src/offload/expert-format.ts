/**
 * Engine.load's `expertDtype` / `expertGroup` (issue 13): how the routed experts are stored in host memory,
 * in the GPU slots and for the CPU experts. bf16 (the default) is exactly the pre-issue-13 engine; int8 and
 * int4 are quantized once at load from the bf16 checkpoint (native/include/moe/quant/expert_format.h): on
 * device cuda the offloaded experts (the all-resident CUDA engine computes bf16 experts, so a quantized dtype
 * there is refused by name rather than silently ignored), on device cpu the CPU engine's own copy in host
 * memory, computed by the quantized CPU expert kernels.
 */
import type { ModelConfig } from '../model/config.js';
import { DEFAULT_EXPERT_GROUP, EXPERT_DTYPES, expertLayout, type ExpertDtype } from '../../../sim/src/cost/expert-layout.js';
import { UserError } from '../../../core/src/errors.js';
import type { ExpertFormat } from './gpu-budget.js';

export interface ExpertFormatOptions {
  expertDtype?: ExpertDtype;
  expertGroup?: number;
}

/** The checked format, refused (naming the option) on a device or placement that cannot use it. */
export function resolveExpertFormat(config: ModelConfig, o: ExpertFormatOptions, device: 'cpu' | 'cuda', offloaded: boolean): ExpertFormat {
  const dtype = o.expertDtype ?? 'bf16';
  if (!(EXPERT_DTYPES as readonly string[]).includes(dtype)) {
    throw new UserError(`option --expert-dtype: unknown value '${String(dtype)}' (choose from ${EXPERT_DTYPES.join(', ')})`);
  }
  if (o.expertGroup !== undefined && dtype !== 'int4') {
    throw new UserError(`option --expert-group: only with --expert-dtype int4 (int8 has one scale per output channel${dtype === 'bf16' ? ', bf16 none' : ''})`);
  }
  const group = o.expertGroup ?? DEFAULT_EXPERT_GROUP;
  if (dtype === 'bf16') return { dtype, group };
  if (!Number.isInteger(group) || group < 2 || group > 1 << 16) throw new UserError(`option --expert-group: must be a positive even whole number, got ${String(o.expertGroup)}`);
  if (device === 'cuda' && !offloaded) throw new UserError(`option --expert-dtype ${dtype}: needs offloaded experts (--cache C or --gpu-memory SIZE); all-resident experts stay bf16`);
  try {
    expertLayout(dtype, config.hiddenSize, config.moeIntermediateSize, group);
  } catch (err) {
    throw new UserError(`option --expert-group: ${(err as Error).message}`);
  }
  return { dtype, group };
}

/**
 * The load options that say a format (Engine.load's and the native load's expertDtype / expertGroup); bf16
 * gives none: exactly the pre-issue-13 load, on any build of the addon.
 */
export function expertFormatOptions(f: ExpertFormat): { expertDtype?: ExpertDtype; expertGroup?: number } {
  if (f.dtype === 'bf16') return {};
  return f.dtype === 'int4' ? { expertDtype: f.dtype, expertGroup: f.group } : { expertDtype: f.dtype };
}

/**
 * After load: the engine must report the dtype it was asked for (device_info().offload.expertDtype). An
 * addon built before issue 13 ignores the option and would run bf16 experts under an int8 label.
 */
export function checkLoadedFormat(format: ExpertFormat, offload: Record<string, unknown> | null): void {
  if (format.dtype === 'bf16') return;
  const got = offload?.expertDtype;
  if (got !== format.dtype) {
    throw new UserError(
      `option --expert-dtype ${format.dtype}: this build of the native engine ${got === undefined ? 'does not support quantized experts here (it reports no expertDtype)' : `loaded ${String(got)} experts`}; rebuild it (tools/gpu/build-cuda.sh)`,
    );
  }
}
