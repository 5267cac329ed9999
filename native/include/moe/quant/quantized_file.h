#pragma once
// The quantized experts file (issue 13): the int8 / int4 blobs of expert_blobs.h written beside the
// checkpoint once, so that a later load reads them instead of quantizing again (int4's scale search takes
// about 18 s on 16 cores for DeepSeek-V2-Lite; a read is bound by the disk or the page cache).
//
// It is a safetensors file. The TypeScript side (runtime/src/offload/quantized-file.ts) owns its header:
// it builds the expected header from the checkpoint's fingerprint and the format (dtype, group, the
// quantizer's id, shapes), compares a file on disk with it and decides read or write; this side gets those
// header bytes and the decision. Data region, after the header (its length a multiple of 4096):
//   layers.<l>.mlp.experts   U8  [E, layout.bytes]   one per MoE layer l, in layer order: the blobs
//   checksums                U64 [MoE layers, E]     blob_checksum of every blob, little-endian, last
// Reading checks the size and the header bytes again, then every blob against its checksum: a blob that
// fails is quantized from the checkpoint again, and the file is rewritten. A file is never used unchecked.
// Writing goes to "<path>.partial-<pid>" and is renamed into place when complete, so an interrupted
// write never leaves a file under the real name. A write that fails (disk full, read-only folder) leaves a
// warning and the load goes on: the file only saves time.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "moe/config.h"
#include "moe/quant/expert_format.h"
#include "moe/weights.h"

namespace moe::quant {

// A 64-bit checksum of one blob: four 64-bit multiply-rotate lanes over 32-byte stripes, a tail and a final
// avalanche (xxHash64's construction). It detects corruption and truncation, not deliberate tampering.
uint64_t blob_checksum(const uint8_t* data, size_t n);

struct QuantizedFileSpec {
  std::string path;
  enum class Mode { Read, Write } mode = Mode::Write;
  std::vector<uint8_t> header;  // the whole header: u64 length + JSON; the data starts at header.size()
};

// What a load did with the file (device_info().offload.quantizedFile).
struct QuantizedFileResult {
  std::string path;
  bool read = false;         // the blobs came from the file (rebuilt ones excepted)
  bool written = false;      // the file was (re)written by this load
  size_t rebuilt = 0;        // blobs whose checksum failed, quantized again
  double read_seconds = 0, write_seconds = 0;
  std::string warning;       // why the file was not read or not written (also printed on stderr); empty: none
};

// {"path","read","written","rebuiltExperts","readSeconds","writeSeconds","warning"}: the result as the backends'
// device_info() reports it (runtime/src/engine/native-binding.ts NativeQuantizedFileResult).
std::string quantized_file_json(const QuantizedFileResult& r);

// Fills out[0 .. expert_blobs_bytes) for a quantized layout, reading the file (Mode::Read) or quantizing
// and then writing it (Mode::Write); quantize_seconds gets the time spent quantizing (0 after a clean
// read). Errors of the file are warnings in the result; errors of the checkpoint (shapes) throw.
QuantizedFileResult fill_expert_blobs_with_file(const ModelConfig& c, const ModelWeights& w, const std::vector<int>& moe_layers,
                                                const ExpertLayout& layout, uint8_t* out, const QuantizedFileSpec& spec,
                                                double& quantize_seconds);

}  // namespace moe::quant
