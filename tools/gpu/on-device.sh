#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, with `.gpu` carried (made by tools/gpu/bundle.mjs).
# Unpacks Node, builds the native engine and its addon with plain CMake (no npm or cmake-js there: the
# cmake-js variables are set by hand to the carried headers), then runs the given command
# with `moe` available as the CLI. Example (device tool):
#   bash tools/gpu/on-device.sh 'moe synth-model --geometry lite --seed 1 --out /tmp/lite'
set -euo pipefail
root=$(pwd)
gpu=$root/.gpu
[ -f "$gpu/moe-offload.mjs.xz" ] || [ -f "$gpu/moe-offload.mjs" ] || { echo "on-device: .gpu/ is missing: run node tools/gpu/bundle.mjs here and carry .gpu" >&2; exit 2; }
# The CLI bundle travels xz-compressed (bundle.mjs): unpacked next to it once per carried copy.
if [ -f "$gpu/moe-offload.mjs.xz" ] && [ ! "$gpu/moe-offload.mjs" -nt "$gpu/moe-offload.mjs.xz" ]; then
  xz -dc "$gpu/moe-offload.mjs.xz" > "$gpu/moe-offload.mjs.tmp.$$" && mv "$gpu/moe-offload.mjs.tmp.$$" "$gpu/moe-offload.mjs"
fi
export MOE_NODE=/tmp/moe-node
if [ ! -x "$MOE_NODE" ]; then xz -dc "$gpu/node.xz" > "$MOE_NODE" && chmod +x "$MOE_NODE"; fi
export PATH="/usr/local/cuda/bin:$PATH"
# ESFT traces carried xz-compressed (tools/gpu/bundle-traces.mjs): unpack once.
for t in "$gpu"/traces/*.arrow.xz; do
  [ -f "$t" ] || continue
  [ -f "${t%.xz}" ] || xz -dc "$t" > "${t%.xz}"
done
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"

build=/tmp/native-build
if [ "${MOE_SKIP_NATIVE:-0}" != 1 ] && [ -f native/CMakeLists.txt ]; then
  echo "on-device: building the native engine" >&2
  t0=$(date +%s)
  cmake -S native -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_JS_VERSION=carried -DCMAKE_JS_INC="$gpu/include/node-api-headers" \
    -DNODE_ADDON_API_DIR="$gpu/include/node-addon-api" ${MOE_CMAKE_ARGS:-} > "$OUT/cmake-configure.log" 2>&1 || { tail -40 "$OUT/cmake-configure.log"; exit 1; }
  cmake --build "$build" -j 16 > "$OUT/cmake-build.log" 2>&1 || { grep -m20 -A3 error "$OUT/cmake-build.log"; tail -20 "$OUT/cmake-build.log"; exit 1; }
  echo "on-device: native build took $(( $(date +%s) - t0 )) s" >&2
  addon=$(find "$build" -name '*.node' | head -1)
  [ -n "$addon" ] && export MOE_NATIVE_ADDON="$addon"
fi

export MOE_GPU_DIR="$gpu"
moe() { "$MOE_NODE" "$MOE_GPU_DIR/moe-offload.mjs" "$@"; }
export -f moe
bash -c "$*"
