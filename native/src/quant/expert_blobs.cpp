#include "moe/quant/expert_blobs.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "load_tasks.h"
#include "moe/error.h"
#include "moe/quant/quantize.h"
#include "moe/tensor.h"

namespace moe::quant {
namespace {

void check_matrix(const Matrix& m, int rows, int cols, const std::string& what) {
  if (m.empty() || m.rows != rows || m.cols != cols) {
    throw Error("routed experts: " + what + " is [" + std::to_string(m.rows) + ", " + std::to_string(m.cols) + "], expected [" +
                std::to_string(rows) + ", " + std::to_string(cols) + "]");
  }
}

// bf16: a run of one matrix's elements copied (converted from F16 / F32) to its place in the buffer.
struct Piece {
  const Matrix* m;
  size_t begin, end;  // elements of m
  size_t dst;         // bf16 element offset in the buffer where element `begin` goes
};

void copy_piece(const Piece& p, uint16_t* out) {
  const Matrix& m = *p.m;
  const size_t n = p.end - p.begin;
  uint16_t* dst = out + p.dst;
  switch (m.dtype) {
    case DType::BF16:
      std::memcpy(dst, static_cast<const uint16_t*>(m.data) + p.begin, n * 2);
      break;
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(m.data) + p.begin;
      for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(f16_to_f32(s[i]));
      break;
    }
    default: {
      const float* s = static_cast<const float*>(m.data) + p.begin;
      for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(s[i]);
      break;
    }
  }
}

const MlpWeights& expert_of(const ModelWeights& w, const std::vector<int>& moe_layers, size_t E, size_t blob) {
  return w.layers.at(static_cast<size_t>(moe_layers.at(blob / E))).experts.at(blob % E);
}

}  // namespace

std::vector<int> moe_layer_ids(const ModelWeights& w) {
  std::vector<int> ids;
  for (size_t l = 0; l < w.layers.size(); ++l) {
    if (w.layers[l].moe) ids.push_back(static_cast<int>(l));
  }
  return ids;
}

size_t expert_blobs_bytes(const ModelConfig& c, const std::vector<int>& moe_layers, const ExpertLayout& layout) {
  return moe_layers.size() * static_cast<size_t>(c.n_routed_experts) * layout.bytes;
}

void check_routed_experts(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& moe_layers, const ExpertLayout& layout) {
  const int H = c.hidden_size, dff = c.moe_intermediate_size;
  if (layout.hidden != H || layout.d_ff != dff) throw Error("routed experts: the expert layout does not match the model's shape (internal error)");
  for (int l : moe_layers) {
    const LayerWeights& L = w.layers.at(static_cast<size_t>(l));
    if (L.experts.size() != static_cast<size_t>(c.n_routed_experts)) throw Error("routed experts: layer " + std::to_string(l) + " expert count differs from the config");
    for (size_t e = 0; e < L.experts.size(); ++e) {
      const MlpWeights& X = L.experts[e];
      const std::string at = "layer " + std::to_string(l) + " expert " + std::to_string(e) + " ";
      check_matrix(X.gate, dff, H, at + "gate_proj");
      check_matrix(X.up, dff, H, at + "up_proj");
      check_matrix(X.down, H, dff, at + "down_proj");
    }
  }
}

double fill_expert_blobs(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& moe_layers, const ExpertLayout& layout,
                         uint8_t* out, const std::vector<size_t>* only) {
  check_routed_experts(c, w, moe_layers, layout);
  const auto t0 = std::chrono::steady_clock::now();
  const size_t E = static_cast<size_t>(c.n_routed_experts), n = moe_layers.size() * E, stride = layout.bytes;
  if (layout.dtype != ExpertDType::BF16) {
    // one expert per task: quantize_expert writes a whole blob
    std::vector<size_t> blobs;
    if (only != nullptr) blobs = *only;
    else for (size_t i = 0; i < n; ++i) blobs.push_back(i);
    for (size_t i : blobs) if (i >= n) throw Error("routed experts: blob " + std::to_string(i) + " is outside the " + std::to_string(n) + " experts (internal error)");
    detail::run_load_tasks(
        blobs.size(),
        [&](size_t t) {
          const MlpWeights& X = expert_of(w, moe_layers, E, blobs[t]);
          quantize_expert(layout, X.gate, X.up, X.down, out + blobs[t] * stride);
          return stride;
        },
        blobs.size() * stride, std::string("routed experts -> ") + expert_dtype_name(layout.dtype) + " in host memory");
  } else {
    if (only != nullptr) throw Error("routed experts: a partial fill is for quantized layouts only (internal error)");
    // bf16: pieces of 8 MB (many per expert, so 16 threads share even one layer's work); the blob's padding
    // (rounded up to 256 bytes) is zeroed once here.
    const size_t H = static_cast<size_t>(c.hidden_size), dff = static_cast<size_t>(c.moe_intermediate_size), part = dff * H;
    const size_t used = 3 * part * sizeof(uint16_t);
    if (stride > used) for (size_t i = 0; i < n; ++i) std::memset(out + i * stride + used, 0, stride - used);
    std::vector<Piece> pieces;
    constexpr size_t kPiece = size_t(4) << 20;  // elements per piece
    for (size_t i = 0; i < n; ++i) {
      const MlpWeights& X = expert_of(w, moe_layers, E, i);
      const Matrix* parts[3] = {&X.gate, &X.up, &X.down};
      const size_t base = i * stride / sizeof(uint16_t);
      for (size_t p = 0; p < 3; ++p) {
        for (size_t b = 0; b < part; b += kPiece) pieces.push_back({parts[p], b, std::min(part, b + kPiece), base + p * part + b});
      }
    }
    uint16_t* out16 = reinterpret_cast<uint16_t*>(out);
    detail::run_load_tasks(
        pieces.size(),
        [&](size_t t) {
          copy_piece(pieces[t], out16);
          return (pieces[t].end - pieces[t].begin) * sizeof(uint16_t);
        },
        n * used, "routed experts -> host memory");
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace moe::quant
