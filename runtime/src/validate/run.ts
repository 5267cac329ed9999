/**
 * `validate --best` end to end: the simulation sweep and plan (plan.ts), printed; then, given a way to
 * measure, the runs on the GPU (measure.ts) and the comparison (result.ts), published as one folder
 * (write.ts). Without one (no CUDA backend, no checkpoint) the plan is the output and the command fails
 * saying why nothing was measured.
 */
import { UserError } from '../../../core/src/errors.js';
import { startProgress } from '../../../core/src/progress.js';
import { formatPlan, formatResult } from './format.js';
import type { MeasureFn } from './measure.js';
import { planValidation, type ValidateInputs, type ValidationPlan } from './plan.js';
import { buildResult, type ValidationResult } from './result.js';
import { writeValidation } from './write.js';

export interface ValidateRun {
  inputs: ValidateInputs;
  /** output folder, already checked (checkOutputDir) */
  out: string;
  /** the measurement, or why there is none (the run then stops after the plan, exit code 3) */
  measure: MeasureFn | { unavailable: string };
  /** set (e.g. by SIGINT) to stop before the next GPU run */
  stop: { requested: boolean };
  command: string;
  quiet?: boolean;
  print: (text: string) => void;
  log: (line: string) => void;
  /** injected for tests */
  now?: () => Date;
}

export interface ValidateOutcome {
  plan: ValidationPlan;
  result: ValidationResult;
  files: string[];
}

export async function validateBest(o: ValidateRun): Promise<ValidateOutcome> {
  let progress: ReturnType<typeof startProgress> | undefined;
  const plan = planValidation(o.inputs, (total) => {
    progress = startProgress('validate: simulating', total, { quiet: o.quiet });
    return () => progress!.tick();
  });
  progress?.done();
  o.print(formatPlan(plan));
  if ('unavailable' in o.measure) {
    throw new UserError(`validate --best: ${o.measure.unavailable}, so nothing was measured; the plan above is what it would run on the GPU (nothing written to ${o.out})`, 3);
  }
  const planned = plan.points.reduce((a, p) => a + p.runs.length, 0);
  o.log(`validate: measuring ${planned} runs on the GPU (${plan.points.length} points)`);
  const measured = await o.measure(plan, o.stop, o.log);
  const missing = plan.points.flatMap((p) => p.runs.filter((r) => !measured.some((m) => m.batch === p.batch && m.prompt === p.prompt && m.key === r.key)).map((r) => `B${p.batch} P${p.prompt} ${r.key}`));
  if (missing.length && !o.stop.requested) throw new Error(`validate: the measurement returned no result for ${missing.join('; ')}`);
  const status = missing.length ? 'interrupted' : 'complete';
  const result = buildResult(plan, measured, { status, command: o.command, date: (o.now ?? (() => new Date()))().toISOString() });
  const files = await writeValidation(o.out, result);
  o.print(formatResult(result));
  if (status === 'interrupted') {
    throw new UserError(`validate --best: interrupted; ${measured.length} of ${planned} runs measured, written to ${o.out} marked PARTIAL (status 'interrupted'); not measured: ${missing.join('; ')}`, 130);
  }
  return { plan, result, files };
}
