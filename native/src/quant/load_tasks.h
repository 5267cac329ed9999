#pragma once
// The load's parallel passes over the routed experts (fill from the checkpoint, read or write the quantized
// experts file): n independent tasks on up to 16 host threads, with a progress line on stderr every 10%.
// Internal to src/quant (expert_blobs.cpp, quantized_file.cpp).
#include <cstddef>
#include <functional>
#include <string>

namespace moe::quant::detail {

// Host threads a load pass uses: the hardware's, at most 16 (more gave no gain on the 16-core device host).
int load_threads();

// Runs task(i) for every i in [0, n) on load_threads() threads. task returns the bytes it processed;
// progress is their sum over total_bytes ("moe: <label>: 40% (...)"; no line when label is empty). The
// first exception stops the remaining tasks and is rethrown as moe::Error with its message.
void run_load_tasks(size_t n, const std::function<size_t(size_t)>& task, size_t total_bytes, const std::string& label);

}  // namespace moe::quant::detail
