#!/usr/bin/env bash
# Issue 13 (quantized routed experts) on the GPU machine in one command (device tool: carry .gpu, made by
# `node tools/gpu/bundle.mjs`, which also packs the ESFT traces):
#   1. the full-size synthetic checkpoint in the background; meanwhile the CUDA build (addon,
#      cuda_kernel_tests, moe_quant_tests, moe_miss_tests, expert_cpu_bench) and the test executables
#      (the quantized GPU kernels against their dequantize-then-matmul references; the format, quantizer
#      and CPU quantized kernels; the miss rule and CPU executor);
#   2. unless MOE_SKIP_CHECK=1: fidelity (moe bench --check-quant int8,int4: teacher-forced logits against
#      the bf16 engine, per-expert error distribution) and the issue-6 invariant (tokens identical, fetch);
#   3. the CPU expert bench per dtype (expert_cpu_bench --dtype bf16|int8|int4), JSON in $OUT;
#   4. unless MOE_SKIP_CALIBRATE=1: calibrate --expert-dtype bf16,int8,int4 (the profile with its
#      byExpertDtype section, for simulate --calibration / bench --calibration);
#   5. the offload bench with the arguments given (e.g. --cache fit --gpu-memory 12GiB --expert-dtype
#      bf16,int8,int4 --miss fetch,hybrid --batch 1,16 --prompt 128 --routing R), the simulator beside
#      every point with the dtype's profile (the calibration of step 4 when it ran, unless --calibration is given).
# Env: MOE_BENCH_TIMEOUT (s, default 400) bounds step 5; MOE_CPU_BENCH_TIMEOUT (s, default 120) each run of step 3.
# Results: $OUT/bench.json, bench.md, check.json, check.md, calibration-quant.json (+ .raw.json),
# expert-cpu-<dtype>.json, the test logs, logs.tgz.
#   bash tools/gpu/issue13.sh [moe bench options for step 5...]
set -uo pipefail
source tools/gpu/lib.sh
gpu_init issue13 check bench
finish() {
  cp "$LOG"/calibration-quant*.json "$REAL_OUT/" 2>/dev/null
  finish_check_and_bench
}
trap finish EXIT

gpu_node
start_synth 150
build_native "moe_quant_tests moe_miss_tests expert_cpu_bench"

run_test cuda_kernel_tests 90
run_test moe_quant_tests 120
run_test moe_miss_tests 120

wait_synth

if [ "${MOE_SKIP_CHECK:-0}" != 1 ]; then
  stamp "fidelity: int8/int4 experts against the bf16 engine; tokens identical (bf16) with misses fetched"
  run_moe check 300 "moe bench --model /tmp/lite --device cuda --check-quant int8,int4 --check-offload --check-offload-caches 0,16 --check-offload-policies lru --check-offload-tokens 8 --out $LOG/check"
fi

for d in bf16 int8 int4; do
  stamp "expert_cpu_bench --dtype $d"
  timeout "${MOE_CPU_BENCH_TIMEOUT:-120}" $build/expert_cpu_bench --dtype $d --max-threads 16 --json "$REAL_OUT/expert-cpu-$d.json" > "$LOG/expert-cpu-$d.log" 2>&1
  echo "expert_cpu_bench $d exit $?" | tee -a "$LOG/steps.log"
  tail -6 "$LOG/expert-cpu-$d.log"
done

cal=
if [ "${MOE_SKIP_CALIBRATE:-0}" != 1 ]; then
  stamp "calibrate --expert-dtype bf16,int8,int4"
  run_moe calibrate 200 "moe calibrate --device cuda --expert-dtype bf16,int8,int4 --out $LOG/calibration-quant.json --force"
  [ -f "$LOG/calibration-quant.json" ] && cal="--calibration $LOG/calibration-quant.json"
fi

if [ $# -gt 0 ]; then
  case " $* " in *" --calibration "*) cal= ;; esac
  stamp "offload bench: $* $cal"
  run_moe bench "${MOE_BENCH_TIMEOUT:-400}" "moe bench --model /tmp/lite --device cuda --out $LOG/bench $cal $*"
fi
