#pragma once
// Host shim for compiling the CUDA kernels of expert_ffn_decode.cu / common.cuh with g++.
// SIMT model: one warp = 32 std::threads; __shfl_xor_sync is an exchange through a shared
// array bracketed by two std::barrier waits (all 32 lanes in lockstep at each shuffle).
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 { unsigned x = 0, y = 0, z = 0; };
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

#define __shared__ static  /* one block runs at a time: a function-static array is that block's shared memory */
#include <atomic>
inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }
// __syncthreads: a barrier over the block's threads (exited threads drop out of it).
extern std::barrier<>* g_block_bar;

// The runtime API the launchers touch.
struct CUstream_st;
using cudaStream_t = CUstream_st*;
enum cudaError_t { cudaSuccess = 0 };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorName(cudaError_t) { return "cudaSuccess"; }
inline const char* cudaGetErrorString(cudaError_t) { return "no error"; }
#include <functional>
namespace emu {
// kernel<<<grid, block, shmem, stream>>>(args) is rewritten to emu::launch(grid, block, shmem, stream, [&] { kernel(args); }).
void launch(dim3 grid, dim3 block, size_t shmem, cudaStream_t stream, const std::function<void()>& body);
}

struct alignas(16) uint4 { unsigned int x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }
inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }

struct alignas(2) __nv_bfloat16 { unsigned short __x; };
struct alignas(4) __nv_bfloat162 { __nv_bfloat16 x, y; };  // x at the low address / low 16 bits, as cuda_bf16.h

inline float emu_bf16_to_float(__nv_bfloat16 h) {
  uint32_t b = static_cast<uint32_t>(h.__x) << 16; float f; std::memcpy(&f, &b, 4); return f;
}
// __float2bfloat16: round to nearest even (cuda_bf16.hpp: NaN -> canonical 0x7fff).
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t b; std::memcpy(&b, &f, 4);
  __nv_bfloat16 r;
  if ((b & 0x7fffffffu) > 0x7f800000u) { r.__x = 0x7fff; return r; }
  const uint32_t lsb = (b >> 16) & 1u;
  r.__x = static_cast<unsigned short>((b + 0x7fffu + lsb) >> 16);
  return r;
}
inline float2 __bfloat1622float2(__nv_bfloat162 a) { return float2{emu_bf16_to_float(a.x), emu_bf16_to_float(a.y)}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return __nv_bfloat162{__float2bfloat16(a), __float2bfloat16(b)}; }

template <typename T> inline T __ldg(const T* p) { return *p; }

// fmaf, fmaxf, INFINITY: glibc's (<cmath>); fmaf is correctly rounded (a libm call: no -mfma here).

// What the emulation does not model (never reached by the emulated kernels): it is recorded from whichever
// thread reaches it, and the launch that ran it throws (emu_runtime.cpp), so the test fails with the name.
void emu_unsupported(const char* what);
inline void __syncthreads() { g_block_bar->arrive_and_wait(); }
inline float rsqrtf(float) {
  emu_unsupported("rsqrtf");
  return NAN;
}

// Warp lockstep state (defined in emu_runtime.cpp).
struct EmuWarp {
  std::barrier<> bar{32};
  float slot[32];
};
extern thread_local EmuWarp* g_warp;
extern thread_local long emu_shfl_count;
extern thread_local unsigned long long emu_shfl_hash;

inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
  if (mask != 0xffffffffu) emu_unsupported("partial shuffle mask");
  const int lane = static_cast<int>(threadIdx.x & 31);
  ++emu_shfl_count;
  emu_shfl_hash = emu_shfl_hash * 1000003ull + static_cast<unsigned>(lane_mask) + 1;
  g_warp->slot[lane] = v;
  g_warp->bar.arrive_and_wait();   // every lane has published its value
  const float r = g_warp->slot[(lane ^ lane_mask) & 31];
  g_warp->bar.arrive_and_wait();   // every lane has read before any lane publishes the next value
  return r;
}
// Used only by the CONTROL variant's sequential warp sum: all 32 lane values, gathered in lockstep.
inline void emu_gather32(float v, float out[32]) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  ++emu_shfl_count;
  emu_shfl_hash = emu_shfl_hash * 1000003ull + 999;
  g_warp->slot[lane] = v;
  g_warp->bar.arrive_and_wait();
  for (int l = 0; l < 32; ++l) out[l] = g_warp->slot[l];
  g_warp->bar.arrive_and_wait();
}
