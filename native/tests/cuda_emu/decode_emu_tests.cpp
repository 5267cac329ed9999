// The CPU expert that rounds as the GPU (moe::mlp_forward_gpu_order, src/kernels/expert_gpu_order.h) against
// the CUDA decode expert kernels themselves, on a machine without a GPU: src/cuda/expert_ffn_decode.cu is
// compiled for the host as it is (its launcher, group_small_kernel, gate_up_gemv, down_gemv; only the
// launch syntax is rewritten, rewrite_launches.cmake) against the shims in shim/, which run each block's
// threads as std::threads with the 32 lanes of a warp in lockstep at every __shfl_xor_sync
// (emu_runtime.cpp). Per routed entry, ybuf[entry * hidden + r] (the kernel's v * rw) must equal the CPU's
// output times rw bit for bit, for the scalar reference and the AVX-512 version, over shapes that cover the
// launcher's template cases, partial last rounds and the SiLU's clamps.
//
// What it cannot show: the device's own arithmetic. gpu_order_math.h is compiled on its host branch here
// (its __fmul_rn / __fadd_rn / __fdiv_rn / __fmaf_rn / rintf are IEEE round-to-nearest on the device too);
// cuda_kernel_tests (tests/cuda/tests_ffn.cu) makes the same comparison on a GPU.
//
// Built twice: moe_cuda_emu_tests (must find no difference; exit 1 otherwise) and, with MOE_EMU_CONTROL,
// moe_cuda_emu_control, whose kernels sum a warp's lanes one after another instead of by the butterfly: it
// must find differences (exit 1 if it finds none), which shows that the comparison can fail.
//   moe_cuda_emu_tests [case...]   (cases a-f; default all)
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include <algorithm>

#include "cuda_host_shim.h"
#include "moe_cuda_kernels.h"
#include "moe/kernels.h"

namespace emu { extern long g_blocks_run, g_shuffles; }
using moe::cuda::bf16;

static uint16_t to_bf16(float f) {  // RNE (inputs are generated as floats, stored as bf16)
  uint32_t b; std::memcpy(&b, &f, 4);
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}
static float from_bf16(uint16_t v) { uint32_t b = uint32_t(v) << 16; float f; std::memcpy(&f, &b, 4); return f; }
static uint32_t bits(float f) { uint32_t b; std::memcpy(&b, &f, 4); return b; }

template <typename T> struct Aligned {  // 256-byte aligned storage (device allocations are)
  T* p = nullptr; size_t n = 0;
  explicit Aligned(size_t count) : n(count) { p = static_cast<T*>(std::aligned_alloc(256, ((count * sizeof(T)) + 255) / 256 * 256 + 256)); }
  ~Aligned() { std::free(p); }
  T& operator[](size_t i) { return p[i]; }
};

struct Case {
  const char* name; int hidden, d_ff, n_experts, k, rows;
  std::vector<std::vector<int>> routing;  // empty: random distinct experts per token
  float gate_scale = 1.f;                  // multiplies the gate weights (to push silu's argument far out)
};

