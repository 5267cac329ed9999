#!/usr/bin/env bash
# Issue 17 on the GPU machine in one command: llama.cpp (CUDA) beside moe-offload on the same synthetic
# DeepSeek-V2-Lite checkpoint under the same 12 GiB GPU budget. Carry [".gpu", ".peers"] (.peers from
# tools/peers/fetch-llama.sh; .gpu from tools/gpu/bundle.mjs, for Node and `moe synth-model`/`moe peer-agreement`).
#
# More than one 10-minute call: every step keeps its output in $PEERS_WORK (default /tmp/peers) and is
# skipped when present, so the same command, called again while the machine is warm, resumes (nothing
# built, converted, quantized or measured twice). It stops itself before PEERS_DEADLINE_S (default 520 s:
# the first call was cut by a 560 s limit) rather than be killed mid-step; exit 3 = call again.
#   1. `moe synth-model --geometry lite --seed 1` in the background, beside the llama.cpp CUDA build
#      (tools/peers/build-llama.sh, -DGGML_CUDA=ON, arch 90) and, unless PEERS_ORACLE=0, our addon (build-cuda.sh)
#   2. hf_to_gguf.py -> lite-bf16.gguf (while llama.cpp builds: nothing is measured then); the second oracle:
#      peers_dump_logits (every layer on the GPU) on PEERS_ORACLE_SEQS x PEERS_ORACLE_LEN random ids, prefill
#      and decode paths, then `moe peer-agreement --device cuda` on the same ids
#   2b. unless PEERS_OURS=0, moe-offload's rows on the same machine, alone on it (no build or conversion
#      beside them): `moe bench` at 12 GiB (bf16/int8/int4, --cache fit, fetch and hybrid) on the model's own
#      routing and on replayed ESFT routing, and all experts resident (60 GiB) as the ceiling; same prompt
#      lengths and new-token counts as llama.cpp's runs (below). Then the safetensors are deleted
#   3. per dtype in the order bf16, q8_0, q4_k_m: llama-quantize from the bf16 GGUF when needed, then
#      peers_bench.py: --cpu-moe and --n-cpu-moe N, the smallest N whose peak GPU memory (nvidia-smi,
#      polled every 100 ms, whole device minus the idle baseline: CUDA context included) stays <=
#      PEERS_BUDGET_GIB; each: llama-bench -p 128,512 -n PEERS_TG and llama-batched-bench -npp 128
#      -ntg PEERS_BATCH_NEW -npl 4,8,16. A GGUF is deleted as soon as its dtype is measured (bf16 once
#      no quantization still needs it).
# Disk (64 GiB): safetensors 31 GB + bf16 GGUF 31 GB at the conversion, then at most bf16 + Q8_0 (48 GB):
# the first call left bf16 + Q8_0 + Q4_K_M (58 GB) and the next call failed with "No space left on
# device". Every large write checks the free space first; df is printed at the start and the end.
# $OUT (the device returns at most 8 files; the first call's logs/ folder did not come back): peers.json,
# commands.jsonl, logs.tgz (every log, df, lscpu, oracle ids), llama.cpp.json, gpu.csv, peer-agreement.json,
# peer-agreement.md, ours.tgz (moe bench folders); all rewritten after every step, so a killed call still
# returns what it measured.
# Env: PEERS_BUDGET_GIB (12), PEERS_THREADS (16), PEERS_REPS (1), PEERS_TG (64), PEERS_BATCH_NEW (16)
#      (the first call's values), PEERS_DTYPES ("bf16 q8_0 q4_k_m"), PEERS_ORACLE (1), PEERS_ORACLE_SEQS (4),
#      PEERS_ORACLE_LEN (128), PEERS_OURS (1), PEERS_DEADLINE_S (520), PEERS_CLEAN=1: delete all of
#      $PEERS_WORK's models and exit.
set -uo pipefail
OUT=${OUT:-/tmp/out}
W=${PEERS_WORK:-/tmp/peers}
LOG=$W/logs   # outside $OUT: packed into $OUT/logs.tgz
mkdir -p "$OUT" "$LOG" "$W"
BUDGET_GIB=${PEERS_BUDGET_GIB:-12}
THREADS=${PEERS_THREADS:-16}
REPS=${PEERS_REPS:-1}
TG=${PEERS_TG:-64}
BNEW=${PEERS_BATCH_NEW:-16}
DTYPES=${PEERS_DTYPES:-bf16 q8_0 q4_k_m}
ORACLE=${PEERS_ORACLE:-1}
OURS=${PEERS_OURS:-1}
T0=$(date +%s)
DEADLINE=$(( T0 + ${PEERS_DEADLINE_S:-520} ))
LITE=/tmp/lite
stamp() { echo "[peers +$(( $(date +%s) - T0 ))s] $*" >&2; }
diskfree() { df -h / /tmp "$W" 2>/dev/null | awk '!seen[$0]++' >&2; df -h / /tmp "$W" >> "$LOG/df.txt" 2>&1; }
pack() {
  [ -f "$W/commands.jsonl" ] && cp "$W/commands.jsonl" "$OUT/commands.jsonl"
  tar -C "$W" -czf "$OUT/logs.tgz.partial" logs 2>/dev/null && mv "$OUT/logs.tgz.partial" "$OUT/logs.tgz"
}
finish() {  # every exit: no half-written model left, logs packed, the disk shown
  rm -f "$W"/*.partial
  stamp "exit; disk:"; diskfree; pack
}
trap finish EXIT
trap 'exit 143' TERM INT
die() { echo "run-h200: $*" >&2; exit 1; }
left() { echo $(( DEADLINE - $(date +%s) )); }
need_time() { [ "$(left)" -ge "$1" ] || { stamp "stopping: $2 needs about $1 s, $(left) s left before the deadline; call again to resume"; exit 3; }; }
need_disk() {  # GB path why
  local free; free=$(df -P -B1G "$2" | awk 'NR==2 {print $4}')
  [ "$free" -ge "$1" ] || { diskfree; die "$3 needs about $1 GB free on $2, $free GB are (delete $W/*.gguf or /tmp/lite, or PEERS_CLEAN=1)"; }
}
if [ "${PEERS_CLEAN:-0}" = 1 ]; then rm -rf "$LITE" "$W"/*.gguf "$W"/*.f32; stamp "cleaned"; exit 0; fi
[ -f .peers/llama.cpp.tar.xz ] || die ".peers/llama.cpp.tar.xz missing: run bash tools/peers/fetch-llama.sh here and carry .peers"
[ -f .gpu/moe-offload.mjs.xz ] || [ -f .gpu/moe-offload.mjs ] || die ".gpu missing: run node tools/gpu/bundle.mjs here and carry .gpu"
cp .peers/llama.cpp.json "$OUT/llama.cpp.json"
export PATH="/usr/local/cuda/bin:$PATH"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
lscpu > "$LOG/lscpu.txt" 2>&1
stamp "start; disk:"; diskfree
BLD=$W/build
BIN=$BLD/cmake/bin
export PYTHONPATH=$BLD/src/llama.cpp/gguf-py${PYTHONPATH:+:$PYTHONPATH}
cmds=$W/commands.jsonl   # kept across calls, copied to $OUT by pack
ONDEV_OUT=$W/ondev       # on-device.sh's own $OUT: its files must not land in ours
run_logged() {  # name cmd...: runs, logs, records the command line and its exit
  local name=$1 rc; shift
  python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "argv": sys.argv[2:]}))' "$name" "$@" >> "$cmds"
  "$@" > "$LOG/$name.log" 2>&1; rc=$?
  echo "{\"name\": \"$name\", \"exit\": $rc}" >> "$cmds"
  pack
  return $rc
}
gguf_done() { [ -f "$W/result-$1.json" ]; }   # peers_bench wrote the dtype's rows
wanted() { case " $DTYPES " in *" $1 "*) return 0 ;; esac; return 1; }

# 1. checkpoint (background) + builds; a checkpoint without synth.ok was cut half-written
bf16_needed() {  # the bf16 GGUF is still needed: bf16 unmeasured, or a quantization not yet made
  { wanted bf16 && ! gguf_done bf16; } && return 0
  local q; for q in q8_0 q4_k_m; do wanted "$q" && ! gguf_done "$q" && [ ! -f "$W/lite-$q.gguf" ] && return 0; done
  return 1
}
drop_bf16() { if ! bf16_needed && [ -f "$W/lite-bf16.gguf" ]; then stamp "deleting lite-bf16.gguf (disk)"; rm -f "$W/lite-bf16.gguf"; fi; }
need_ckpt=0
if [ ! -f "$W/lite-bf16.gguf" ] && bf16_needed; then need_ckpt=1; fi
if [ "$need_ckpt" = 1 ] && [ ! -f "$W/synth.ok" ]; then
  rm -rf "$LITE"
  need_disk 34 /tmp "synth-model lite (31 GB)"
  stamp "synth-model lite (background)"
  ( OUT=$ONDEV_OUT MOE_SKIP_NATIVE=1 bash tools/gpu/on-device.sh "moe synth-model --geometry lite --seed 1 --out $LITE --quiet" > "$LOG/synth.log" 2>&1 && touch "$W/synth.ok" ) &
  synth_pid=$!
fi
if [ ! -x "$BIN/llama-bench" ] || [ ! -x "$BIN/peers_dump_logits" ] || [ ! -x "$BIN/llama-quantize" ] || [ ! -x "$BIN/llama-batched-bench" ]; then
  stamp "build llama.cpp (CUDA; 250 s on the first call)"
  ( LLAMA_JOBS=16 bash tools/peers/build-llama.sh "$BLD" -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$LOG/llama-build.log" 2>&1; echo $? > "$W/llama-build.rc" ) &
  llama_pid=$!
fi
if { [ "$ORACLE" = 1 ] && [ ! -f "$W/oracle.done" ]; } || { [ "$OURS" = 1 ] && [ ! -f "$W/ours.done" ]; }; then [ -f /tmp/native-cuda/.built ] || {
  stamp "build moe-offload addon (CUDA)"
  bash tools/gpu/build-cuda.sh /tmp/native-cuda "$LOG/native-build.log" && touch /tmp/native-cuda/.built || stamp "addon build failed; no second oracle and no moe-offload rows"
}; fi
[ -n "${synth_pid:-}" ] && { wait "$synth_pid"; [ -f "$W/synth.ok" ] || { tail -20 "$LOG/synth.log"; die "synth-model failed"; }; }
pack

# 2. bf16 GGUF (written as .partial, renamed when whole) + second oracle
if [ "$need_ckpt" = 1 ] && [ ! -f "$W/lite-bf16.gguf" ]; then
  need_time 120 "hf_to_gguf (31 GB)"
  need_disk 33 "$W" "hf_to_gguf (31 GB)"
  stamp "hf_to_gguf -> bf16"
  run_logged convert-bf16 python3 tools/peers/hf_to_gguf.py --model "$LITE" --out "$W/lite-bf16.gguf.partial" --force || { tail "$LOG/convert-bf16.log"; die "conversion failed"; }
  mv "$W/lite-bf16.gguf.partial" "$W/lite-bf16.gguf"
fi
[ -n "${llama_pid:-}" ] && { wait "$llama_pid"; [ "$(cat "$W/llama-build.rc")" = 0 ] || { tail -30 "$LOG/llama-build.log"; die "llama.cpp build failed"; }; }
stamp "llama.cpp built"
if [ "$ORACLE" = 1 ] && [ -f "$W/synth.ok" ] && [ -f "$W/lite-bf16.gguf" ] && [ ! -f "$W/oracle.done" ]; then
  need_time 90 "the second oracle"
  stamp "second oracle"
  L=${PEERS_ORACLE_LEN:-128}
  python3 tools/peers/make_ids.py --model "$LITE" --sequences "${PEERS_ORACLE_SEQS:-4}" --length "$L" --seed 1 --out "$W/oracle.ids"
  cp "$W/oracle.ids" "$LOG/oracle.ids"
  run_logged oracle-llama-prefill "$BIN/peers_dump_logits" --model "$W/lite-bf16.gguf" --ids "$W/oracle.ids" --out "$W/oracle.prefill.f32" --n-gpu-layers 999
  run_logged oracle-llama-decode "$BIN/peers_dump_logits" --model "$W/lite-bf16.gguf" --ids "$W/oracle.ids" --out "$W/oracle.decode.f32" --n-gpu-layers 999 --prefill $((L / 2))
  if [ -f /tmp/native-cuda/.built ]; then
    addon=$(find /tmp/native-cuda -name '*.node' | head -1)
    label="llama.cpp $(cut -c1-7 < "$BLD/src/llama.cpp/LLAMA_COMMIT") bf16 GGUF (CUDA, all layers on the GPU)"
    echo "{\"name\": \"peer-agreement\", \"argv\": [\"moe peer-agreement --model $LITE --ids $W/oracle.ids --reference $W/oracle.prefill.f32 --reference-decode $W/oracle.decode.f32 --prefill $((L / 2)) --device cuda\"]}" >> "$cmds"
    OUT=$ONDEV_OUT MOE_SKIP_NATIVE=1 MOE_NATIVE_ADDON=$addon bash tools/gpu/on-device.sh "moe peer-agreement --model $LITE --ids $W/oracle.ids --reference $W/oracle.prefill.f32 --reference-decode $W/oracle.decode.f32 --prefill $((L / 2)) --device cuda --label '$label' --out $W/peer-agreement" > "$LOG/peer-agreement.log" 2>&1
    echo "peer-agreement exit $?" >> "$LOG/peer-agreement.log"
    cp "$W"/peer-agreement/peer-agreement.json "$W"/peer-agreement/peer-agreement.md "$OUT/" 2>/dev/null || stamp "peer-agreement wrote no result (see logs.tgz: logs/peer-agreement.log)"
  fi
  touch "$W/oracle.done"   # tried: a failure is in the log and would fail again; the safetensors can go
fi
# 2b. moe-offload's rows (needs the safetensors): each bench folder is written as .partial and renamed when
# whole, and skipped when present, so a cut call resumes with the next one.
R=.gpu/traces/summary.arrow,.gpu/traces/translation.arrow,.gpu/traces/intent.arrow
OURS_COMMON="--model $LITE --device cuda --policy lru --prefetch none --repeats $REPS --warmup 1 --calibration sim/calibration/h200-offload-2026-12-03-host3.json"
ours_bench() {  # name seconds args: one `moe bench` into $W/ours/<name>
  local name=$1 secs=$2 rc; shift 2
  [ -f "$W/ours/$name/bench.json" ] && return 0
  need_time "$secs" "moe bench $name"
  mkdir -p "$W/ours"; rm -rf "$W/ours/$name.partial"
  stamp "ours: $name"
  run_logged "ours-$name" env OUT="$ONDEV_OUT" MOE_SKIP_NATIVE=1 MOE_NATIVE_ADDON="$(find /tmp/native-cuda -name '*.node' | head -1)" PYTHONUNBUFFERED=1 \
    timeout "$secs" bash tools/gpu/on-device.sh "moe bench $OURS_COMMON $* --out $W/ours/$name.partial"; rc=$?
  [ "$rc" = 0 ] && [ -f "$W/ours/$name.partial/bench.json" ] && mv "$W/ours/$name.partial" "$W/ours/$name" || stamp "ours: $name failed (exit $rc; logs/ours-$name.log)"
  tar -C "$W" --exclude='*.partial' -czf "$OUT/ours.tgz.partial" ours && mv "$OUT/ours.tgz.partial" "$OUT/ours.tgz"
}
if [ "$OURS" = 1 ] && [ -f "$W/synth.ok" ] && [ -f /tmp/native-cuda/.built ] && [ ! -f "$W/ours.done" ]; then
  Q="--expert-dtype bf16,int8,int4"
  # b1: llama-bench decodes PEERS_TG tokens and prefills 128 and 512; batched: llama-batched-bench's 128 + PEERS_BATCH_NEW
  ours_bench own-b1 150 --gpu-memory ${BUDGET_GIB}GiB $Q --cache fit --miss fetch,hybrid --batch 1 --prompt 128,512 --new-tokens "$TG"
  ours_bench own-batched 200 --gpu-memory ${BUDGET_GIB}GiB $Q --cache fit --miss fetch,hybrid --batch 4,8,16 --prompt 128 --new-tokens "$BNEW"
  ours_bench esft 120 --gpu-memory ${BUDGET_GIB}GiB --routing $R $Q --cache fit --miss hybrid --batch 1,16 --prompt 128 --new-tokens "$BNEW"
  ours_bench resident-b1 100 --gpu-memory 60GiB $Q --cache 64 --miss fetch --batch 1 --prompt 128,512 --new-tokens "$TG"
  ours_bench resident-batched 120 --gpu-memory 60GiB $Q --cache 64 --miss fetch --batch 4,8,16 --prompt 128 --new-tokens "$BNEW"
  touch "$W/ours.done"   # tried: a failed bench is in its log (the table then shows "-")
fi
if [ -f "$W/lite-bf16.gguf" ] && [ -d "$LITE" ] && { [ "$ORACLE" != 1 ] || [ -f "$W/oracle.done" ]; } && { [ "$OURS" != 1 ] || [ -f "$W/ours.done" ]; }; then
  stamp "deleting the safetensors (disk)"; rm -rf "$LITE" "$W/synth.ok"
fi
rm -f "$W"/oracle.*.f32

# 3. per dtype: quantize when needed, measure, delete the GGUF
rc=0
bench_dtype() {
  python3 tools/peers/peers_bench.py --bin "$BIN" --work "$W" --out "$OUT" --dtypes "$DTYPES" --run "$1" --budget-gib "$BUDGET_GIB" \
    --threads "$THREADS" --reps "$REPS" --tg "$TG" --batch-new "$BNEW" --commands "$cmds" --logs "$LOG" --deadline "$DEADLINE"
}
for dt in bf16 q8_0 q4_k_m; do
  wanted "$dt" || continue
  m=$W/lite-$dt.gguf
  if ! gguf_done "$dt"; then
    if [ "$dt" != bf16 ] && [ ! -f "$m" ]; then
      [ -f "$W/lite-bf16.gguf" ] || die "$m needs $W/lite-bf16.gguf, which is gone (PEERS_CLEAN=1 and call again to start over)"
      need_time 100 "llama-quantize $dt"
      need_disk $([ "$dt" = q8_0 ] && echo 18 || echo 11) "$W" "llama-quantize $dt"
      stamp "llama-quantize $dt"
      Q=$(echo "$dt" | tr a-z A-Z)
      run_logged "quantize-$dt" "$BIN/llama-quantize" "$W/lite-bf16.gguf" "$m.partial" "$Q" "$THREADS" && mv "$m.partial" "$m" || die "llama-quantize $dt failed (logs/quantize-$dt.log)"
      drop_bf16
    fi
    stamp "bench $dt"
    bench_dtype "$dt"; r=$?
    [ "$r" = 3 ] && exit 3
    [ "$r" = 0 ] || rc=$r
  fi
  # delete what no later step needs: this dtype's GGUF once measured (bf16 once no quantization needs it)
  if gguf_done "$dt" && [ "$dt" != bf16 ]; then rm -f "$m"; fi
  drop_bf16
done
bench_dtype none > /dev/null 2>&1   # rewrites peers.json from every finished dtype
stamp "done (exit $rc)"
exit $rc
