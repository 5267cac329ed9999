#include <algorithm>
#include <cmath>
#include <numeric>

#include "moe/error.h"
#include "moe/kernels.h"

namespace moe {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {  // xoshiro256**
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

int32_t sample_token(const float* logits, int vocab, const SamplingParams& p, Rng& rng, std::vector<float>& work,
                     std::vector<int32_t>& order) {
  if (p.greedy) {
    int32_t best = 0;
    for (int i = 1; i < vocab; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    return best;
  }
  if (!(p.temperature > 0.f)) throw Error("sampling: temperature must be > 0");
  if (!(p.top_p > 0.f && p.top_p <= 1.f)) throw Error("sampling: top_p must be in (0, 1]");
  work.resize(static_cast<size_t>(vocab));
  order.resize(static_cast<size_t>(vocab));
  const float mx = *std::max_element(logits, logits + vocab);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) {
    work[i] = std::exp((logits[i] - mx) / p.temperature);
    sum += work[i];
  }
  std::iota(order.begin(), order.end(), 0);
  // Most likely first; ties by lower id, so the order (and the draw) is deterministic.
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return work[a] > work[b] || (work[a] == work[b] && a < b); });
  const double target = p.top_p * sum;
  double kept = 0.0;
  size_t n_keep = 0;
  while (n_keep < order.size()) {
    kept += work[order[n_keep++]];
    if (kept >= target) break;
  }
  const double u = rng.uniform() * kept;
  double acc = 0.0;
  for (size_t i = 0; i < n_keep; ++i) {
    acc += work[order[i]];
    if (u < acc) return order[i];
  }
  return order[n_keep - 1];
}

}  // namespace moe
