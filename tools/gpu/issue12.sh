#!/usr/bin/env bash
# Issue 12 (misses computed on the CPU) on the GPU machine in one command (device tool: carry .gpu, made by
# `node tools/gpu/bundle.mjs`, which also packs the ESFT traces):
#   1. the full-size synthetic checkpoint in the background; meanwhile the CUDA build (addon,
#      cuda_kernel_tests, moe_miss_tests) and both test executables (kernels on the GPU; the miss rule and
#      the CPU expert executor on this host's CPU, AVX512-BF16 included);
#   2. unless MOE_SKIP_CHECK=1: the numerics (moe bench --check-miss cpu,hybrid: logits against
#      all-resident) and the issue-6 invariant (tokens identical, fetch) on a short grid;
#   3. the offload bench with the arguments given (e.g. --cache 19 --miss fetch,cpu,hybrid --batch 1,16
#      --prompt 128 --routing R --gpu-memory 12GiB), every point with the simulator beside it.
# Env: MOE_BENCH_TIMEOUT (s, default 300) bounds step 3.
# Results: $OUT/bench.json, bench.md, check.json, check.md, cuda_kernels.log, miss_tests.log, logs.tgz.
#   bash tools/gpu/issue12.sh [moe bench options for step 3...]
set -uo pipefail
source tools/gpu/lib.sh
gpu_init issue12 check bench
trap finish_check_and_bench EXIT

gpu_node

start_synth 150

build_native moe_miss_tests

timeout 60 $build/cuda_kernel_tests > "$LOG/cuda_kernels.log" 2>&1
echo "cuda_kernel_tests exit $?" | tee -a "$LOG/steps.log"
grep -E "FAIL|passed|failed" "$LOG/cuda_kernels.log" | tail -4
timeout 120 $build/moe_miss_tests > "$LOG/miss_tests.log" 2>&1
echo "moe_miss_tests exit $?" | tee -a "$LOG/steps.log"
tail -3 "$LOG/miss_tests.log"
cp "$LOG/cuda_kernels.log" "$LOG/miss_tests.log" "$REAL_OUT/" 2>/dev/null

wait_synth


if [ "${MOE_SKIP_CHECK:-0}" != 1 ]; then
  stamp "numerics: misses on the CPU against all-resident logits; tokens identical with misses fetched"
  run_moe check 200 "moe bench --model /tmp/lite --device cuda --check-miss cpu,hybrid --check-offload --check-offload-caches 0,16 --check-offload-policies lru --check-offload-tokens 8 --out $LOG/check"
fi

if [ $# -gt 0 ]; then
  stamp "offload bench: $*"
  run_moe bench "${MOE_BENCH_TIMEOUT:-300}" "moe bench --model /tmp/lite --device cuda --out $LOG/bench $*"
fi
