/**
 * The cost model for one expert dtype (issue 13). A profile's top-level figures are bf16's; a quantized
 * dtype takes its measured entry (`byExpertDtype.int8`, written by `calibrate --expert-dtype`), or, with no
 * entry (or one measured at another int4 group size), the bf16 figures scaled by the blob's bytes: the copy
 * moves fewer bytes, and the expert kernels, which at decode sizes stream their weights, are assumed to take
 * time in proportion. That scaling is an assumption, not a measurement, so it comes with a warning that
 * every output using it must print.
 */
import { UserError } from '../../../core/src/errors.js';
import type { CostModel, TokenCurve } from './calibration.js';
import { interpolate } from './cost-model.js';
import { DEFAULT_EXPERT_GROUP, expertBlobBytes, type ExpertDtype } from './expert-layout.js';

/** DeepSeek-V2-Lite's expert (hidden 2048, d_ff 1408): the shape of profiles written before expertShape existed. */
export const LITE_EXPERT_SHAPE = { hidden: 2048, dff: 1408 } as const;

export interface DtypeCostModel {
  dtype: ExpertDtype;
  model: CostModel;
  /** how the dtype's figures were obtained */
  basis: 'bf16' | 'measured' | 'scaled';
  /** set when basis is 'scaled': the sentence to print */
  warning: string | null;
}

const scale = (c: TokenCurve, r: number): TokenCurve => c.map(([t, ms]) => [t, Number((ms * r).toPrecision(4))]);

function shapeOf(m: CostModel, dtype: ExpertDtype): { hidden: number; dff: number } {
  if (m.expertShape) return m.expertShape;
  if (m.expertBytes === expertBlobBytes('bf16', LITE_EXPERT_SHAPE.hidden, LITE_EXPERT_SHAPE.dff)) return LITE_EXPERT_SHAPE;
  throw new UserError(
    `option --expert-dtype ${dtype}: calibration profile ${m.name} has no byExpertDtype.${dtype} entry and no expertShape, and its expertBytes (${m.expertBytes}) ` +
      `is not DeepSeek-V2-Lite's bf16 expert, so the ${dtype} size cannot be computed; measure it with calibrate --expert-dtype ${dtype}`,
  );
}

/**
 * The CPU job curves measured with bf16 experts for another dtype: cpu.jobMs (jobs timed inside the runtime)
 * and cpu.expertMsUnderCopy (calibrate's jobs beside running copies). Each point times that dtype's calibrated
 * expert time over bf16's at the same tokens, so the runtime's overhead over calibrate, and the slowdown
 * beside copies, stay in proportion; absent where bf16 has none. (Kept unscaled, a 0.34 ms int8 job beside
 * copies lasted bf16's 0.51 ms in the simulator.) The dtype's own logged jobs (ownJobMs), when the profile has
 * them, replace the scaled jobMs: the runtime's overhead is not in proportion (H100, 2026-12-07c: bf16 jobs 9%
 * over calibrate, int8 jobs 22%).
 */
function cpuCurvesFor(m: CostModel, dtypeExpertMs: TokenCurve, ownJobMs?: TokenCurve): { jobMs?: TokenCurve; expertMsUnderCopy?: TokenCurve } {
  const scaled = (c: TokenCurve): TokenCurve => c.map(([t, ms]) => [t, Number(((ms * interpolate(dtypeExpertMs, t)) / interpolate(m.cpu.expertMs, t)).toPrecision(4))]);
  const jobMs = ownJobMs ?? (m.cpu.jobMs ? scaled(m.cpu.jobMs) : undefined);
  return { ...(jobMs ? { jobMs } : {}), ...(m.cpu.expertMsUnderCopy ? { expertMsUnderCopy: scaled(m.cpu.expertMsUnderCopy) } : {}) };
}

/** The profile the simulator uses for experts stored as `dtype` (int4 with `group` inputs per group). */
export function costModelForDtype(m: CostModel, dtype: ExpertDtype, group = DEFAULT_EXPERT_GROUP): DtypeCostModel {
  if (dtype === 'bf16') return { dtype, model: m, basis: 'bf16', warning: null };
  const entry = m.byExpertDtype?.[dtype];
  if (entry && (dtype !== 'int4' || entry.group === group)) {
    const model: CostModel = {
      ...m,
      label: `${m.label}; ${dtype} experts: measured`,
      expertBytes: entry.expertBytes,
      // The entry's own launch table or none (then per-expert launches): bf16's launches are not this dtype's.
      // Its eager-launch overhead and layer glue when measured with its own kernel, else bf16's.
      gpu: {
        ...m.gpu,
        expertMs: entry.gpu.expertMs,
        launch: entry.gpu.launch,
        ...(entry.gpu.eagerLayerOverheadMs ? { eagerLayerOverheadMs: entry.gpu.eagerLayerOverheadMs } : {}),
        ...(entry.gpu.layerGlueMs ? { layerGlueMs: entry.gpu.layerGlueMs } : {}),
      },
      cpu: { ...m.cpu, expertMs: entry.cpu.expertMs, workers: entry.cpu.workers ?? m.cpu.workers, ...cpuCurvesFor(m, entry.cpu.expertMs, entry.cpu.jobMs) },
    };
    if (!model.gpu.launch) delete model.gpu.launch;
    return { dtype, model, basis: 'measured', warning: null };
  }
  const shape = shapeOf(m, dtype);
  const bf16 = expertBlobBytes('bf16', shape.hidden, shape.dff);
  const q = expertBlobBytes(dtype, shape.hidden, shape.dff, group);
  const r = q / bf16;
  const cpuExpertMs = scale(m.cpu.expertMs, r);
  const why = entry ? `its ${dtype} entry was measured at group ${entry.group}, not ${group}` : `it has no measured ${dtype} entry`;
  const model: CostModel = {
    ...m,
    measured: false,
    label: `${m.label}; ${dtype} experts: bf16 figures scaled by bytes (x${r.toFixed(3)}), not measured`,
    expertBytes: m.expertBytes === bf16 ? q : Math.round(m.expertBytes * r),
    gpu: { ...m.gpu, expertMs: scale(m.gpu.expertMs, r) },
    cpu: { ...m.cpu, expertMs: cpuExpertMs, ...cpuCurvesFor(m, cpuExpertMs) },
    sources: { ...m.sources, [`expertBytes (${dtype})`]: `computed: expert_layout(${dtype}${dtype === 'int4' ? `, group ${group}` : ''}) of hidden ${shape.hidden}, d_ff ${shape.dff} (sim/src/cost/expert-layout.ts)` },
  };
  delete model.gpu.launch;  // scaled figures stay per expert: no launch table is guessed
  const warning =
    `calibration profile ${m.name}: ${why}, so the ${dtype} figures are scaled, not measured: copies move ${q.toLocaleString('en-US')} bytes per expert and the bf16 GPU and CPU expert times are multiplied by ${r.toFixed(3)} ` +
    `(the bytes' ratio); measure them with calibrate --expert-dtype ${dtype}`;
  return { dtype, model, basis: 'scaled', warning };
}
