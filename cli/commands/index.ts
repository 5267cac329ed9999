import type { Command } from 'commander';
import { register as registerTraces } from './traces.js';
import { register as registerSimulate } from './simulate.js';
import { register as registerTrainPredictor } from './train-predictor.js';
import { register as registerRecordTrace } from './record-trace.js';
import { register as registerValidate } from './validate.js';
import { register as registerGenerate } from './generate.js';
import { register as registerChat } from './chat.js';
import { register as registerSynthModel } from './synth-model.js';
import { register as registerBench } from './bench.js';
import { register as registerCalibrate } from './calibrate.js';
import { register as registerServe } from './serve.js';
import { register as registerServeBench } from './serve-bench.js';
import { register as registerReport } from './report.js';
import { register as registerPeerAgreement } from './peer-agreement.js';
import { register as registerQuantizeExperts } from './quantize-experts.js';

/** One file per command; each file's `register` adds the command and its options. */
export function registerAll(program: Command): void {
  registerGenerate(program);
  registerChat(program);
  registerSynthModel(program);
  registerRecordTrace(program);
  registerSimulate(program);
  registerTrainPredictor(program);
  registerValidate(program);
  registerTraces(program);
  registerBench(program);
  registerCalibrate(program);
  registerQuantizeExperts(program);
  registerServe(program);
  registerServeBench(program);
  registerReport(program);
  registerPeerAgreement(program);
}
