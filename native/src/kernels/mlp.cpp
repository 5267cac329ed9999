// The MLP / expert FFN: down(silu(gate x) * up x). One pass over the pool computes, for a block of
// d_ff rows, both gate and up and the SiLU product (no barrier in between); a second pass does down.
// This is the routed-expert CPU kernel the offloading runtime will run missed experts with.
#include <algorithm>

#include "moe/error.h"
#include "moe/kernels.h"
#include "ffn_rows.h"

namespace moe {

namespace {

// Rows [o0, o1) of a [T, O] result computed into a [T, o1 - o0] tile view of `y` with stride O.
void gate_up_rows(const float* x, const uint16_t* xb, int T, const MlpWeights& w, int o0, int o1, float* h, float* up,
                  LinearIsa isa) {
  const int F = w.gate.rows;
  linear_rows(x, xb, T, w.gate, o0, o1, h, isa);
  linear_rows(x, xb, T, w.up, o0, o1, up, isa);
  for (int t = 0; t < T; ++t) {
    silu_mul(h + static_cast<size_t>(t) * F + o0, up + static_cast<size_t>(t) * F + o0, o1 - o0);
  }
}

}  // namespace

void mlp_forward(const float* x, int T, const MlpWeights& w, float* out, bool accumulate, float scale, ThreadPool* pool,
                 FfnScratch& s, LinearIsa isa) {
  if (T <= 0) return;
  const int F = w.gate.rows, H = w.gate.cols;
  if (w.up.rows != F || w.up.cols != H || w.down.rows != H || w.down.cols != F) {
    throw Error("mlp_forward: gate/up/down shapes do not fit together");
  }
  if (isa == LinearIsa::Auto) isa = best_exact_isa();
  const size_t tf = static_cast<size_t>(T) * F, th = static_cast<size_t>(T) * H;
  if (s.h.size() < tf) s.h.resize(tf);
  if (s.up.size() < tf) s.up.resize(tf);
  const uint16_t* xb = nullptr;
  if (isa == LinearIsa::Avx512Bf16) {
    if (s.xb.size() < th) s.xb.resize(th);
    for (size_t i = 0; i < th; ++i) s.xb[i] = f32_to_bf16(x[i]);
    xb = s.xb.data();
  }
  const int64_t grain = detail::ffn_grain(T);
  auto phase1 = [&](int64_t o0, int64_t o1) {
    gate_up_rows(x, xb, T, w, static_cast<int>(o0), static_cast<int>(o1), s.h.data(), s.up.data(), isa);
  };
  if (pool) pool->parallel_for(F, grain, phase1);
  else phase1(0, F);

  const uint16_t* hb = nullptr;
  if (isa == LinearIsa::Avx512Bf16) {
    if (s.hb.size() < tf) s.hb.resize(tf);
    for (size_t i = 0; i < tf; ++i) s.hb[i] = f32_to_bf16(s.h[i]);
    hb = s.hb.data();
  }
  // down writes into `up`'s storage reused as [T, H] when accumulating (up is dead by now).
  float* y = out;
  if (accumulate) {
    if (s.up.size() < th) s.up.resize(th);
    y = s.up.data();
  }
  auto phase2 = [&](int64_t o0, int64_t o1) {
    linear_rows(s.h.data(), hb, T, w.down, static_cast<int>(o0), static_cast<int>(o1), y, isa);
    detail::ffn_store_rows(y, out, T, H, o0, o1, accumulate, scale);
  };
  if (pool) pool->parallel_for(H, grain, phase2);
  else phase2(0, H);
}

}  // namespace moe
