// SIMT runtime of the host emulation: blocks run one after another; a block's threads are persistent
// std::threads (one per CUDA thread); each warp of 32 has its own std::barrier for shuffles, the block one
// for __syncthreads. Threads that return early drop out of both barriers (as exited threads do).
#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <memory>
#include <thread>
#include <vector>

#include "cuda_host_shim.h"
#include "moe_cuda_kernels.h"

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;
thread_local EmuWarp* g_warp = nullptr;
thread_local long emu_shfl_count = 0;
thread_local unsigned long long emu_shfl_hash = 0;
std::barrier<>* g_block_bar = nullptr;

namespace {
std::atomic<const char*> g_unsupported{nullptr};  // the first thing a kernel reached that is not emulated
}  // namespace

void emu_unsupported(const char* what) {
  const char* none = nullptr;
  g_unsupported.compare_exchange_strong(none, what);
}

namespace emu {
namespace {

struct BlockState {
  std::unique_ptr<std::barrier<>> block_bar;
  std::vector<std::unique_ptr<EmuWarp>> warps;
};

struct Pool {
  int n = 0;
  std::vector<std::thread> th;
  std::unique_ptr<std::barrier<>> start, done;
  // job
  const std::function<void()>* body = nullptr;
  dim3 grid, block;
  uint3 bidx;
  BlockState* bs = nullptr;
  bool quit = false;
  std::vector<long> counts;
  std::vector<unsigned long long> hashes;

  explicit Pool(int threads) : n(threads), start(new std::barrier<>(threads + 1)), done(new std::barrier<>(threads + 1)),
                               counts(threads), hashes(threads) {
    for (int t = 0; t < n; ++t) th.emplace_back([this, t] { worker(t); });
  }
  ~Pool() {
    quit = true;
    start->arrive_and_wait();
    for (auto& t : th) t.join();
  }
  void worker(int t) {
    for (;;) {
      start->arrive_and_wait();
      if (quit) return;
      if (static_cast<unsigned>(t) < block.x) {
        threadIdx = uint3{static_cast<unsigned>(t), 0, 0};
        blockIdx = bidx;
        blockDim = block;
        gridDim = grid;
        g_warp = bs->warps[t / 32].get();
        g_block_bar = bs->block_bar.get();
        emu_shfl_count = 0;
        emu_shfl_hash = 0;
        (*body)();
        counts[t] = emu_shfl_count;
        hashes[t] = emu_shfl_hash;
        g_warp->bar.arrive_and_drop();
        g_block_bar->arrive_and_drop();
      }
      done->arrive_and_wait();
    }
  }
};

Pool& pool() {
  static Pool p(256);
  return p;
}

}  // namespace

long g_blocks_run = 0, g_shuffles = 0;

void launch(dim3 grid, dim3 block, size_t shmem, cudaStream_t, const std::function<void()>& body) {
  if (block.y != 1 || block.z != 1 || block.x % 32 != 0 || block.x > 256 || shmem != 0 || grid.z != 1) {
    throw std::runtime_error("emu: launch shape not supported");
  }
  Pool& P = pool();
  P.body = &body;
  P.grid = grid;
  P.block = block;
  for (unsigned by = 0; by < grid.y; ++by) {
    for (unsigned bx = 0; bx < grid.x; ++bx) {
      BlockState bs;
      bs.block_bar.reset(new std::barrier<>(block.x));
      for (unsigned w = 0; w < block.x / 32; ++w) bs.warps.emplace_back(new EmuWarp());
      P.bs = &bs;
      P.bidx = uint3{bx, by, 0};
      P.start->arrive_and_wait();
      P.done->arrive_and_wait();
      // Every lane of a warp must have executed the same sequence of shuffles (uniform control flow).
      for (unsigned w = 0; w < block.x / 32; ++w) {
        for (unsigned l = 1; l < 32; ++l) {
          if (P.counts[w * 32 + l] != P.counts[w * 32] || P.hashes[w * 32 + l] != P.hashes[w * 32]) {
            throw std::runtime_error("emu: divergent shuffles in block (" + std::to_string(bx) + "," + std::to_string(by) + ") warp " +
                                     std::to_string(w) + " lane " + std::to_string(l));
          }
        }
        g_shuffles += P.counts[w * 32];
      }
      ++g_blocks_run;
      if (const char* what = g_unsupported.load()) throw std::runtime_error(std::string("emu: ") + what + " is not emulated");
    }
  }
}

}  // namespace emu

// Only the combine path of expert_ffn_decode_entries references this; the test passes expert_out so it is never called.
namespace moe::cuda {
void combine_expert_outputs(const float*, const int32_t*, int, int, int, float*, int, bool, cudaStream_t) {
  throw std::runtime_error("emu: combine_expert_outputs is not emulated");
}
}  // namespace moe::cuda
