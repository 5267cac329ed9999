#!/usr/bin/env bash
# Issue 14's `validate --best` on the GPU machine in one command (device tool: carry .gpu, made by
# `node tools/gpu/bundle.mjs`, which also packs the ESFT traces):
#   1. the full-size synthetic checkpoint (moe synth-model --geometry lite) in the background,
#   2. meanwhile the native build with the CUDA backend (tools/gpu/build-cuda.sh: addon + cuda_kernel_tests;
#      the kernel checks are not run here, issue6.sh does that),
#   3. moe validate --best --gpu-memory 12GiB --batch 1,16 --prompt 128 on ESFT routing replayed
#      (summary, translation, intent, in that order, as the issue-6 grid): the simulator's sweep, then the
#      top 3 runnable configurations and the baselines (naive on-demand, fetch-only lru) on the GPU.
# About 5-6 minutes on an H200 (synthetic checkpoint ~2 min, overlapped with the build; sweep ~1 min; GPU runs
# ~2-3 min). Env: MOE_VALIDATE_TIMEOUT (s, default 400) bounds step 3 (SIGINT at the limit: validate stops after
# the current run and writes what it measured, marked PARTIAL); MOE_VALIDATE_ARGS replaces the
# options after --model (default below).
# Results: $OUT/validation/ (validation.json, validation.md, predicted-vs-measured.vl.json/.svg; the PNG is
# rendered here afterwards), $OUT/validate.log, $OUT/logs.tgz.
#   bash tools/gpu/validate.sh
set -uo pipefail
source tools/gpu/lib.sh
gpu_init validate
finish() {
  cp "$LOG/validate.log" "$REAL_OUT/" 2>/dev/null
  tar czf "$REAL_OUT/logs.tgz" -C "$LOG" . 2>/dev/null
  [ -f "$REAL_OUT/validation/validation.md" ] && cat "$REAL_OUT/validation/validation.md"
  stamp "done"
}
trap finish EXIT

gpu_node

start_synth 170

build_native

wait_synth

R=${MOE_ROUTING:-.gpu/traces/summary.arrow,.gpu/traces/translation.arrow,.gpu/traces/intent.arrow}  # MOE_ROUTING: other trace v1 files, e.g. routing not seen
ARGS=${MOE_VALIDATE_ARGS:---trace $R --gpu-memory 12GiB --batch 1,16 --prompt 128}
# MOE_VALIDATE_CALIBRATE=1: calibrate on this machine in this call first (GPU and CPU kernels, copies, every
# dtype of MOE_VALIDATE_DTYPES), with the `host` section (host work per layer and step, which calibrate does
# not measure) taken from MOE_VALIDATE_HOST_FROM, and validate with that profile (--calibration is added
# to the arguments here).
# Why: the same configuration runs 10-16% apart between calls on this machine kind (int4, 64 slots, batch 1:
# 5.29 ms/token in one call, 5.51-5.95 in others), more than the 10% validate checks, so a profile measured
# in another call cannot carry over.
if [ "${MOE_VALIDATE_CALIBRATE:-0}" = 1 ]; then
  stamp "calibrate (this call) --expert-dtype ${MOE_VALIDATE_DTYPES:-bf16,int8,int4}"
  OUT=$LOG MOE_SKIP_NATIVE=1 MOE_NATIVE_ADDON=$addon timeout 200 bash tools/gpu/on-device.sh \
    "moe calibrate --device cuda --expert-dtype ${MOE_VALIDATE_DTYPES:-bf16,int8,int4} --out $LOG/calibration-raw.json --force" > "$LOG/calibrate.log" 2>&1
  echo "calibrate exit $?" | tee -a "$LOG/steps.log"
  HOST_FROM=${MOE_VALIDATE_HOST_FROM:-sim/calibration/h200-offload-2026-12-03-host3.json}
  python3 - "$LOG/calibration-raw.json" "$HOST_FROM" "$REAL_OUT/calibration.json" <<'PY' || { stamp "calibration merge failed"; exit 1; }
import json, sys
raw, base, out = sys.argv[1:4]
p = json.load(open(raw)); b = json.load(open(base))
p["host"] = b["host"]
p.setdefault("sources", {})["host"] = f"from {base}: " + b.get("sources", {}).get("host", "")
p["name"] = p.get("name", "calibration") + "-samecall"
p["label"] = p.get("label", "") + f"; host section from {base}"
json.dump(p, open(out + ".partial", "w"), indent=1)
import os; os.replace(out + ".partial", out)
PY
  ARGS="$ARGS --calibration $REAL_OUT/calibration.json"
fi
stamp "validate --best $ARGS"
OUT=$LOG MOE_SKIP_NATIVE=1 MOE_NATIVE_ADDON=$addon timeout -s INT -k 60 "${MOE_VALIDATE_TIMEOUT:-400}" bash tools/gpu/on-device.sh \
  "moe validate --best --model /tmp/lite $ARGS --out $REAL_OUT/validation" > "$LOG/validate.log" 2>&1
echo "validate exit $?" | tee -a "$LOG/steps.log"
grep -v "^|" "$LOG/validate.log" | tail -15
