#!/usr/bin/env bash
# Native build with the CUDA backend on the GPU machine, for issue5.sh, issue6.sh and issue12.sh (MOE_EXTRA_TARGETS: more targets): configured as
# on-device.sh does (cmake-js variables set by hand to the carried headers in .gpu/include), but only the
# targets these runs need (the addon and cuda_kernel_tests). On failure the first errors are printed.
#   bash tools/gpu/build-cuda.sh BUILD_DIR LOG_FILE
set -uo pipefail
build=$1
log=$2
export PATH="/usr/local/cuda/bin:$PATH"
( cmake -S native -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOE_CUDA=ON \
    -DCMAKE_JS_VERSION=carried -DCMAKE_JS_INC="$PWD/.gpu/include/node-api-headers" \
    -DNODE_ADDON_API_DIR="$PWD/.gpu/include/node-addon-api" \
  && timeout 240 cmake --build "$build" -j 16 --target moe_addon cuda_kernel_tests ${MOE_EXTRA_TARGETS:-} ) > "$log" 2>&1 \
  || { grep -m20 -B2 -A6 "error" "$log"; tail -20 "$log"; exit 1; }
