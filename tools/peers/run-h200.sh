#!/usr/bin/env bash
# Issue 17 on the GPU machine in one command: llama.cpp (CUDA) beside moe-offload on the same synthetic
# DeepSeek-V2-Lite checkpoint under the same 12 GiB GPU budget. Carry [".gpu", ".peers"] (.peers from
# tools/peers/fetch-llama.sh; .gpu from tools/gpu/bundle.mjs, for Node and `moe synth-model`/`moe peer-agreement`).
#
# Steps (each skipped when its output is already there, so a second call on the still-warm machine
# resumes where a cut first call stopped; state in $PEERS_WORK, default /tmp/peers):
#   1. `moe synth-model --geometry lite --seed 1` in the background, beside the llama.cpp CUDA build
#      (tools/peers/build-llama.sh, -DGGML_CUDA=ON, arch 90) and, unless PEERS_ORACLE=0, our addon (build-cuda.sh)
#   2. hf_to_gguf.py -> lite-bf16.gguf; the second oracle: peers_dump_logits (every layer on the GPU) on
#      PEERS_ORACLE_SEQS x PEERS_ORACLE_LEN random ids, prefill and decode paths, then `moe peer-agreement
#      --device cuda` on the same ids; then the safetensors are deleted (disk: 31 GB + 31 GB of 64 GiB)
#   3. llama-quantize -> Q8_0 and Q4_K_M
#   4. per dtype: --n-cpu-moe N, the smallest N whose peak GPU memory (nvidia-smi, polled every 100 ms,
#      whole device minus the idle baseline: CUDA context included) stays <= PEERS_BUDGET_GIB, found by
#      trying from an estimate; and --cpu-moe (N = all layers). Each: llama-bench -p 128,512 -n 128 and
#      llama-batched-bench -npp 128 -ntg PEERS_BATCH_NEW -npl 4,8,16.
# $OUT: peers.json (every row, command line, peak memory, llama.cpp commit), logs/, peer-agreement/.
# Env: PEERS_BUDGET_GIB (12), PEERS_THREADS (16), PEERS_REPS (2), PEERS_TG (128), PEERS_BATCH_NEW (32),
#      PEERS_DTYPES ("bf16 q8_0 q4_k_m"), PEERS_ORACLE (1), PEERS_ORACLE_SEQS (4), PEERS_ORACLE_LEN (128).
set -uo pipefail
root=$(pwd)
OUT=${OUT:-/tmp/out}
W=${PEERS_WORK:-/tmp/peers}
LOG=$OUT/logs
mkdir -p "$OUT" "$LOG" "$W"
BUDGET_GIB=${PEERS_BUDGET_GIB:-12}
THREADS=${PEERS_THREADS:-16}
REPS=${PEERS_REPS:-2}
TG=${PEERS_TG:-128}
BNEW=${PEERS_BATCH_NEW:-32}
DTYPES=${PEERS_DTYPES:-bf16 q8_0 q4_k_m}
ORACLE=${PEERS_ORACLE:-1}
T0=$(date +%s)
stamp() { echo "[peers +$(( $(date +%s) - T0 ))s] $*" >&2; }
die() { echo "run-h200: $*" >&2; exit 1; }
[ -f .peers/llama.cpp.tar.xz ] || die ".peers/llama.cpp.tar.xz missing: run bash tools/peers/fetch-llama.sh here and carry .peers"
[ -f .gpu/moe-offload.mjs ] || die ".gpu missing: run node tools/gpu/bundle.mjs here and carry .gpu"
cp .peers/llama.cpp.json "$OUT/llama.cpp.json"
export PATH="/usr/local/cuda/bin:$PATH"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
lscpu > "$LOG/lscpu.txt" 2>&1
BLD=$W/build
BIN=$BLD/cmake/bin
export PYTHONPATH=$BLD/src/llama.cpp/gguf-py${PYTHONPATH:+:$PYTHONPATH}
cmds=$OUT/commands.jsonl
run_logged() {  # name cmd...: runs, logs, records the command line
  local name=$1; shift
  python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "argv": sys.argv[2:]}))' "$name" "$@" >> "$cmds"
  "$@" > "$LOG/$name.log" 2>&1
}

# 1. checkpoint (background) + builds
if [ ! -f /tmp/lite/config.json ] && [ ! -f "$W/lite-bf16.gguf" ]; then
  stamp "synth-model lite (background)"
  ( MOE_SKIP_NATIVE=1 bash tools/gpu/on-device.sh 'moe synth-model --geometry lite --seed 1 --out /tmp/lite --quiet' > "$LOG/synth.log" 2>&1; echo $? > "$W/synth.rc" ) &
  synth_pid=$!
