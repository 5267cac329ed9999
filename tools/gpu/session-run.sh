#!/usr/bin/env bash
# One device call of this session's checks (kept small: each step bounded, logs to $OUT). Steps by name:
#   bash tools/gpu/session-run.sh STEP...   (steps: build kernels hosttests check bench-own bench-replay bench-q bench-resident resident-ab resident-policy-ab check-miss quant-check
#   calibrate-q qfile-cold cpuprobe cpubench cpuorder int4fit predgpu qfile sharegpt pack; pack last: one results.tgz, since at most 8 files come back)
set -uo pipefail
OUTD=${OUT:-/tmp/out}
LOG=$OUTD/logs
mkdir -p "$LOG"
start=$(date +%s)
stamp() { echo "[run $(( $(date +%s) - start )) s] $*" | tee -a "$LOG/steps.log"; }
export MOE_NODE=/tmp/moe-node
[ -x $MOE_NODE ] || { xz -dc .gpu/node.xz > "$MOE_NODE" && chmod +x "$MOE_NODE"; }
build=/tmp/native-build
# The replayed routing: the three ESFT tasks, or MOE_ROUTING (comma-separated trace v1 files, e.g. an ESFT task the
# project has not seen, which bundle.mjs imports when its folder is in ../shared/traces/esft: .gpu/traces/<task>.arrow)
R=${MOE_ROUTING:-.gpu/traces/summary.arrow,.gpu/traces/translation.arrow,.gpu/traces/intent.arrow}
synth_bg() {
  if [ ! -f /tmp/lite/config.json ]; then
    ( OUT=$LOG MOE_SKIP_NATIVE=1 timeout 150 bash tools/gpu/on-device.sh 'moe synth-model --geometry lite --seed 1 --out /tmp/lite' > "$LOG/synth.log" 2>&1; echo $? > /tmp/synth.rc ) &
  else echo 0 > /tmp/synth.rc; fi
}
wait_synth() { while [ ! -f /tmp/synth.rc ]; do sleep 1; done; stamp "synth rc $(cat /tmp/synth.rc)"; }
run_moe() {  # label timeout command
  OUT=$LOG MOE_SKIP_NATIVE=1 MOE_NATIVE_ADDON=$(find $build -name '*.node' | head -1) PYTHONUNBUFFERED=1 timeout "$2" bash tools/gpu/on-device.sh "$3" > "$LOG/$1.log" 2>&1
  echo "$1 exit $?" | tee -a "$LOG/steps.log"
  grep -v "^|" "$LOG/$1.log" | tail -8
}
for step in "$@"; do
  stamp "step $step"
  case $step in
    build)
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$LOG/gpu.txt"
      rm -f /tmp/synth.rc; synth_bg
      MOE_EXTRA_TARGETS="moe_miss_tests moe_quant_tests moe_kernel_tests expert_cpu_bench" bash tools/gpu/build-cuda.sh $build "$LOG/build.log" || { stamp "build FAILED"; exit 1; } ;;
    kernels)
      timeout 300 $build/cuda_kernel_tests ${MOE_KERNEL_ARGS---bench} --json "$OUTD/cuda_kernels.json" > "$LOG/cuda_kernels.log" 2>&1
      echo "cuda_kernel_tests exit $?" | tee -a "$LOG/steps.log"; grep -E "FAIL|passed|failed" "$LOG/cuda_kernels.log" | tail -6 ;;
    hosttests)
      for t in moe_kernel_tests moe_quant_tests moe_miss_tests; do timeout 120 $build/$t > "$LOG/$t.log" 2>&1; echo "$t exit $?" | tee -a "$LOG/steps.log"; tail -2 "$LOG/$t.log"; done ;;
    check)
      wait_synth
      run_moe check 240 "moe bench --model /tmp/lite --device cuda --check-offload --check-offload-caches ${MOE_CHECK_CACHES:-16,64} --check-offload-policies lru --check-offload-tokens 8 --check-offload-prefetch none,next-gate ${MOE_CHECK_ARGS:-} --out $OUTD/check" ;;
    bench-own)
      wait_synth
      run_moe bench-own "${MOE_T:-280}" "moe bench --model /tmp/lite --device cuda --gpu-memory 12GiB ${MOE_OWN_ARGS:---cache 19 --policy lru --miss fetch,hybrid --prefetch none,next-gate --batch 1,16 --prompt 128 --new-tokens 32 --repeats 1 --warmup 1} --out $OUTD/bench-own" ;;
    bench-replay)
      wait_synth
      run_moe ${MOE_REPLAY_NAME:-bench-replay} "${MOE_T:-500}" "moe bench --model /tmp/lite --device cuda --gpu-memory 12GiB --routing $R ${MOE_REPLAY_ARGS:---cache 19 --policy lru --miss fetch,cpu,hybrid --prefetch none,oracle --batch 1,16 --prompt 128 --new-tokens 32 --repeats 1 --warmup 1} --out $OUTD/${MOE_REPLAY_NAME:-bench-replay}" ;;
    bench-resident)
      # every expert in a slot (cache 64, a budget that holds them), resident steps off: the host work the
      # simulator's profile `host` takes (runtime/src/calibrate/host-from-bench.ts); greedy tokens sampled on
      # the GPU and, side by side, on the host (MOE_SAMPLE_ON: which)
      wait_synth
      for so in ${MOE_SAMPLE_ON:-device host}; do
        run_moe bench-resident-$so "${MOE_T:-200}" "moe bench --model /tmp/lite --device cuda --gpu-memory 60GiB --routing $R --cache 64 --policy lru --miss fetch --resident-steps off --sample-on $so --batch ${MOE_RESIDENT_BATCH:-1,4,8,16} --prompt 128 --new-tokens 16 --repeats 1 --warmup 1 --out $OUTD/bench-resident-$so"
      done ;;
    resident-ab)
      # resident steps on against off, side by side in one call: int4 with every expert in a slot at 12 GiB
      # (static: all 64 pinned), misses fetched, batch 1 and 16 (cuda_resident_step.cpp)
      wait_synth
      for rs in on off; do
        run_moe resident-$rs "${MOE_T:-200}" "moe bench --model /tmp/lite --device cuda --gpu-memory 12GiB --routing $R --calibration ${MOE_AB_CAL:-sim/calibration/h200-offload-2026-12-03-host3.json} --expert-dtype int4 --cache fit --policy static --miss fetch --batch 1,16 --prompt 128 --new-tokens 32 --repeats 2 --warmup 1 --resident-steps $rs --out $OUTD/resident-$rs"
      done ;;
    resident-policy-ab)
      # the resident-step B16 discrepancy (bench static 15.6 ms/token against validate fifo 14.0, two calls):
      # static and fifo at cache 64 (int4, 12 GiB, resident steps on) side by side, two rounds in one call
      wait_synth
      for round in 1 2; do
        run_moe resident-policy-$round "${MOE_T:-200}" "moe bench --model /tmp/lite --device cuda --gpu-memory 12GiB --routing $R --calibration ${MOE_AB_CAL:-sim/calibration/h200-offload-2026-12-04-resident.json} --expert-dtype int4 --cache 64 --policy static,fifo --miss fetch --batch 1,16 --prompt 128 --new-tokens 32 --repeats 2 --warmup 1 --out $OUTD/resident-policy-$round"
      done ;;
    cpuprobe)
      # the host's CPU speed varies between machines by up to 2.5x (reports/bench/host-noise-h200-2026-12-04/):
      # one bf16 expert, 1 token, 16 threads, cold; prints the median and writes cpu-probe.json. With
      # MOE_CPU_PROBE_MAX_MS set, a slower host stops the remaining steps (exit 3): its cpu/hybrid figures
      # would not be comparable with the simulator's CPU curves.
      probe_json="$OUTD/${MOE_PROBE_NAME:-cpu-probe}.json"
      timeout 60 $build/expert_cpu_bench --json "$probe_json" --max-threads 16 --dtype bf16 --kernels avx512bf16 --min-seconds 0.3 > "$LOG/${MOE_PROBE_NAME:-cpu-probe}.log" 2>&1
      probe=$(python3 -c "import json;d=json.load(open('$probe_json'));print([x for x in d['results'] if x['mode']=='cold' and x['tokens']==1 and x['threads']==16][0]['median_ms'])")
      stamp "cpu probe: $probe ms per bf16 expert (1 token, 16 threads, cold)"
      if [ -n "${MOE_CPU_PROBE_MAX_MS:-}" ] && ! python3 -c "import sys; sys.exit(0 if $probe <= ${MOE_CPU_PROBE_MAX_MS} else 1)"; then
        stamp "cpu probe above ${MOE_CPU_PROBE_MAX_MS} ms: stopping"; exit 3
      fi ;;
    cpubench)
      timeout 240 $build/expert_cpu_bench --json "$OUTD/expert-cpu-quant.json" --max-threads 16 --dtype bf16,int8,int4 --kernels avx512bf16,avx512 > "$LOG/cpubench.log" 2>&1
      echo "cpubench exit $?" | tee -a "$LOG/steps.log"; tail -20 "$LOG/cpubench.log" ;;
    cpuorder)
      # the CPU expert kernel that rounds as the GPU's decode kernel (gpu-order) beside the dpbf16 one, bf16
      timeout 240 $build/expert_cpu_bench --json "$OUTD/expert-cpu-gpu-order.json" --max-threads 16 --dtype bf16 --kernels gpu-order,avx512bf16 --min-seconds 0.2 > "$LOG/cpuorder.log" 2>&1
      echo "cpuorder exit $?" | tee -a "$LOG/steps.log"; tail -14 "$LOG/cpuorder.log" ;;
    int4fit)
      # the int4 quantizer: round-to-nearest against the window search on the device's host (the load's cost
      # there), then quant-check re-measures the logits with the search (reports/bench/int4-fit-cpu-2026-12-05/)
      timeout 120 cmake --build $build --target int4_fit_bench > "$LOG/int4fit-build.log" 2>&1 || { stamp "int4_fit_bench build FAILED"; tail -20 "$LOG/int4fit-build.log"; continue; }
      timeout 120 $build/int4_fit_bench --experts 16 --rows 16 --group 64 --json "$OUTD/int4-fit-g64.json" > "$LOG/int4fit.log" 2>&1
      echo "int4fit exit $?" | tee -a "$LOG/steps.log"; tail -5 "$LOG/int4fit.log" ;;
    predgpu)
      # the expert predictor's MLP on the GPU (a round trip) against the CPU port, checked then timed
      timeout 120 cmake --build $build --target predictor_gpu_bench > "$LOG/predgpu-build.log" 2>&1 || { stamp "predictor_gpu_bench build FAILED"; tail -20 "$LOG/predgpu-build.log"; continue; }
      timeout 200 $build/predictor_gpu_bench --out "$OUTD/predictor-gpu.json" > "$LOG/predgpu.log" 2>&1
      echo "predgpu exit $?" | tee -a "$LOG/steps.log"; tail -24 "$LOG/predgpu.log" ;;
    check-miss)
      # issue 12's numerics: logits of each CPU miss mode (both fills) against all-resident; MOE_CHECK_MISS_ARGS
      # (e.g. --cpu-rounding gpu-order: tokens must then be identical), MOE_CHECK_MISS_NAME (output folder)
      wait_synth
      run_moe check-miss "${MOE_T:-300}" "moe bench --model /tmp/lite --device cuda --check-miss cpu,hybrid ${MOE_CHECK_MISS_ARGS:-} --out $OUTD/${MOE_CHECK_MISS_NAME:-check-miss}" ;;
    qfile)
      # the quantized experts file (runtime/src/offload/quantized-file.ts): int4 quantized and written (1), then read
      # back (2), greedy tokens of both loads and of a load without the file compared; load times in the logs
      wait_synth
      rm -f /tmp/lite/moe-offload-experts-*.safetensors*
      for round in 1 2 off; do
        qf=auto; [ "$round" = off ] && qf=off
        run_moe qfile-$round 240 "moe generate --model /tmp/lite --device cuda --gpu-memory 12GiB --expert-dtype int4 --quantized-file $qf --prompt-ids 1,2,3,4,5,6,7,8 --max-new-tokens 24 --json > $LOG/qfile-$round.json"
      done
      ls -la /tmp/lite/ | tee "$LOG/qfile-ls.txt"
      grep -h "pinned host memory\|warning" "$LOG"/qfile-*.log
      python3 -c "import json,sys; t=[json.load(open('$LOG/qfile-%s.json' % r))['tokens'] for r in ('1','2','off')]; print('qfile tokens identical:', t[0]==t[1]==t[2])" ;;
    qfile-cold)
      # the quantized experts file read from the disk, not the page cache: written by one load, then fsync'd and
      # its pages dropped (posix_fadvise DONTNEED needs no root) before the second load reads it
      wait_synth
      rm -f /tmp/lite/moe-offload-experts-*.safetensors*
      run_moe qfile-cold-write 240 "moe generate --model /tmp/lite --device cuda --gpu-memory 12GiB --expert-dtype int4 --quantized-file auto --prompt-ids 1,2,3,4,5,6,7,8 --max-new-tokens 8 --json > $LOG/qfile-cold-write.json"
      f=$(ls /tmp/lite/moe-offload-experts-int4*.safetensors)
      python3 -c "import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED); os.close(fd)" "$f"
      grep -E "^(Cached|MemFree)" /proc/meminfo | tee "$LOG/qfile-cold-meminfo.txt"
      df -h /tmp | tee -a "$LOG/qfile-cold-meminfo.txt"
      run_moe qfile-cold-read 240 "moe generate --model /tmp/lite --device cuda --gpu-memory 12GiB --expert-dtype int4 --quantized-file auto --prompt-ids 1,2,3,4,5,6,7,8 --max-new-tokens 8 --json > $LOG/qfile-cold-read.json"
      grep -h "pinned host memory\|warning" "$LOG"/qfile-cold-*.log ;;
    quant-check)
      wait_synth
      run_moe quant-check 240 "moe bench --model /tmp/lite --device cuda --check-quant int8,int4 --out $OUTD/quant-check" ;;
    calibrate-q)
      # calibrate's CPU figures choose the runtime's worker shape: timed only once the synthetic checkpoint is
      # written and its dirty pages synced, so no writer shares the CPU. (07b's calibrate, after a check-miss bench,
      # put a bf16 expert at 0.84 ms on 2x8 threads where its runtime took 0.44, cause not identified; 07c's, right
      # after the build and the probe, 0.485: reports/bench/h100-2026-12-07c/README.md)
      wait_synth; timeout 120 sync; stamp "synced"
      run_moe calibrate-q 260 "moe calibrate --device cuda --expert-dtype bf16,int8,int4 --out $OUTD/calibration-quant.json --force" ;;
    bench-q)
      wait_synth
      cal=; [ -f "$OUTD/calibration-quant.json" ] && cal="--calibration $OUTD/calibration-quant.json"
      run_moe bench-q "${MOE_T:-400}" "moe bench --model /tmp/lite --device cuda --gpu-memory 12GiB --routing $R $cal ${MOE_Q_ARGS} --out $OUTD/${MOE_Q_NAME:-bench-q}" ;;
    sharegpt)
      wait_synth
      # 64 sequences gave a 264,576-row trace too large to come back: 16 sequences, xz-compressed.
      run_moe sharegpt 120 "moe record-trace --dataset .gpu/sharegpt-head.json --model /tmp/lite --device cuda --batch 8 --prompt-len 128 --gen 32 --sequences 16 --out /tmp/sharegpt-h200.arrow --force"
      xz -T0 -9 -c /tmp/sharegpt-h200.arrow > "$OUTD/sharegpt-h200.arrow.xz" && ls -la "$OUTD/sharegpt-h200.arrow.xz" ;;
    pack)
      # At most 8 files come back from $OUT: everything so far (benches, logs, calibration) in one tarball.
      stamp "packing \$OUT into results.tgz"
      tar czf /tmp/results.tgz -C "$OUTD" . && rm -rf "${OUTD:?}"/* && mv /tmp/results.tgz "$OUTD/" && ls -la "$OUTD" ;;
    *) stamp "unknown step $step" ;;
  esac
done
stamp done
