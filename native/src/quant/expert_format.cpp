#include "moe/quant/expert_format.h"

#include "moe/error.h"

namespace moe::quant {
namespace {

size_t align256(size_t n) { return (n + 255) & ~size_t(255); }

size_t q_bytes(ExpertDType t, int rows, int cols) {
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  switch (t) {
    case ExpertDType::BF16: return n * 2;
    case ExpertDType::INT8: return n;
    default: return n / 2;
  }
}

size_t scale_bytes(ExpertDType t, int rows, int cols, int group) {
  switch (t) {
    case ExpertDType::BF16: return 0;
    case ExpertDType::INT8: return static_cast<size_t>(rows) * 4;
    default: return static_cast<size_t>(rows) * static_cast<size_t>(cols / group) * 2;
  }
}

}  // namespace

const char* expert_dtype_name(ExpertDType t) {
  switch (t) {
    case ExpertDType::BF16: return "bf16";
    case ExpertDType::INT8: return "int8";
    default: return "int4";
  }
}

ExpertDType parse_expert_dtype(const std::string& s) {
  if (s == "bf16") return ExpertDType::BF16;
  if (s == "int8") return ExpertDType::INT8;
  if (s == "int4") return ExpertDType::INT4;
  throw Error("unknown expert dtype '" + s + "' (expected bf16, int8 or int4)");
}

ExpertLayout expert_layout(ExpertDType dtype, int hidden, int d_ff, int group) {
  if (hidden <= 0 || d_ff <= 0) throw Error("expert layout: hidden and d_ff must be positive");
  ExpertLayout L;
  L.dtype = dtype;
  L.hidden = hidden;
  L.d_ff = d_ff;
  if (dtype == ExpertDType::INT4) {
    if (group <= 0 || group % 2 != 0) throw Error("expert layout: int4 group size must be a positive even number, got " + std::to_string(group));
    if (hidden % group != 0 || d_ff % group != 0) {
      throw Error("expert layout: int4 group size " + std::to_string(group) + " must divide hidden (" + std::to_string(hidden) +
                  ") and moe_intermediate_size (" + std::to_string(d_ff) + ")");
    }
    L.group = group;
  }
  L.gate = {d_ff, hidden, 0, 0, 0};
  L.up = {d_ff, hidden, 0, 0, 0};
  L.down = {hidden, d_ff, 0, 0, 0};
  // q region: gate | up adjacent (one [2 d_ff, hidden] matrix), then down.
  L.up.q = L.gate.q + q_bytes(dtype, d_ff, hidden);
  L.down.q = L.up.q + q_bytes(dtype, d_ff, hidden);
  size_t end = L.down.q + q_bytes(dtype, hidden, d_ff);
  if (dtype != ExpertDType::BF16) {
    L.gate.scale = align256(end);
    L.up.scale = L.gate.scale + scale_bytes(dtype, d_ff, hidden, group);
    L.down.scale = L.up.scale + scale_bytes(dtype, d_ff, hidden, group);
    end = L.down.scale + scale_bytes(dtype, hidden, d_ff, group);
  }
  if (dtype == ExpertDType::INT4) {
    L.gate.zero = align256(end);
    L.up.zero = L.gate.zero + scale_bytes(dtype, d_ff, hidden, group);
    L.down.zero = L.up.zero + scale_bytes(dtype, d_ff, hidden, group);
    end = L.down.zero + scale_bytes(dtype, hidden, d_ff, group);
  }
  L.bytes = align256(end);
  return L;
}

}  // namespace moe::quant
