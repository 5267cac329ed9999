#pragma once
// Binding of `calibrate`'s measurements (native/src/calibrate/calibrate.h): exports.calibrate.
#include <napi.h>

namespace moe_addon {

// Adds exports.calibrate = {cpuInfo(), cudaBuilt(), CpuCalibrator, CudaCalibrator}.
void register_calibrate(Napi::Env env, Napi::Object exports);

}  // namespace moe_addon
