#!/usr/bin/env bash
# Issue 5 on the GPU machine in one command (device tool: carry .gpu, made by `node tools/gpu/bundle.mjs`):
#   1. the full-size synthetic checkpoint (moe synth-model --geometry lite, ~40 s) in the background,
#   2. meanwhile the native build with the CUDA backend (tools/gpu/on-device.sh; MOE_CUDA=ON) and the
#      CUDA kernels' reference checks (cuda_kernel_tests),
#   3. moe bench --device cuda with the transformers agreement check (bf16 + fp32 references) and the
#      transformers baseline on the same checkpoint and prompts.
# Results: $OUT/bench.json, $OUT/bench.md, $OUT/bench-nographs.json (batch 1/16 with MOE_CUDA_GRAPHS=0),
# $OUT/cuda_kernels.json (checks + kernel timings), $OUT/logs.tgz (every log); the
# bench table is printed last. Stages have their own time limits so the whole run ends in ~6.5 min.
#   bash tools/gpu/issue5.sh [extra moe bench options...]
set -uo pipefail
REAL_OUT=${OUT:-/tmp/out}
LOG=/tmp/issue5-logs
rm -rf "$LOG"
mkdir -p "$REAL_OUT" "$LOG"
start=$(date +%s)
stamp() { echo "[issue5 $(( $(date +%s) - start )) s] $*" | tee -a "$LOG/steps.log"; }
finish() {
  tar czf "$REAL_OUT/logs.tgz" -C "$LOG" . 2>/dev/null
  [ -f "$LOG/bench.md" ] && cat "$LOG/bench.md"
  stamp "done"
}
trap finish EXIT

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$LOG/gpu.txt" 2>&1
cat "$LOG/gpu.txt"
export MOE_NODE=/tmp/moe-node
xz -dc .gpu/node.xz > "$MOE_NODE" && chmod +x "$MOE_NODE"

stamp "synth-model lite (background)"
rm -rf /tmp/lite
( OUT=$LOG MOE_SKIP_NATIVE=1 timeout 150 bash tools/gpu/on-device.sh \
    'moe synth-model --geometry lite --seed 1 --out /tmp/lite' > "$LOG/synth.log" 2>&1; echo $? > "$LOG/synth.rc" ) &
synth_pid=$!

stamp "native build (CUDA backend: addon + cuda_kernel_tests only)"
build=/tmp/native-build
bash tools/gpu/build-cuda.sh $build "$LOG/build.log" || { stamp "build FAILED"; exit 1; }
stamp "build done"

stamp "cuda_kernel_tests"
timeout 150 $build/cuda_kernel_tests --bench --json "$REAL_OUT/cuda_kernels.json" > "$LOG/cuda_kernels.log" 2>&1
echo "cuda_kernel_tests exit $?" | tee -a "$LOG/steps.log"
grep -E "^[a-z_]+ +(PASS|FAIL)|passed|expert_ffn|mla_attention_decode" "$LOG/cuda_kernels.log" | tail -30

wait $synth_pid
stamp "synth exit $(cat "$LOG/synth.rc" 2>/dev/null): $(tail -1 "$LOG/synth.log")"
[ "$(cat "$LOG/synth.rc" 2>/dev/null)" = 0 ] || exit 1

stamp "bench"
OUT=$LOG MOE_SKIP_NATIVE=1 MOE_NATIVE_ADDON=$(find $build -name '*.node' | head -1) PYTHONUNBUFFERED=1 timeout 330 \
  bash tools/gpu/on-device.sh "moe bench --model /tmp/lite --device cuda --out $LOG --force --baseline transformers --check transformers --check-fp32 $*" \
  > "$LOG/bench.log" 2>&1
echo "bench exit $?" | tee -a "$LOG/steps.log"
grep -v "^|" "$LOG/bench.log" | tail -25
cp "$LOG/bench.json" "$REAL_OUT/" 2>/dev/null

stamp "bench without CUDA graphs (batch 1 and 16, prompt 128)"
mkdir -p $LOG/nographs
OUT=$LOG MOE_CUDA_GRAPHS=0 MOE_SKIP_NATIVE=1 MOE_NATIVE_ADDON=$(find $build -name '*.node' | head -1) timeout 60 \
  bash tools/gpu/on-device.sh "moe bench --model /tmp/lite --device cuda --batch 1,16 --prompt 128 --new-tokens 32 --repeats 2 --out $LOG/nographs" \
  > "$LOG/bench-nographs.log" 2>&1
echo "bench (no graphs) exit $?" | tee -a "$LOG/steps.log"
cp "$LOG/nographs/bench.json" "$REAL_OUT/bench-nographs.json" 2>/dev/null
grep "^| 1 \|^| 16 " "$LOG/nographs/bench.md" 2>/dev/null
cp "$LOG/bench.md" "$REAL_OUT/" 2>/dev/null
