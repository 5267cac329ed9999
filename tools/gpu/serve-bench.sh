#!/usr/bin/env bash
# Issue 16's device benchmark in one command (device tool: carry .gpu, made by `node tools/gpu/bundle.mjs`,
# which also packs the ESFT traces):
#   1. the full-size synthetic checkpoint (moe synth-model --geometry lite) in the background,
#   2. meanwhile the native build with the CUDA backend (build-cuda.sh),
#   3. `moe bench` at batch 1/4/8/16, prompt $P, $N new tokens, offloaded at 12 GiB with $CACHE expert slots
#      per layer ($POLICY), ESFT routing replayed: the reference the server is compared with,
#   4. `moe serve` with the same placement and routing (request g replays lane g, in admission order),
#      --max-batch 16, driven by `moe serve-bench` at concurrency 1/4/8/16 streaming clients: output tokens/s,
#      TTFT and TPOT p50/p99, bench's figures beside,
#   5. SIGTERM to the server: its exit code is recorded (0 expected).
# Results: $OUT/serve-bench.json, $OUT/serve-bench.md, $OUT/bench.json, $OUT/bench.md, $OUT/serve-metrics.txt
# (the server's /metrics after the run), $OUT/logs.tgz; the table is printed last.
# Env: MOE_ROUTING (default .gpu/traces/summary.arrow; comma-separated list allowed), MOE_CACHE (16),
# MOE_POLICY (lru), MOE_MISS (fetch; cpu or hybrid: misses computed on the CPU), MOE_PROMPT (128), MOE_NEW (64), MOE_REQUESTS (requests per client per level, 4),
# MOE_CONCURRENCY (1,4,8,16), MOE_SKIP_BENCH=1 (no step 3).
#   bash tools/gpu/serve-bench.sh
set -uo pipefail
source tools/gpu/lib.sh
gpu_init serve-bench bench serve-bench
R=${MOE_ROUTING:-.gpu/traces/summary.arrow}
CACHE=${MOE_CACHE:-16}
POLICY=${MOE_POLICY:-lru}
MISS=${MOE_MISS:-fetch}
P=${MOE_PROMPT:-128}
N=${MOE_NEW:-64}
LEVELS=${MOE_CONCURRENCY:-1,4,8,16}
PORT=8123
server_pid=
finish() {
  if [ -n "$server_pid" ] && [ -f /tmp/serve.pid ]; then kill -KILL "$(cat /tmp/serve.pid)" 2>/dev/null; fi
  cp "$LOG/bench/bench.json" "$LOG/bench/bench.md" "$REAL_OUT/" 2>/dev/null
  cp "$LOG/serve-bench/serve-bench.json" "$LOG/serve-bench/serve-bench.md" "$REAL_OUT/" 2>/dev/null
  cp "$LOG/serve-metrics.txt" "$REAL_OUT/" 2>/dev/null
  tar czf "$REAL_OUT/logs.tgz" -C "$LOG" . 2>/dev/null
  [ -f "$LOG/serve-bench/serve-bench.md" ] && cat "$LOG/serve-bench/serve-bench.md"
  stamp "done"
}
trap finish EXIT

gpu_node

start_synth 150

build_native
wait_synth

moe_env() { OUT=$LOG MOE_SKIP_NATIVE=1 MOE_NATIVE_ADDON=$addon PYTHONUNBUFFERED=1 "$@"; }
PLACE="--device cuda --cache $CACHE --policy $POLICY --miss $MISS --gpu-memory 12GiB --routing $R"

if [ "${MOE_SKIP_BENCH:-0}" != 1 ]; then
  stamp "bench: batch $LEVELS, prompt $P, $N new tokens, cache $CACHE $POLICY, 12 GiB, routing $R"
  moe_env timeout 240 bash tools/gpu/on-device.sh \
    "moe bench --model /tmp/lite $PLACE --batch $LEVELS --prompt $P --new-tokens $N --repeats 2 --warmup 1 --out $LOG/bench" > "$LOG/bench.log" 2>&1
  echo "bench exit $?" | tee -a "$LOG/steps.log"
  grep -v "^|" "$LOG/bench.log" | tail -6
fi

# The server: every sequence holds a prompt plus its tokens; one step prefills at most 16 prompts (as
# bench's batch-16 prefill), beside the decode rows.
CTX=$(( P + N ))
stamp "serve: max batch 16, context $CTX, $PLACE"
# The command records its own pid and then becomes node (exec), so the SIGTERM below reaches the server
# itself, not on-device.sh's shells.
rm -f /tmp/serve.pid
moe_env bash tools/gpu/on-device.sh \
  "echo \$\$ > /tmp/serve.pid; exec \"\$MOE_NODE\" \"\$MOE_GPU_DIR/moe-offload.mjs\" serve --model /tmp/lite $PLACE --host 127.0.0.1 --port $PORT --max-batch 16 --max-queue 256 --context $CTX --max-prefill-tokens $(( 16 * P ))" \
  > "$LOG/serve.out" 2> "$LOG/serve.err" &
server_pid=$!
for _ in $(seq 1 240); do
  grep -q "listening on" "$LOG/serve.out" 2>/dev/null && break
  kill -0 $server_pid 2>/dev/null || break
  sleep 1
done
grep -q "listening on" "$LOG/serve.out" || { stamp "serve did not start"; tail -20 "$LOG/serve.err"; exit 1; }
stamp "$(cat "$LOG/serve.out")"

bench_arg=
[ -f "$LOG/bench/bench.json" ] && bench_arg="--bench $LOG/bench/bench.json"
stamp "serve-bench: concurrency $LEVELS"
moe_env timeout 300 bash tools/gpu/on-device.sh \
  "moe serve-bench --url http://127.0.0.1:$PORT --model /tmp/lite --concurrency $LEVELS --requests ${MOE_REQUESTS:-4} --prompt $P --max-tokens $N $bench_arg --out $LOG/serve-bench" \
  > "$LOG/serve-bench.log" 2>&1
echo "serve-bench exit $?" | tee -a "$LOG/steps.log"
tail -8 "$LOG/serve-bench.log" | grep -v "^|"
# /metrics through Node's fetch (no curl assumed on the machine).
"$MOE_NODE" -e "fetch('http://127.0.0.1:$PORT/metrics').then(r => r.text()).then(t => process.stdout.write(t))" > "$LOG/serve-metrics.txt" 2>&1
grep -E "^moe_serve_(expert_hit_rate|expert_bytes_h2d_total|engine_steps_total|completion_tokens_total) " "$LOG/serve-metrics.txt"

stamp "SIGTERM to the server (pid $(cat /tmp/serve.pid))"
kill -TERM "$(cat /tmp/serve.pid)"
wait $server_pid
rc=$?
server_pid=
echo "serve exit code after SIGTERM: $rc" | tee -a "$LOG/steps.log"
