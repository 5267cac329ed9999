/**
 * The H100 run of 2026-12-07c (reports/bench/h100-2026-12-07c/) simulated with profiles made in the same call:
 * sim-vs-measured.json with sim/calibration/h100-offload-2026-12-07c-samecall-runtime-cpu.json (CPU job times from
 * the must-show bench's logged jobs), sim-vs-measured-calibrate-cpu.json with h100-offload-2026-12-07c-samecall.json
 * (calibrate's CPU figures alone), sim-vs-measured-sample-cpu.json with the first of them and each point's CPU job
 * times from its committed miss-log sample (--cpu-jobs sample, a diagnostic). What is held: each committed file is what the simulator computes, and the
 * cache's hits equal the simulator's at every point. Which points are outside 10% is the README's to say.
 */
import { resolve } from 'node:path';
import { describeCommittedSimSets } from '../helpers/sim-vs-committed.js';

const call1 = ['call1/must-show', 'call1/grid', 'call1/bench-replay'];
describeCommittedSimSets('simulated vs measured, H100 2026-12-07c', resolve(import.meta.dirname, '..', '..', '..'), 'reports/bench/h100-2026-12-07c', [
  { name: 'call 1, runtime CPU jobs', committed: 'call1/sim-vs-measured.json', profile: 'h100-offload-2026-12-07c-samecall-runtime-cpu.json', benches: call1, points: 66 },
  { name: 'call 1, calibrate CPU figures', committed: 'call1/sim-vs-measured-calibrate-cpu.json', profile: 'h100-offload-2026-12-07c-samecall.json', benches: call1, points: 66 },
  { name: 'call 1, each point\'s sampled CPU jobs', committed: 'call1/sim-vs-measured-sample-cpu.json', profile: 'h100-offload-2026-12-07c-samecall-runtime-cpu.json', benches: call1, points: 66, cpuJobs: 'sample' },
]);
