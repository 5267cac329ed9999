#pragma once
// Quantizing one routed expert into its blob (expert_format.h) and the reference dequantization that
// every kernel (CPU and GPU) is checked against. Portable code (the int4 search uses 4-wide vector
// extensions): it runs once per expert at load (HostExperts spreads experts over threads) and in tests.
#include <cstdint>

#include "moe/quant/expert_format.h"
#include "moe/tensor.h"

namespace moe::quant {

// IEEE half from float, round to nearest even (overflow to inf, subnormals kept).
uint16_t f32_to_f16(float f);

// How an int4 group's scale and zero are chosen (the blob's format is the same either way):
//   Search  (what every load uses): a few narrower and shifted windows, each refit by least squares, the
//           stored pair with the smallest squared error kept; never worse than Nearest (quantize.cpp).
//   Nearest: round-to-nearest over the group's [min, max], the quantizer before 2026-12-05; kept as the
//           comparison point of int4_fit_bench and the tests.
enum class Int4Fit { Search, Nearest };

// Writes one expert (gate, up, down of any checkpoint DType, shapes as the layout says) into
// out[0 .. layout.bytes); padding bytes are zeroed. Throws moe::Error on a shape mismatch.
void quantize_expert(const ExpertLayout& layout, const Matrix& gate, const Matrix& up, const Matrix& down, uint8_t* out,
                     Int4Fit fit = Int4Fit::Search);

// The quantizer's identity for a dtype (what Int4Fit::Search / int8's absmax write), stored in the quantized
// experts file (quantized_file.h), which is rebuilt when it differs. Change it whenever quantize_expert's
// output for the same weights changes. bf16: "bf16" (a copy).
const char* quantizer_id(ExpertDType dtype);

enum class Part { Gate = 0, Up = 1, Down = 2 };
const MatrixLayout& part_layout(const ExpertLayout& layout, Part part);

// Row r of one matrix of a blob, dequantized to fp32: the reference meaning of the format.
void dequantize_row(const ExpertLayout& layout, const uint8_t* blob, Part part, int r, float* out);

}  // namespace moe::quant