fi
if [ ! -x "$BIN/llama-bench" ] || [ ! -x "$BIN/peers_dump_logits" ]; then
  stamp "build llama.cpp (CUDA)"
  ( LLAMA_JOBS=16 bash tools/peers/build-llama.sh "$BLD" -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$LOG/llama-build.log" 2>&1; echo $? > "$W/llama-build.rc" ) &
  llama_pid=$!
fi
if [ "$ORACLE" = 1 ] && [ ! -f /tmp/native-cuda/.built ]; then
  stamp "build moe-offload addon (CUDA)"
  bash tools/gpu/build-cuda.sh /tmp/native-cuda "$LOG/native-build.log" && touch /tmp/native-cuda/.built || stamp "addon build failed; no second oracle"
fi
[ -n "${llama_pid:-}" ] && { wait "$llama_pid"; [ "$(cat "$W/llama-build.rc")" = 0 ] || { tail -30 "$LOG/llama-build.log"; die "llama.cpp build failed"; }; }
stamp "llama.cpp built"
[ -n "${synth_pid:-}" ] && { wait "$synth_pid"; [ "$(cat "$W/synth.rc")" = 0 ] || { tail -20 "$LOG/synth.log"; die "synth-model failed"; }; }

# 2. bf16 GGUF + second oracle
if [ ! -f "$W/lite-bf16.gguf" ]; then
  stamp "hf_to_gguf -> bf16"
  run_logged convert-bf16 python3 tools/peers/hf_to_gguf.py --model /tmp/lite --out "$W/lite-bf16.gguf" --force || { tail "$LOG/convert-bf16.log"; die "conversion failed"; }
fi
if [ "$ORACLE" = 1 ] && [ -f /tmp/lite/config.json ] && [ ! -f "$OUT/peer-agreement/peer-agreement.json" ]; then
  stamp "second oracle"
  L=${PEERS_ORACLE_LEN:-128}
  python3 tools/peers/make_ids.py --model /tmp/lite --sequences "${PEERS_ORACLE_SEQS:-4}" --length "$L" --seed 1 --out "$W/oracle.ids"
  cp "$W/oracle.ids" "$OUT/oracle.ids"
  run_logged oracle-llama-prefill "$BIN/peers_dump_logits" --model "$W/lite-bf16.gguf" --ids "$W/oracle.ids" --out "$W/oracle.prefill.f32" --n-gpu-layers 999
  run_logged oracle-llama-decode "$BIN/peers_dump_logits" --model "$W/lite-bf16.gguf" --ids "$W/oracle.ids" --out "$W/oracle.decode.f32" --n-gpu-layers 999 --prefill $((L / 2))
  if [ -f /tmp/native-cuda/.built ]; then
    addon=$(find /tmp/native-cuda -name '*.node' | head -1)
    MOE_SKIP_NATIVE=1 MOE_NATIVE_ADDON=$addon bash tools/gpu/on-device.sh "moe peer-agreement --model /tmp/lite --ids $W/oracle.ids --reference $W/oracle.prefill.f32 --reference-decode $W/oracle.decode.f32 --prefill $((L / 2)) --device cuda --label 'llama.cpp $(cut -c1-7 < "$BLD/src/llama.cpp/LLAMA_COMMIT") bf16 GGUF (CUDA, all layers on the GPU)' --out $OUT/peer-agreement" > "$LOG/peer-agreement.log" 2>&1
    echo "peer-agreement exit $?" >> "$LOG/peer-agreement.log"
  fi
fi
if [ -f "$W/lite-bf16.gguf" ] && [ -d /tmp/lite ]; then stamp "deleting the safetensors (disk)"; rm -rf /tmp/lite; fi

# 3. quantize
for q in q8_0 q4_k_m; do
  case " $DTYPES " in *" $q "*) ;; *) continue ;; esac
  [ -f "$W/lite-$q.gguf" ] && continue
  stamp "llama-quantize $q"
  Q=$(echo "$q" | tr a-z A-Z)
  run_logged "quantize-$q" "$BIN/llama-quantize" "$W/lite-bf16.gguf" "$W/lite-$q.gguf.partial" "$Q" "$THREADS" && mv "$W/lite-$q.gguf.partial" "$W/lite-$q.gguf" || die "llama-quantize $q failed ($LOG/quantize-$q.log)"
done

# 4. benches
python3 tools/peers/peers_bench.py --bin "$BIN" --work "$W" --out "$OUT" --dtypes "$DTYPES" --budget-gib "$BUDGET_GIB" \
  --threads "$THREADS" --reps "$REPS" --tg "$TG" --batch-new "$BNEW" --commands "$cmds"
rc=$?
stamp "done (exit $rc)"
tar -C "$OUT" -czf "$OUT/logs.tgz" logs 2>/dev/null && rm -rf "$LOG"
exit $rc
