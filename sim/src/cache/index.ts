/** The expert cache: policies, one layer's cache, and the canonical replay (sim/README.md). */
export * from './types.js';
export { LayerCache, type LayerCacheOptions } from './layer-cache.js';
export { replayCache, replayLayers, nextRequestSteps, makeLayerCaches, type ReplayResult, type DecisionLog, type Decision, type ReplayOptions } from './replay.js';
export { pinnedFromCounts } from './static.js';
export { LFRU_DEFAULT_DECAY } from './lfru.js';
export { NEVER } from './belady.js';
