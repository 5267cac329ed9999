/**
 * Does a run configuration make sense for this trace? Checked once the trace is read, before any work:
 * a batch larger than the trace's sequences cannot be formed (refused); a cache that holds every expert
 * and a cost profile measured on a model of another geometry give numbers that mean little (warned,
 * naming both sides, since a user may want them anyway).
 */
import { UserError } from '../../core/src/errors.js';
import type { RoutingCorpus } from '../../traces/src/sequences.js';
import type { CostModel } from './cost/calibration.js';
import type { SweepGrid } from './sweep.js';

export interface ProfileGeometry {
  moeLayers: number;
  numExperts: number;
  topK: number;
}

/** The geometry a profile's `model` text states ("26 MoE layers x 64 routed experts ... top-6"), if it does. */
export function profileGeometry(c: CostModel): ProfileGeometry | null {
  const m = /(\d+) MoE layers x (\d+) routed experts.*?top-(\d+)/.exec(c.model);
  return m ? { moeLayers: Number(m[1]), numExperts: Number(m[2]), topK: Number(m[3]) } : null;
}

const describe = (g: ProfileGeometry) => `${g.moeLayers} MoE layers x ${g.numExperts} experts, top-${g.topK}`;

/** Throws for what cannot run; returns warnings (one line each) for what runs but may mislead. */
export function checkAgainstTrace(grid: SweepGrid, corpus: RoutingCorpus, calibration: CostModel, traceFile: string, batchOption: string, cacheOption: string): string[] {
  const n = corpus.sequences.length;
  const tooBig = grid.batches.filter((b) => b > n);
  if (tooBig.length > 0) {
    throw new UserError(`option ${batchOption}: ${tooBig.join(', ')} is more than the ${n} sequences of ${traceFile}; a batch of at most ${n} can be formed`);
  }
  const warnings: string[] = [];
  const E = corpus.numExperts;
  const whole = grid.caches.filter((c) => c >= E);
  if (whole.length > 0) {
    warnings.push(`option ${cacheOption}: ${whole.join(', ')} slots hold all ${E} experts of each layer of ${traceFile}; after its first use every expert stays cached`);
  }
  const pg = profileGeometry(calibration);
  const tg: ProfileGeometry = { moeLayers: corpus.moeLayers.length, numExperts: E, topK: corpus.topK };
  if (pg && (pg.moeLayers !== tg.moeLayers || pg.numExperts !== tg.numExperts || pg.topK !== tg.topK)) {
    warnings.push(`the cost profile ${calibration.name} was made for ${describe(pg)}; ${traceFile} has ${describe(tg)}: its times are another model's`);
  }
  return warnings;
}