static int run(int argc, char** argv) {
#ifdef MOE_EMU_CONTROL
  const bool control = true;
#else
  const bool control = false;
#endif
  std::vector<Case> cases = {
      {"a", 256, 192, 8, 2, 12, {}},
      {"b", 2048, 1408, 3, 2, 4, {{0, 1}, {0, 1}, {1, 0}, {2, 0}}},  // expert 0: 4 tokens, 1: 3, 2: 1
      {"c", 512, 328, 6, 2, 5, {}},
      {"d", 1024, 2048, 4, 2, 3, {}},            // extra: NCH 4, DCH 8 (the launcher's default: cases)
      {"e", 256, 8, 3, 3, 2, {}},                // extra: d_ff 8 (1 chunk: 31 lanes predicated off)
      {"f", 256, 192, 4, 2, 6, {}, 150.f},       // extra: gate x150, silu arguments up to |g| ~ 200 (exp's clamps)
  };
  if (argc > 1) {  // run only the named cases
    std::vector<Case> keep;
    for (auto& c : cases) for (int i = 1; i < argc; ++i) if (std::strcmp(argv[i], c.name) == 0) keep.push_back(c);
    if (keep.empty()) {
      std::fprintf(stderr, "moe_cuda_emu_tests: no case named by the arguments (cases: a, b, c, d, e, f)\n");
      return 2;
    }
    cases = keep;
  }
  std::mt19937_64 rng(12345);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::normal_distribution<float> nrm(0.f, 0.4f);
  long total_cmp = 0, total_diff = 0;
  for (const Case& C : cases) {
    const int H = C.hidden, F = C.d_ff, E = C.n_experts, k = C.k, rows = C.rows, entries = rows * k;
    std::vector<std::vector<uint16_t>> wg(E), wu(E), wd(E);
    const float sg = 1.7f / std::sqrt(float(H)) * C.gate_scale, su = 1.7f / std::sqrt(float(H)), sd = 1.7f / std::sqrt(float(F));
    Aligned<__nv_bfloat16> wall(size_t(E) * 3 * F * H);
    std::vector<const bf16*> pg(E), pu(E), pd(E);
    for (int e = 0; e < E; ++e) {
      bf16* g = wall.p + size_t(e) * 3 * F * H; bf16* u = g + size_t(F) * H; bf16* d = u + size_t(F) * H;
      wg[e].resize(size_t(F) * H); wu[e].resize(size_t(F) * H); wd[e].resize(size_t(H) * F);
      for (size_t i = 0; i < wg[e].size(); ++i) { wg[e][i] = to_bf16(uni(rng) * sg); g[i].__x = wg[e][i]; }
      for (size_t i = 0; i < wu[e].size(); ++i) { wu[e][i] = to_bf16(uni(rng) * su); u[i].__x = wu[e][i]; }
      for (size_t i = 0; i < wd[e].size(); ++i) { wd[e][i] = to_bf16(uni(rng) * sd); d[i].__x = wd[e][i]; }
      pg[e] = g; pu[e] = u; pd[e] = d;
    }
    Aligned<__nv_bfloat16> x(size_t(rows) * H);
    std::vector<float> xf(size_t(rows) * H);
    for (size_t i = 0; i < xf.size(); ++i) {
      float v = std::fmax(-1.f, std::fmin(1.f, nrm(rng)));
      x[i].__x = to_bf16(v);
      xf[i] = from_bf16(x[i].__x);
    }
    std::vector<int32_t> expert(entries);
    std::vector<float> weight(entries);
    for (int t = 0; t < rows; ++t) {
      std::vector<int> pick;
      if (!C.routing.empty()) pick = C.routing[t];
      else {
        std::vector<int> all(E);
        for (int e = 0; e < E; ++e) all[e] = e;
        std::shuffle(all.begin(), all.end(), rng);
        pick.assign(all.begin(), all.begin() + k);
      }
      for (int j = 0; j < k; ++j) {
        expert[t * k + j] = pick[j];
        weight[t * k + j] = 0.05f + 0.95f * (0.5f * (uni(rng) + 1.f));
      }
    }
    {  // diagnostic: range of the gate pre-activations g = Wg[i] . x_t over the routed (token, expert) pairs
      double gmax = 0; long big = 0, n = 0;
      for (int i = 0; i < entries; ++i) {
        const int e = expert[i], t = i / k;
        for (int r = 0; r < F; ++r) {
          double acc = 0;
          for (int c = 0; c < H; ++c) acc += double(from_bf16(wg[e][size_t(r) * H + c])) * xf[size_t(t) * H + c];
          gmax = std::max(gmax, std::fabs(acc)); big += std::fabs(acc) > 87.0; ++n;
        }
      }
      std::printf("  [gate pre-activation: max |g| %.3g, %ld of %ld with |g| > 87]\n", gmax, big, n);
    }
    // ---- emulated GPU: the real launcher, group_small_kernel, gate_up_gemv, down_gemv
    const size_t ws_bytes = moe::cuda::expert_ffn_decode_workspace_bytes(rows, k, E, H, F);
    Aligned<char> ws(ws_bytes);
    std::memset(ws.p, 0xff, ws_bytes);
    Aligned<float> ybuf(size_t(entries) * H);
    for (size_t i = 0; i < ybuf.n; ++i) ybuf[i] = NAN;
    const long b0 = emu::g_blocks_run, s0 = emu::g_shuffles;
    moe::cuda::expert_ffn_decode_entries(x.p, rows, H, expert.data(), weight.data(), k, E, H, F, pg.data(), pu.data(), pd.data(),
                                         nullptr, H, false, ws.p, ws_bytes, nullptr, ybuf.p);
    const long blocks = emu::g_blocks_run - b0, shuffles = emu::g_shuffles - s0;
    // ---- CPU: mlp_forward_gpu_order on each expert's tokens, times the routing weight
    std::vector<int> count(E, 0);
    for (int i = 0; i < entries; ++i) count[expert[i]]++;
    std::printf("case %s: hidden %d d_ff %d experts %d k %d tokens %d (tokens per expert:", C.name, H, F, E, k, rows);
    for (int e = 0; e < E; ++e) std::printf(" %d", count[e]);
    std::printf("), emulated %ld blocks, %ld warp shuffles%s\n", blocks, shuffles, control ? " [CONTROL: sequential warp sum]" : "");
    for (int vec = 0; vec < 2; ++vec) {
      if (vec && !moe::gpu_order_vectorized()) { std::printf("  vectorized: not available\n"); continue; }
      std::vector<float> ycpu(size_t(entries) * H, NAN);
      moe::FfnScratch scratch;
      for (int e = 0; e < E; ++e) {
        std::vector<int> ent;
        for (int i = 0; i < entries; ++i) if (expert[i] == e) ent.push_back(i);
        if (ent.empty()) continue;
        const int n = int(ent.size());
        std::vector<float> xs(size_t(n) * H), ys(size_t(n) * H);
        for (int j = 0; j < n; ++j) std::memcpy(&xs[size_t(j) * H], &xf[size_t(ent[j] / k) * H], sizeof(float) * H);
        moe::MlpWeights mw;
        mw.gate = moe::Matrix{wg[e].data(), moe::DType::BF16, F, H};
        mw.up = moe::Matrix{wu[e].data(), moe::DType::BF16, F, H};
        mw.down = moe::Matrix{wd[e].data(), moe::DType::BF16, H, F};
        moe::mlp_forward_gpu_order(xs.data(), n, mw, ys.data(), false, 1.f, nullptr, scratch, vec != 0);
        for (int j = 0; j < n; ++j)
          for (int r = 0; r < H; ++r) ycpu[size_t(ent[j]) * H + r] = ys[size_t(j) * H + r] * weight[ent[j]];
      }
      long diff = 0, zero_sign = 0, maxulp = 0;
      for (int i = 0; i < entries; ++i) {
        for (int r = 0; r < H; ++r) {
          const float a = ybuf[size_t(i) * H + r], b = ycpu[size_t(i) * H + r];
          if (!(a == b)) {
            const long u = std::labs(long(int32_t(bits(a))) - long(int32_t(bits(b))));
            if (u > maxulp) maxulp = u;
            if (diff < 5)
              std::printf("    DIFF entry %d (token %d, expert %d) r %d: gpu-emu %.9g (0x%08x) cpu %.9g (0x%08x)\n", i, i / k, expert[i], r, a,
                          bits(a), b, bits(b));
            ++diff;
          } else if (bits(a) != bits(b)) {
            ++zero_sign;
          }
        }
      }
      const long cmp = long(entries) * H;
      total_cmp += cmp;
      total_diff += diff;
      std::printf("  %-10s: %ld outputs compared, %ld differ (==)%s, %ld equal only up to the sign of zero%s\n", vec ? "vectorized" : "scalar", cmp,
                  diff, diff ? "" : "", zero_sign, diff ? (", max |ulp| " + std::to_string(maxulp)).c_str() : "");
    }
  }
  std::printf("TOTAL: %ld compared, %ld differ\n", total_cmp, total_diff);
  if (control) {
    std::printf(total_diff > 0 ? "control: the sequential warp sum differs, as it must\n" : "control FAILED: a sequential warp sum gave the same bits\n");
    return total_diff > 0 ? 0 : 1;
  }
  std::printf(total_diff == 0 ? "all emulated decode outputs equal the CPU's bit for bit\n" : "FAILED: emulated decode outputs differ from the CPU's\n");
  return total_diff == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe_cuda_emu_tests: %s\n", e.what());
    return 2;
  }
}
