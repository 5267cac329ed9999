#pragma once
// Storage formats of one routed expert (issue 13): where its bytes are, for every dtype, in host
// memory, in a GPU cache slot, in the quantized cache file and for the CPU and GPU kernels. One
// function computes the layout; every part of the engine (and the TypeScript budget, through the
// addon) asks it, so a byte count never differs between places.
//
// An expert is gate [d_ff, hidden], up [d_ff, hidden], down [hidden, d_ff] (row-major, out x in).
// Blob of one expert, offsets from its start:
//   q region:     gate | up (adjacent: together one [2 d_ff, hidden] matrix) | down
//   scale region: gate | up (adjacent, same row order) | down
//   zero region:  gate | up | down                                   (int4 only)
// Each region starts 256-byte aligned; the blob's size is a multiple of 256 bytes.
//   bf16: q holds the bf16 weights; no scales, no zeros (exactly the pre-issue-13 layout).
//   int8: symmetric per output channel: w[r, c] = q[r, c] * scale[r]; q int8 in [-127, 127],
//         scale fp32 [rows] = max|w[r, :]| / 127 (a zero row has scale 0).
//   int4: asymmetric groups of `group` consecutive inputs of one output row:
//         w[r, c] = (q[r, c] - zero[r, g]) * scale[r, g], g = c / group, q in [0, 15];
//         packed two per byte, element c of row r in byte (r * cols + c) / 2: even c the low
//         nibble, odd c the high nibble; scale and zero fp16 [rows, cols / group] (group-major
//         within a row: index r * (cols / group) + g). zero is fractional (fp16), not rounded.
//         The quantizer (quantize.h Int4Fit) chooses each group's scale and zero: by default the pair
//         with the smallest squared error among round-to-nearest over [min, max] (scale = (max - min)
//         / 15, zero = -min / scale) and a few narrower windows refit by least squares; each q is then
//         the nearest level (scale 0: all q 0, zero 0). Readers need only the formula above.
#include <cstddef>
#include <cstdint>
#include <string>

namespace moe::quant {

enum class ExpertDType : int32_t { BF16 = 0, INT8 = 1, INT4 = 2 };

constexpr int kDefaultInt4Group = 64;  // inputs per int4 group (hidden 2048 and d_ff 1408 are multiples of 64)

const char* expert_dtype_name(ExpertDType t);          // "bf16" | "int8" | "int4"
ExpertDType parse_expert_dtype(const std::string& s);  // throws moe::Error naming the value

// One matrix inside the blob: byte offsets from the expert's start.
struct MatrixLayout {
  int rows = 0, cols = 0;
  size_t q = 0;      // weights (bf16 / int8 / packed int4)
  size_t scale = 0;  // int8: float[rows]; int4: fp16[rows * cols / group]; bf16: unused
  size_t zero = 0;   // int4: fp16[rows * cols / group]; otherwise unused
};

struct ExpertLayout {
  ExpertDType dtype = ExpertDType::BF16;
  int hidden = 0, d_ff = 0;
  int group = 0;  // int4 only (0 otherwise)
  MatrixLayout gate, up, down;
  size_t bytes = 0;  // the whole blob, a multiple of 256
};

// Throws moe::Error when the shape does not suit the dtype (int4: every cols % group == 0, group
// even and > 0; every dtype: positive sizes).
ExpertLayout expert_layout(ExpertDType dtype, int hidden, int d_ff, int group = kDefaultInt4Group);

}  // namespace moe::quant
