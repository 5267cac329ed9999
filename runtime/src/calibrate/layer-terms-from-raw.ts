/**
 * A profile's gpu.eagerLayerOverheadMs and gpu.layerGlueMs (top level and per quantized format) derived again
 * from the raw calibration its GPU figures came from, as calibrate now derives them (layer-step-terms.ts):
 * for profiles made before that, whose eager curve is the plain eager-minus-graph difference and which have
 * no glue. The profile's own launch tables and non-expert curves are used, so they must be that raw file's
 * (the tool refuses a profile whose bf16 launch table is not the one the raw file gives).
 *
 *   node dist/runtime/src/calibrate/layer-terms-from-raw.js --profile P --raw calibration.raw.json --routed-experts 64 --top-k 6 --out F [--name NAME]
 */
import { readFileSync } from 'node:fs';
import { loadCalibration, type CostModel } from '../../../sim/src/cost/calibration.js';
import { writeFileAtomic } from '../../../core/src/atomic-file.js';
import { UserError } from '../../../core/src/errors.js';
import { optionalScriptArg, parseIntOption, requiredScriptArg } from '../../../core/src/options.js';
import { setLayerStepTerms, type LayerStepShape } from './layer-step-terms.js';
import type { RawDocument } from './raw.js';
import type { CalibratePlan } from './plan.js';
import { formatProfile } from './run.js';

export function withLayerTermsFromRaw(profile: CostModel, raw: RawDocument, routing: LayerStepShape, rawFile: string): CostModel {
  const out: CostModel = structuredClone(profile);
  out.label = `${profile.label}; gpu.eagerLayerOverheadMs taken to the eager run's routing and gpu.layerGlueMs added, from ${rawFile} (layer-terms-from-raw.js)`;
  const sources = (out.sources ??= {});
  const plan = raw.derived.plan as CalibratePlan | undefined;
  if (!plan) throw new UserError(`--raw ${rawFile}: has no derived.plan`);
  if (!raw.gpu?.layerSteps?.length) throw new UserError(`--raw ${rawFile}: has no GPU layer steps`);
  if (!out.gpu.launch) throw new UserError('--profile: has no gpu.launch table (the layer terms need it)');
  const firstLaunch = raw.gpu.launches?.[0];
  if (firstLaunch && !out.gpu.launch.ms.some(([e, c]) => e === firstLaunch.experts && c.some(([t, ms]) => t === firstLaunch.tokens && Math.abs(ms - firstLaunch.medianMs) <= 1e-3 * Math.max(ms, 1e-3)))) {
    throw new UserError(`--profile: its gpu.launch table is not the one --raw ${rawFile} measured`);
  }
  const where = `derived again from ${rawFile} (${raw.gpu.device.name})`;
  setLayerStepTerms(out.gpu, sources, 'gpu', where, plan, raw.gpu.layerSteps, out.gpu.launch, out.gpu, routing);
  for (const d of raw.byExpertDtype ?? []) {
    const entry = out.byExpertDtype?.[d.dtype as 'int8' | 'int4'];
    if (!entry?.gpu.launch || !d.layerSteps?.length) continue;
    setLayerStepTerms(entry.gpu, sources, `byExpertDtype.${d.dtype}.gpu`, `${where}, with the ${d.dtype} decode expert kernel`, plan, d.layerSteps, entry.gpu.launch, out.gpu, routing);
  }
  return out;
}

if (process.argv[1] && process.argv[1].endsWith('layer-terms-from-raw.js')) {
  try {
    const rawFile = requiredScriptArg('--raw');
    const int = (name: string) => parseIntOption(name, requiredScriptArg(name), 1);
    const routing = { experts: int('--routed-experts'), topK: int('--top-k') };
    if (routing.topK > routing.experts) throw new UserError('--top-k: more than --routed-experts');
    let raw: RawDocument;
    try {
      raw = JSON.parse(readFileSync(rawFile, 'utf8'));
    } catch (e) {
      throw new UserError(`--raw ${rawFile}: ${(e as Error).message}`);
    }
    const profile = withLayerTermsFromRaw(loadCalibration(requiredScriptArg('--profile')), raw, routing, rawFile);
    const named = { ...profile, name: optionalScriptArg('--name', profile.name) };
    writeFileAtomic(requiredScriptArg('--out'), formatProfile(named));
    const curves = (g: { eagerLayerOverheadMs?: unknown; layerGlueMs?: unknown }) => `eager ${JSON.stringify(g.eagerLayerOverheadMs)}, glue ${JSON.stringify(g.layerGlueMs)}`;
    process.stdout.write(
      `${requiredScriptArg('--out')} (${named.name}): bf16 ${curves(named.gpu)}; ${Object.entries(named.byExpertDtype ?? {})
        .map(([d, e]) => `${d} ${curves(e.gpu)}`)
        .join('; ')}\n`,
    );
  } catch (err) {
    process.stderr.write(`layer-terms-from-raw: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
