#!/usr/bin/env bash
# Issue 6 on the GPU machine in one command (device tool: carry .gpu, made by `node tools/gpu/bundle.mjs`,
# which also packs the ESFT traces):
#   1. the full-size synthetic checkpoint (moe synth-model --geometry lite) in the background,
#   2. meanwhile the native build with the CUDA backend (addon + cuda_kernel_tests) and the kernels'
#      reference checks (the routed-expert kernels changed: -1 entries, caller-side combine),
#   3. the invariant: tokens identical between all-resident and offloaded runs, caches 0/8/16/32 x
#      lru/lfu/fifo, batch 1, batch 4 and batch 4 with >= 2048 prefill rows (moe bench --check-offload),
#   4. the offload bench: batch 1, prompt 128, caches 0 (naive on-demand) and 16, lru and lfu, routing
#      replayed from ESFT summary, under a 12 GiB budget: ms/token, hit rate vs the simulator, bytes
#      moved, copy wait, peak GPU memory (engine and device-wide).
# Env: MOE_SKIP_CHECK=1 skips step 3; MOE_BENCH_TIMEOUT (s, default 150) bounds step 4; MOE_ACCELERATE (below)
# adds the accelerate baseline, MOE_NAIVE the naive on-demand run.
# Results: $OUT/check.json, $OUT/bench.json, $OUT/bench.md, $OUT/cuda_kernels.log, $OUT/logs.tgz; the
# tables are printed last. Extra arguments go to the offload bench (e.g. --new-tokens 64 --repeats 3).
#   bash tools/gpu/issue6.sh [extra moe bench options...]
set -uo pipefail
source tools/gpu/lib.sh
gpu_init issue6 check bench
trap finish_check_and_bench EXIT

gpu_node

start_synth 150

build_native

stamp "cuda_kernel_tests (reference checks, no timings)"
timeout 60 $build/cuda_kernel_tests > "$LOG/cuda_kernels.log" 2>&1
echo "cuda_kernel_tests exit $?" | tee -a "$LOG/steps.log"
cp "$LOG/cuda_kernels.log" "$REAL_OUT/" 2>/dev/null
grep -E "FAIL|passed|failed" "$LOG/cuda_kernels.log" | tail -8

wait_synth


if [ "${MOE_SKIP_CHECK:-0}" != 1 ]; then
  stamp "invariant: tokens identical, all-resident vs offloaded"
  run_moe check 150 "moe bench --model /tmp/lite --device cuda --check-offload --check-offload-tokens 8 --out $LOG/check"
fi

stamp "offload bench: batch 1, prompt 128, cache 0 and 16, lru and lfu, ESFT summary routing, 12 GiB"
run_moe bench "${MOE_BENCH_TIMEOUT:-150}" "moe bench --model /tmp/lite --device cuda --cache 0,16 --policy lru,lfu --batch 1 --prompt 128 --new-tokens 32 --repeats 2 --warmup 1 --routing .gpu/traces/summary.arrow --gpu-memory 12GiB --out $LOG/bench $*"

# MOE_NAIVE="1:128": naive on-demand loading (cache 0: every expert streamed every time) at batch:prompt,
# with the bench's routing; results in $OUT/naive.json.
for bp in ${MOE_NAIVE:-}; do
  b=${bp%%:*}; p=${bp##*:}
  stamp "naive on-demand (cache 0): batch $b, prompt $p"
  mkdir -p "$LOG/naive"
  run_moe naive 150 "moe bench --model /tmp/lite --device cuda --cache 0 --policy lru --batch $b --prompt $p --new-tokens ${MOE_NAIVE_TOKENS:-32} --repeats 2 --warmup 1 --routing ${MOE_NAIVE_ROUTING:-.gpu/traces/summary.arrow} --gpu-memory 12GiB --out $LOG/naive --force"
  cp "$LOG/naive/bench.json" "$REAL_OUT/naive.json" 2>/dev/null
done

# MOE_ACCELERATE="1:128 4:128": the transformers + accelerate CPU-offload baseline under the same 12 GiB
# budget, one run per batch:prompt (tools/oracle/bench_accelerate.py; about 2 s per token, so few tokens).
for bp in ${MOE_ACCELERATE:-}; do
  b=${bp%%:*}; p=${bp##*:}
  stamp "accelerate baseline: batch $b, prompt $p, 12 GiB"
  PYTHONUNBUFFERED=1 timeout "${MOE_ACCELERATE_TIMEOUT:-240}" python3 tools/oracle/bench_accelerate.py --model /tmp/lite \
    --gpu-memory 12GiB --batch "$b" --prompt "$p" --new-tokens "${MOE_ACCELERATE_TOKENS:-6}" \
    --out "$REAL_OUT/accelerate-b$b-p$p.json" > "$LOG/accelerate-b$b-p$p.log" 2>&1
  echo "accelerate b$b p$p exit $?" | tee -a "$LOG/steps.log"
  tail -2 "$LOG/accelerate-b$b-p$p.log"
done
