export { Engine, EngineError, type OffloadStats, type FinishReason, type GeneratedToken, type RecordedLogits } from './engine.js';
export type { EngineLoadOptions, GenerateOptions, Sampling } from './options.js';
export { loadNativeAddon } from './native-binding.js';
export { ContinuousBatch, type SequenceOptions, type SlotToken, type SlotFinish } from './continuous-batch.js';
