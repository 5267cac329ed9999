# Shared preamble of the tools/gpu/*.sh device scripts (sourced, not run): the output and log folders, the
# timestamped step log, the GPU's name, the bundled Node, the full-size synthetic checkpoint in the
# background, the CUDA build and `moe` through on-device.sh. Each script keeps its own `finish` (what it
# copies to $OUT) and its steps.
#   source tools/gpu/lib.sh; gpu_init NAME [log subfolders...]
# sets REAL_OUT ($OUT or /tmp/out), LOG (/tmp/NAME-logs, emptied), and defines stamp.

gpu_init() {  # name, log subfolders...
  GPU_NAME=$1; shift
  REAL_OUT=${OUT:-/tmp/out}
  LOG=/tmp/$GPU_NAME-logs
  rm -rf "$LOG"
  mkdir -p "$REAL_OUT" "$LOG"
  for d in "$@"; do mkdir -p "$LOG/$d"; done
  GPU_START=$(date +%s)
}

stamp() { echo "[$GPU_NAME $(( $(date +%s) - GPU_START )) s] $*" | tee -a "$LOG/steps.log"; }

# The GPU's name and memory (printed and kept), and the bundle's Node unpacked for on-device.sh.
gpu_node() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$LOG/gpu.txt" 2>&1
  cat "$LOG/gpu.txt"
  export MOE_NODE=/tmp/moe-node
  xz -dc .gpu/node.xz > "$MOE_NODE" && chmod +x "$MOE_NODE"
}

# synth-model lite into /tmp/lite in the background (kept between calls on a warm machine); sets synth_pid.
start_synth() {  # timeout (s)
  stamp "synth-model lite (background)"
  if [ ! -f /tmp/lite/config.json ]; then
    ( OUT=$LOG MOE_SKIP_NATIVE=1 timeout "${1:-150}" bash tools/gpu/on-device.sh \
        'moe synth-model --geometry lite --seed 1 --out /tmp/lite' > "$LOG/synth.log" 2>&1; echo $? > "$LOG/synth.rc" ) &
    synth_pid=$!
  else
    echo 0 > "$LOG/synth.rc"; synth_pid=
  fi
}

# The CUDA build (addon + cuda_kernel_tests, plus the targets given); sets build and addon; exits on failure.
build_native() {  # extra CMake targets (space-separated, may be empty)
  stamp "native build (CUDA backend: addon, cuda_kernel_tests${1:+, $1})"
  build=/tmp/native-build
  MOE_EXTRA_TARGETS="${1:-}" bash tools/gpu/build-cuda.sh $build "$LOG/build.log" || { stamp "build FAILED"; exit 1; }
  addon=$(find $build -name '*.node' | head -1)
  stamp "build done: $addon"
}

# Waits for start_synth; exits when it failed.
wait_synth() {
  [ -n "${synth_pid:-}" ] && wait $synth_pid
  stamp "synth exit $(cat "$LOG/synth.rc" 2>/dev/null): $(tail -1 "$LOG/synth.log" 2>/dev/null)"
  [ "$(cat "$LOG/synth.rc" 2>/dev/null)" = 0 ] || exit 1
}

# A native test executable of the build: its log in $LOG and $OUT, the exit code in the step log.
run_test() {  # executable name, timeout (s)
  timeout "$2" $build/$1 > "$LOG/$1.log" 2>&1
  echo "$1 exit $?" | tee -a "$LOG/steps.log"
  grep -E "FAIL|passed|failed" "$LOG/$1.log" | tail -6
  cp "$LOG/$1.log" "$REAL_OUT/" 2>/dev/null
}

# A `moe` command through on-device.sh with the build's addon; log in $LOG/<label>.log, its tail printed.
run_moe() {  # label, timeout (s), command
  OUT=$LOG MOE_SKIP_NATIVE=1 MOE_NATIVE_ADDON=$addon PYTHONUNBUFFERED=1 timeout "$2" bash tools/gpu/on-device.sh "$3" > "$LOG/$1.log" 2>&1
  echo "$1 exit $?" | tee -a "$LOG/steps.log"
  grep -v "^|" "$LOG/$1.log" | tail -"${MOE_TAIL:-14}"
}

# What issue6/12/13.sh bring back on exit: logs.tgz, the check's and the bench's JSON and markdown (printed).
finish_check_and_bench() {
  tar czf "$REAL_OUT/logs.tgz" -C "$LOG" . 2>/dev/null
  cp "$LOG/check/bench.json" "$REAL_OUT/check.json" 2>/dev/null
  cp "$LOG/check/bench.md" "$REAL_OUT/check.md" 2>/dev/null
  cp "$LOG/bench/bench.json" "$LOG/bench/bench.md" "$REAL_OUT/" 2>/dev/null
  [ -f "$LOG/check/bench.md" ] && cat "$LOG/check/bench.md"
  [ -f "$LOG/bench/bench.md" ] && cat "$LOG/bench/bench.md"
  stamp "done"
}
