#pragma once
// Measurements for the simulator's cost model (issue 6, item 5: `moe-offload calibrate`).
// The TypeScript side (runtime/src/calibrate/) drives these one measurement at a time, so it can show
// progress, takes medians, fits the transfer cost and writes the calibration file. Each call here
// returns raw samples in milliseconds; nothing here decides what goes into the file.
//
// CpuCalibrator: the CPU expert path (moe::mlp_forward, the AVX-512/BF16 kernels of
// native/include/moe/kernels.h) on a pool of random bf16 experts of the model's shape, cycled so each
// expert's weights come from DRAM as a missed expert's do.
// CudaCalibrator: pinned host-to-device copies of experts, the routed-expert kernels
// (expert_ffn_decode / expert_ffn_grouped) and the non-expert part of a layer built from the kernel
// API of native/src/cuda/moe_cuda_kernels.h, the same sequence the CUDA backend runs (it does not use
// the backend itself). Built only when the engine is built with CUDA; otherwise make_cuda_calibrator
// throws "this build has no CUDA backend ...".
// Both take the routed experts' storage dtype (issue 13): bf16 as before; int8 / int4 time the blob
// copies (expert_bytes() of the layout), the quantized GPU kernels (moe_cuda_quant.h) and the quantized
// CPU expert (moe::quant::expert_ffn_q_forward), as the backend runs them for that dtype.
#include <memory>
#include <string>
#include <vector>

#include "moe/config.h"
#include "moe/quant/expert_format.h"

namespace moe::calibrate {

struct CpuInfo {
  int hardware_threads = 0;
  std::string features;   // cpu_features().describe()
  std::string best_isa;   // the ISA "auto" picks for the CPU expert path
};
CpuInfo cpu_info();

class CpuCalibrator {
 public:
  // pool: experts allocated and cycled through (>= 1); isa: "auto" (Avx512Bf16 where supported,
  // the CPU expert executor's fast mode, else the best fp32-activation kernel), or a kernel name
  // (scalar, avx2, avx512, avx512bf16; gpu-order: bf16 in the CUDA decode kernel's rounding, the runtime's
  // `--cpu-rounding gpu-order`).
  // dtype / group: the experts' storage (quantized: isa "auto" lets the quantized kernels choose).
  CpuCalibrator(const ModelConfig& config, int pool, const std::string& isa, quant::ExpertDType dtype = quant::ExpertDType::BF16,
                int group = quant::kDefaultInt4Group);
  ~CpuCalibrator();
  const std::string& isa_name() const;
  quant::ExpertDType expert_dtype() const;
  size_t expert_bytes() const;  // one expert as stored (bf16: 3 d_ff hidden 2 bytes)
  // `concurrent` experts run at once, each on its own pool of `threads` threads; every sample is the
  // wall time of `iters` experts per worker divided by `iters` (the time one expert takes while the
  // others run). One warm-up round first.
  std::vector<double> expert_ms(int tokens, int threads, int concurrent, int iters, int repeats);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct DeviceInfo {
  std::string name;
  double total_gib = 0;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  int async_engines = 0;  // cudaDeviceProp::asyncEngineCount
  int runtime_version = 0, driver_version = 0;
};

class CudaCalibrator {
 public:
  virtual ~CudaCalibrator() = default;
  virtual DeviceInfo device() const = 0;
  virtual quant::ExpertDType expert_dtype() const = 0;
  virtual size_t expert_bytes() const = 0;  // one expert as copied (the blob of its dtype)
  // Host-to-device copies from pinned memory of `experts` experts (expert_bytes each): as one copy
  // (one_copy) or as `experts` copies back to back, over `streams` streams (1 or 2; with 2 the copies
  // alternate between the streams). One sample = the whole group, CUDA events.
  virtual std::vector<double> copy_ms(int experts, bool one_copy, int streams, int repeats) = 0;
  // One routed expert with `tokens` tokens: kernel "decode" (expert_ffn_decode) or "grouped"
  // (expert_ffn_grouped). Cycles through a pool of experts larger than the L2 cache.
  virtual std::vector<double> expert_ms(const std::string& kernel, int tokens, int repeats) = 0;
  // One launch of the decode expert kernel (expert_ffn_decode_entries, or the q kernel of the dtype) over
  // `experts` distinct experts with `tokens` tokens each (1..32), as the offload path computes a layer's
  // resident experts in one launch. Consecutive launches read other pool experts (cold in L2).
  virtual std::vector<double> launch_ms(int experts, int tokens, int repeats) = 0;
  // The non-expert part: "moe" (a MoE layer: attention + router + shared experts), "dense" (layer 0:
  // attention + dense MLP) or "head" (final norm + lm_head + greedy sampling), for a decode step of
  // `batch` rows, each attending to `context` cached tokens. graph: replayed as a CUDA graph (as the
  // backend does for decode), else launched eagerly. Per sample: mean over several back-to-back runs.
  virtual std::vector<double> part_ms(const std::string& part, int batch, int context, bool graph, int repeats) = 0;
  // A MoE layer step as the offloaded runtime runs it, all experts resident (attention, router, the routing
  // to the host, the upload, shared experts, one expert launch, the combine), `batch` rows (1..32) at
  // `context`. Per sample: per layer, over a run of layers. Every mode's expert launch reads the same
  // experts (0..k-1, every row on each), so the modes differ only in how they are launched:
  //   Graph: the GPU work replayed as a CUDA graph, CUDA events;
  //   Eager: eager launches with a host synchronisation on the routing every layer, host wall clock;
  //   EagerJoin: Eager plus, after the expert launch, what the runtime does when a layer has CPU experts
  //     (CudaBackend::join_cpu_experts): the host waits (here for the GPU, drained), uploads one output row
  //     per token with its entry and scatters them, then goes on to the combine and the next layer.
  enum class LayerStepMode { Graph, Eager, EagerJoin };
  virtual std::vector<double> layer_step_ms(int batch, int context, LayerStepMode mode, int repeats) = 0;
  // Activations of `tokens` rows to the host and back (a CPU-computed expert's round trip): bf16
  // [tokens, hidden] device to pinned host, fp32 [tokens, hidden] host to device.
  virtual std::vector<double> activation_ms(int tokens, int repeats) = 0;
  // Copy load (on: starts, off: stops): a thread keeps host-to-device expert copies from pinned memory back
  // to back on a copy stream, as the offloaded runtime's demand copies and fills do, so that a CPU
  // measurement taken meanwhile sees the host memory traffic of a busy copy engine (both read host DRAM).
  // Off rethrows a copy's error and returns the copies' mean wall time per expert over the load's life (ms;
  // 0 when no round finished), so that the copy engine's rate beside the CPU work is measured as well.
  virtual double copy_load(bool on) = 0;
};

// Allocates the device buffers (random bf16 data of the model's shapes). Throws moe::Error with
// "this build has no CUDA backend" when built without CUDA.
std::unique_ptr<CudaCalibrator> make_cuda_calibrator(const ModelConfig& config, int expert_pool, int layer_copies,
                                                     quant::ExpertDType dtype = quant::ExpertDType::BF16,
                                                     int group = quant::kDefaultInt4Group);
bool cuda_built();

}  // namespace moe::calibrate
