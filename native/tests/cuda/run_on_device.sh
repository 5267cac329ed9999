#!/usr/bin/env bash
# Builds the CUDA kernels and cuda_kernel_tests on the GPU machine, runs every check, then the
# microbenchmarks; prints the tables last. With OUT set, writes $OUT/cuda_kernels.json (all figures),
# $OUT/cuda_kernels.log (full output) and $OUT/cuda_build.log (compiler output incl. ptxas -v).
# Budget: build ~1-2 min (16 cores), checks ~30-60 s, benchmarks ~30-60 s; hard limit below 4 min.
# Exit status: the test executable's (1 if any check failed), or the build's.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BUILD="${CUDA_BUILD_DIR:-$ROOT/native/build/cuda-kernels}"
LOGDIR="${OUT:-$BUILD}"
mkdir -p "$BUILD" "$LOGDIR"
cd "$ROOT"

nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,driver_version --format=csv || true
command -v nvcc >/dev/null || export PATH="/usr/local/cuda/bin:$PATH"
nvcc --version | tail -2

# cmake + ninja where present (the image keeps them in the Python venv's bin), else plain nvcc.
for d in /opt/torch/.venv/bin "$(dirname "$(command -v python3)")"; do
  [ -x "$d/cmake" ] && export PATH="$PATH:$d"
done
start=$(date +%s)
if command -v cmake >/dev/null && command -v ninja >/dev/null; then
  echo "building with $(command -v cmake) + ninja"
  cmake -S native/tests/cuda -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_FLAGS="-Xptxas=-v" >"$LOGDIR/cuda_build.log" 2>&1 || { tail -40 "$LOGDIR/cuda_build.log"; exit 3; }
  ninja -C "$BUILD" -j "$(nproc)" >>"$LOGDIR/cuda_build.log" 2>&1 || { grep -B2 -A8 -i "error" "$LOGDIR/cuda_build.log" | head -60; exit 3; }
  BIN="$BUILD/cuda_kernel_tests"
else
  echo "cmake/ninja not found: building with nvcc directly"
  : >"$LOGDIR/cuda_build.log"
  CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
  ls native/src/cuda/*.cu native/tests/cuda/*.cu native/src/quant/*.cpp native/src/model/tensor.cpp | xargs -P "$(nproc)" -I{} sh -c \
    'nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -Inative/src/cuda -Inative/tests/cuda -Inative/include -c {} -o "'"$BUILD"'/$(basename {}).o" >>"'"$LOGDIR"'/cuda_build.log" 2>&1' \
    || { grep -B2 -A8 -i "error" "$LOGDIR/cuda_build.log" | head -60; exit 3; }
  nvcc -gencode=arch=compute_90a,code=sm_90a "$BUILD"/*.o -o "$BUILD/cuda_kernel_tests" -lcublas -lcublasLt >>"$LOGDIR/cuda_build.log" 2>&1 \
    || { tail -40 "$LOGDIR/cuda_build.log"; exit 3; }
  BIN="$BUILD/cuda_kernel_tests"
fi
echo "build: $(( $(date +%s) - start )) s"
grep -E "spill stores|stack frame" "$LOGDIR/cuda_build.log" | grep -v " 0 bytes spill stores, 0 bytes spill loads" | head -5 || true

JSON_ARGS=()
[ -n "${OUT:-}" ] && JSON_ARGS=(--json "$OUT/cuda_kernels.json")
set +e
timeout 200 "$BIN" --bench "${JSON_ARGS[@]}" 2>&1 | tee "$LOGDIR/cuda_kernels.log"
rc=${PIPESTATUS[0]}
set -e
echo "cuda_kernel_tests exit status: $rc (total $(( $(date +%s) - start )) s)"
exit "$rc"
