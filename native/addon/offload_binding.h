#pragma once
// Binding of the offloading runtime's engine hook (moe/offload/offload_controller.h): JS spec ->
// OffloadSession, recorded rows and cache counts -> JS. The TypeScript layer (runtime/src/offload/)
// validates first; these conversions only guard the binding.
#include <napi.h>

#include <memory>

#include "moe/engine.h"
#include "moe/offload/offload_controller.h"
#include "moe/weights.h"

namespace moe_addon {

// What an engine with offloading attached owns. Destroy it before the engine.
struct OffloadHolder {
  std::unique_ptr<moe::WeightStore> routers;  // a second mapping of the checkpoint, for gate_next
  std::unique_ptr<moe::offload::OffloadSession> session;
};

// spec: {cache?: {slotsPerLayer, policy, lfruDecay, pinned?: Int32Array[], plannedOffsets?, plannedExperts?},
//        replay?: [{length, experts: Int32Array, weights: Float32Array}], record?: {scores, gateNext, timings},
//        miss?: {mode, workers, threadsPerWorker, log, correctCpu?, copyMs, activationCopyMs, gpuExpertMs, cpuExpertMs
//                (Float64Array of (tokens, ms) pairs)}, tensors?: [...] (for gateNext)}
std::unique_ptr<OffloadHolder> make_offload(moe::Engine& engine, const Napi::Object& spec);
// Recorded rows since the last call (then cleared), as typed arrays.
Napi::Object take_recorded(Napi::Env env, moe::offload::OffloadController& c);
// The miss decisions logged since the last call (then cleared), as typed arrays; empty without a log.
Napi::Object take_miss_log(Napi::Env env, moe::offload::OffloadController& c);
// Per MoE layer: {requests, hits, inserts, evictions, bypasses} as Float64Arrays; null without a cache.
Napi::Value cache_stats(Napi::Env env, const moe::offload::OffloadController& c);

}  // namespace moe_addon
