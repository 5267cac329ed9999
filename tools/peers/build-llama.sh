#!/usr/bin/env bash
# Unpacks .peers/llama.cpp.tar.xz (tools/peers/fetch-llama.sh) and builds llama.cpp with our
# peers_dump_logits in one CMake tree.
# Usage: bash tools/peers/build-llama.sh BUILD_DIR [extra cmake args...]
#   env LLAMA_TARGETS (default: llama-bench llama-batched-bench llama-quantize peers_dump_logits),
#       LLAMA_JOBS (default: nproc), LLAMA_TARBALL (default: .peers/llama.cpp.tar.xz)
# CPU here: bash tools/peers/build-llama.sh /tmp/peers-cpu      CUDA: ... -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
build=${1:?usage: build-llama.sh BUILD_DIR [cmake args...]}
shift
tarball=${LLAMA_TARBALL:-.peers/llama.cpp.tar.xz}
[ -f "$tarball" ] || { echo "build-llama: $tarball is missing; run bash tools/peers/fetch-llama.sh (here, with network) and carry .peers" >&2; exit 1; }
mkdir -p "$build"
src=$build/src/llama.cpp
stamp=$build/src/.tarball.sha256
want=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -rf "$build/src" && mkdir -p "$build/src"
  tar -C "$build/src" -xJf "$tarball"
  echo "$want" > "$stamp"
fi
commit=$(cat "$src/LLAMA_COMMIT")
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$repo/tools/peers" -B "$build/cmake" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DLLAMA_SRC="$src" \
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_NUMBER=0 -DLLAMA_BUILD_COMMIT="${commit:0:7}" "$@" > "$build/configure.log" 2>&1 \
  || { tail -30 "$build/configure.log" >&2; echo "build-llama: configure failed (log: $build/configure.log)" >&2; exit 1; }
# shellcheck disable=SC2206
targets=(${LLAMA_TARGETS:-llama-bench llama-batched-bench llama-quantize peers_dump_logits})
cmake --build "$build/cmake" -j "${LLAMA_JOBS:-$(nproc)}" --target "${targets[@]}"
echo "build-llama: built ${targets[*]} in $build/cmake/bin (llama.cpp $commit)" >&2
