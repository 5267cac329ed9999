/**
 * The H100 re-run of 2026-12-07 (reports/bench/h100-2026-12-07b/) simulated with the profiles made from that
 * machine: the quantized must-show bench and int8/int4 grid with sim/calibration/h100-offload-2026-12-07b-samecall.json,
 * the bf16 miss-mode grid (fetch, cpu, hybrid x prefetch none, oracle) with h100-offload-2026-12-07b-bf16-runcpu.json.
 * What is held: each committed sim-vs-measured file is what the simulator computes, and the cache's hits equal
 * the simulator's at every point. Which points are outside 10% is the README's and the report's to say.
 */
import { resolve } from 'node:path';
import { describeCommittedSimSets } from '../helpers/sim-vs-committed.js';

describeCommittedSimSets('simulated vs measured, H100 2026-12-07b', resolve(import.meta.dirname, '..', '..', '..'), 'reports/bench/h100-2026-12-07b', [
  { name: 'int8 and int4, must-show and grid', committed: 'call1/sim-vs-measured.json', profile: 'h100-offload-2026-12-07b-samecall.json', benches: ['call1/must-show', 'call1/grid'], points: 60 },
  { name: 'bf16 miss-mode grid', committed: 'bf16-grid-sim-vs-measured.json', profile: 'h100-offload-2026-12-07b-bf16-runcpu.json', benches: ['call3/replay-b1-4', 'call3/replay-fetch-b8-16', 'call2/bench-replay'], points: 72 },
]);
