// Replays request sets through the C++ expert cache and prints every decision, for the twin test
// (runtime/test/offload/cache-twin.test.ts) to compare with the simulator's LayerCache.
// stdin (whitespace-separated integers/words):
//   experts E layers L steps S
//   S*L sets, step-major: n e_1 .. e_n          (ascending, distinct)
//   configs K
//   K configs: policy capacity decay pinned?     (pinned = 1: then L lines "n e_1 .. e_n")
// stdout, per config: one line "config <i> hits <h> requests <r>", then one line of
// "outcome victim slot" triples, one per request in processing order (step, layer, ascending id).
// --check runs check_invariants() after every step. Errors: message on stderr, exit status 1.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "moe/error.h"
#include "moe/offload/expert_cache.h"

using namespace moe::offload;

namespace {

int read_int(std::istream& in, const char* what) {
  long long v;
  if (!(in >> v)) throw moe::Error(std::string("input: expected ") + what);
  return static_cast<int>(v);
}

void expect_word(std::istream& in, const char* word) {
  std::string w;
  if (!(in >> w) || w != word) throw moe::Error(std::string("input: expected '") + word + "', got '" + w + "'");
}

}  // namespace

int main(int argc, char** argv) {
  const bool check = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  try {
    std::ios::sync_with_stdio(false);
    std::istream& in = std::cin;
    expect_word(in, "experts");
    const int E = read_int(in, "experts");
    expect_word(in, "layers");
    const int L = read_int(in, "layers");
    expect_word(in, "steps");
    const int S = read_int(in, "steps");
    std::vector<int32_t> offsets(1, 0), experts;
    for (int i = 0; i < S * L; ++i) {
      const int n = read_int(in, "set size");
      for (int j = 0; j < n; ++j) experts.push_back(read_int(in, "expert"));
      offsets.push_back(static_cast<int32_t>(experts.size()));
    }
    const std::vector<int32_t> next = next_request_steps(S, L, E, offsets, experts);
    expect_word(in, "configs");
    const int K = read_int(in, "configs");
    std::vector<CacheOutcome> out(experts.size());
    std::string line;
    for (int c = 0; c < K; ++c) {
      std::string policy;
      double decay;
      in >> policy;
      const int capacity = read_int(in, "capacity");
      if (!(in >> decay)) throw moe::Error("input: expected decay");
      const int has_pinned = read_int(in, "pinned flag");
      ExpertCacheOptions o;
      o.layers = L;
      o.num_experts = E;
      o.slots_per_layer = capacity;
      o.policy = parse_policy(policy);
      o.lfru_decay = decay;
      if (has_pinned) {
        for (int l = 0; l < L; ++l) {
          std::vector<int> p(static_cast<size_t>(read_int(in, "pinned count")));
          for (int& e : p) e = read_int(in, "pinned expert");
          o.pinned.push_back(p);
        }
      }
      ExpertCache cache(o);
      int64_t hits = 0;
      for (int s = 0; s < S; ++s) {
        for (int l = 0; l < L; ++l) {
          const int32_t a = offsets[static_cast<size_t>(s) * L + l], b = offsets[static_cast<size_t>(s) * L + l + 1];
          hits += cache.run_step(l, s, experts.data() + a, b - a, next.data() + a, out.data() + a).hits;
          if (check) cache.layer(l).check_invariants();
        }
      }
      std::printf("config %d hits %lld requests %zu\n", c, static_cast<long long>(hits), experts.size());
      line.clear();
      char buf[48];
      for (const CacheOutcome& r : out) {
        std::snprintf(buf, sizeof buf, "%d %d %d ", r.code, r.victim, r.slot);
        line += buf;
      }
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cache_replay: %s\n", e.what());
    return 1;
  }
  return 0;
}
