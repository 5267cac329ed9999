/**
 * The simulator's programmatic API. `runSimulation(corpus, config)` replays a routing corpus through
 * per-layer expert caches and the timing model; `replayCorpus` is the canonical hit/request replay alone.
 * Semantics: sim/README.md.
 */
export { runSimulation, validateSimConfig, type SimConfig, type SimResult } from './simulation.js';
export { replayCorpus, prepareReplay, staticPinned, type PreparedReplay, type CorpusReplayConfig } from './replay/replay-corpus.js';
export * from './cache/index.js';
export { PREFETCH_NAMES, type PrefetchName, buildPrefetchPlan } from './prefetch/sources.js';
export { attachPredictedColumn, PREDICTED_COLUMN_LOOKAHEAD } from './prefetch/predicted-column.js';
export { MISS_MODES, type MissMode } from './timing/engine.js';
export { defaultCalibration, loadCalibration, parseCalibration, calibrationLabel, type CostModel } from './cost/calibration.js';
