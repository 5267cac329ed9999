#include "moe/offload/miss_policy.h"

#include <algorithm>
#include <string>

#include "moe/error.h"

namespace moe::offload {

MissMode parse_miss_mode(const std::string& name) {
  if (name == "fetch") return MissMode::Fetch;
  if (name == "cpu") return MissMode::Cpu;
  if (name == "hybrid") return MissMode::Hybrid;
  throw Error("miss mode '" + name + "': expected fetch, cpu or hybrid");
}

CpuExpertRounding parse_cpu_expert_rounding(const std::string& name) {
  if (name == "fast") return CpuExpertRounding::Fast;
  if (name == "gpu-order") return CpuExpertRounding::GpuOrder;
  throw Error("option --cpu-rounding: unknown value '" + name + "' (fast or gpu-order)");
}

const char* cpu_expert_rounding_name(CpuExpertRounding r) { return r == CpuExpertRounding::GpuOrder ? "gpu-order" : "fast"; }

const char* miss_mode_name(MissMode m) {
  switch (m) {
    case MissMode::Fetch: return "fetch";
    case MissMode::Cpu: return "cpu";
    case MissMode::Hybrid: return "hybrid";
  }
  return "?";
}

double interpolate_curve(const TokenCurve& curve, double tokens) {
  if (curve.empty()) throw Error("cost curve is empty");
  if (curve.size() == 1) return curve[0].second;
  size_t i = 1;
  while (i < curve.size() - 1 && curve[i].first < tokens) ++i;
  const auto [x0, y0] = curve[i - 1];
  const auto [x1, y1] = curve[i];
  return std::max(0.0, y0 + ((y1 - y0) * (tokens - x0)) / (x1 - x0));
}

void CpuCorrection::observe(double measured_ms, double profile_ms) {
  if (!on || !(profile_ms > 0) || !(measured_ms >= 0)) return;
  const double ratio = std::clamp(measured_ms / profile_ms, kMinRatio, kMaxRatio);
  factor += kWeight * (ratio - factor);
}

double decide_misses(const MissPolicy& p, double copy_backlog_ms, std::vector<double>& cpu_free,
                     const std::vector<int32_t>& tokens, std::vector<MissDecision>& out, double cpu_factor) {
  if (cpu_free.empty()) throw Error("miss policy: at least one CPU worker is needed");
  out.resize(tokens.size());
  double copy_free = std::max(0.0, copy_backlog_ms);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int n = tokens[i];
    const size_t w = static_cast<size_t>(std::min_element(cpu_free.begin(), cpu_free.end()) - cpu_free.begin());
    MissDecision& d = out[i];
    d.via_copy_ms = copy_free + p.costs.copy_ms + p.costs.gpu_ms(n);
    d.via_cpu_ms = cpu_free[w] + p.costs.cpu_ms(n, cpu_factor);
    d.on_cpu = p.mode == MissMode::Cpu || (p.mode == MissMode::Hybrid && d.via_cpu_ms < d.via_copy_ms);
    if (d.on_cpu) cpu_free[w] = d.via_cpu_ms;
    else copy_free += p.costs.copy_ms;
  }
  return copy_free;
}

double CopyBacklog::for_experts(const int32_t* experts, int n) const {
  double b = std::max(0.0, ms);
  if (late_prefetch_ms.empty()) return b;
  for (int i = 0; i < n; ++i) {
    const int32_t e = experts[i];
    if (e < 0 || static_cast<size_t>(e) >= late_prefetch_ms.size()) {
      throw Error("copy backlog: expert " + std::to_string(e) + " outside the " + std::to_string(late_prefetch_ms.size()) + " the backlog knows");
    }
    b += late_prefetch_ms[static_cast<size_t>(e)];
  }
  return b;
}

void MissLog::clear() {
  step.clear();
  layer.clear();
  expert.clear();
  tokens.clear();
  copy_backlog_ms.clear();
  via_copy_ms.clear();
  via_cpu_ms.clear();
  cpu_measured_ms.clear();
  cpu_factor.clear();
  on_cpu.clear();
  first_of_layer.clear();
}

}  // namespace moe::offload
