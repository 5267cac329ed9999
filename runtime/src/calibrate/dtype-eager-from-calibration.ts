/**
 * A calibration profile whose quantized formats get their own eager-launch overhead
 * (byExpertDtype.<d>.gpu.eagerLayerOverheadMs) from a calibration that measured it with each format's decode
 * kernel (calibrate --expert-dtype bf16,int8,int4, measure-dtype.ts), applied as a ratio to the profile's
 * bf16 curve: at each batch of the calibration, base bf16 x (calibration's <d> / calibration's bf16).
 *
 * Why a ratio and not the calibration's own figures: the overhead is host launch latency, which moves between
 * device machines (the bf16 curve at batch 1 was 0.0495 ms on the profile's machine and 0.0382 on the
 * calibration's, while their GPU launch tables agree to 1%: reports/bench/int4-samecall-h200-2026-12-04/);
 * the base profile's other host figures (host.layerMs, host.stepMs) come from its own machine, so only the
 * format's effect, measured side by side with bf16 in one call, is carried over.
 *
 *   node dist/runtime/src/calibrate/dtype-eager-from-calibration.js --base profile.json --calibration cal.json --out F [--name NAME] [--label TEXT]
 */
import { loadCalibration, type CostModel, type TokenCurve } from '../../../sim/src/cost/calibration.js';
import { interpolate } from '../../../sim/src/cost/cost-model.js';
import { EXPERT_DTYPES } from '../../../sim/src/cost/expert-layout.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { optionalScriptArg, requiredScriptArg } from '../../../core/src/options.js';

const DTYPES = EXPERT_DTYPES.filter((d) => d !== 'bf16');

/** `base` with each quantized entry of `base` that `cal` measured an eager curve for given base bf16 x the ratio. */
export function withDtypeEager(base: CostModel, cal: CostModel, calFile = 'the calibration'): CostModel {
  const bf16Base = base.gpu.eagerLayerOverheadMs;
  const bf16Cal = cal.gpu.eagerLayerOverheadMs;
  if (!bf16Base) throw new UserError(`--base ${base.name}: has no gpu.eagerLayerOverheadMs to scale`);
  if (!bf16Cal) throw new UserError(`--calibration ${calFile}: has no bf16 gpu.eagerLayerOverheadMs (the ratio's denominator)`);
  const out: CostModel = structuredClone(base);
  let applied = 0;
  for (const d of DTYPES) {
    const entry = out.byExpertDtype?.[d];
    const measured = cal.byExpertDtype?.[d]?.gpu.eagerLayerOverheadMs;
    if (!entry || !measured) continue;
    if (d === 'int4' && entry.group !== cal.byExpertDtype![d]!.group) {
      throw new UserError(`--calibration ${calFile}: its int4 entry is at group ${cal.byExpertDtype![d]!.group}, the base's at ${entry.group}`);
    }
    const curve: TokenCurve = measured.map(([b, ms]) => {
      const den = interpolate(bf16Cal, b);
      if (!(den > 0)) throw new UserError(`--calibration ${calFile}: bf16 eager overhead at batch ${b} is ${den} ms; a ratio needs it positive`);
      return [b, Number(((interpolate(bf16Base, b) * ms) / den).toPrecision(4))];
    });
    entry.gpu.eagerLayerOverheadMs = curve;
    (out.sources ??= {})[`byExpertDtype.${d}.gpu.eagerLayerOverheadMs`] =
      `the base's gpu.eagerLayerOverheadMs times ${d}'s over bf16's, both measured by calibrate in one call (${calFile}: ${measured.map(([b, ms]) => `batch ${b} ${ms} / ${interpolate(bf16Cal, b)} ms`).join(', ')})`;
    applied++;
  }
  if (applied === 0) throw new UserError(`--calibration ${calFile}: no int8/int4 entry with eagerLayerOverheadMs that the base also has`);
  return out;
}

if (process.argv[1] && process.argv[1].endsWith('dtype-eager-from-calibration.js')) {
  try {
    const calFile = requiredScriptArg('--calibration');
    const profile = withDtypeEager(loadCalibration(requiredScriptArg('--base')), loadCalibration(calFile), calFile);
    const named = { ...profile, name: optionalScriptArg('--name', profile.name) };
    if (process.argv.includes('--label')) named.label = requiredScriptArg('--label');
    writeFileAtomic(requiredScriptArg('--out'), JSON.stringify(named, null, 1) + '\n');
    process.stdout.write(`${requiredScriptArg('--out')} (${named.name}): ${DTYPES.map((d) => `${d} ${JSON.stringify(named.byExpertDtype?.[d]?.gpu.eagerLayerOverheadMs ?? null)}`).join(', ')}\n`);
  } catch (err) {
    process.stderr.write(`dtype-eager-from-calibration: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
