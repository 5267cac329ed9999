#!/usr/bin/env python3
"""llama.cpp's rows of the issue-17 table, on the GPU machine (called by run-h200.sh).

Per GGUF dtype: --cpu-moe (every routed expert on the CPU; llama-bench spells it --n-cpu-moe <all layers>)
and --n-cpu-moe N with the smallest N that keeps the peak GPU memory within the budget. The peak is
nvidia-smi's memory.used of the device, polled every 100 ms, minus the idle baseline (so the CUDA context
and every llama.cpp buffer count). N is found by trying: the first guess is the cpu-moe peak plus the
expert bytes of layers N.. (from the GGUF's tensor sizes); the fit test is llama-batched-bench at 16
sequences (the largest KV cache and compute buffers of the table); a try over budget moves N up, a fit
with room for one more layer's experts moves it down. Results per dtype are kept in WORK/result-<dtype>.json
so a resumed run skips finished dtypes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

MIB = 1 << 20


def gpu_used_mib() -> int:
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[0])


class Peak:
    """Polls nvidia-smi while a command runs."""

    def __init__(self):
        self.base = gpu_used_mib()
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, gpu_used_mib() - self.base)
            except Exception:  # noqa: BLE001 - a failed poll only loses one sample
                pass
            self._stop.wait(0.1)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def expert_bytes_per_layer(path: str) -> tuple[int, dict[int, int]]:
    from gguf import GGUFReader
    r = GGUFReader(path)
    n_layer = int(r.fields["deepseek2.block_count"].parts[-1][0])
    per: dict[int, int] = {}
    for t in r.tensors:
        if "_exps." in t.name:
            bid = int(t.name.split(".")[1])
            per[bid] = per.get(bid, 0) + int(t.n_bytes)
    return n_layer, per


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtypes", default="bf16 q8_0 q4_k_m")
    ap.add_argument("--budget-gib", type=float, default=12)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--batch-new", type=int, default=32)
    ap.add_argument("--commands", required=True)
    a = ap.parse_args()
    budget_mib = int(a.budget_gib * 1024)
    logs = os.path.join(a.out, "logs")
    os.makedirs(logs, exist_ok=True)

    def run(name: str, argv: list[str]) -> tuple[int, str, int, float]:
        with open(a.commands, "a") as f:
            f.write(json.dumps({"name": name, "argv": argv}) + "\n")
        t0 = time.time()
        with Peak() as p:
            r = subprocess.run(argv, capture_output=True, text=True)
        with open(os.path.join(logs, name + ".log"), "w") as f:
            f.write(r.stderr)
            f.write(r.stdout)
        print(f"peers_bench: {name}: exit {r.returncode}, peak {p.peak} MiB, {time.time() - t0:.0f} s", file=sys.stderr)
        return r.returncode, r.stdout, p.peak, time.time() - t0

    def batched(m: str, ncmoe: int, tag: str):
        ctx = 16 * (128 + a.batch_new)
        argv = [f"{a.bin}/llama-batched-bench", "-m", m, "-ngl", "99", "--n-cpu-moe", str(ncmoe), "-t", str(a.threads), "-tb", str(a.threads),
                "-c", str(ctx), "-b", "2048", "-ub", "512", "-npp", "128", "-ntg", str(a.batch_new), "-npl", "4,8,16", "--output-format", "jsonl"]
        rc, out, peak, secs = run(f"batched-{tag}-ncmoe{ncmoe}", argv)
        rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        return {"argv": argv, "exit": rc, "peak_gpu_mib": peak, "seconds": secs, "rows": rows}

    def bench(m: str, ncmoe: int, tag: str):
        argv = [f"{a.bin}/llama-bench", "-m", m, "-ngl", "99", "--n-cpu-moe", str(ncmoe), "-t", str(a.threads),
                "-p", "128,512", "-n", str(a.tg), "-r", str(a.reps), "-o", "json"]
        rc, out, peak, secs = run(f"bench-{tag}-ncmoe{ncmoe}", argv)
        try:
            rows = json.loads(out)
        except json.JSONDecodeError:
            rows = []
        return {"argv": argv, "exit": rc, "peak_gpu_mib": peak, "seconds": secs, "rows": rows}

    results = []
    for dt in a.dtypes.split():
        cached = os.path.join(a.work, f"result-{dt}.json")
        if os.path.exists(cached):
            with open(cached) as f:
                results.append(json.load(f))
            continue
        m = os.path.join(a.work, f"lite-{dt}.gguf")
        if not os.path.exists(m):
            print(f"peers_bench: {m} missing; skipping {dt}", file=sys.stderr)
            continue
        n_layer, per = expert_bytes_per_layer(m)
        res = {"dtype": dt, "gguf": m, "gguf_bytes": os.path.getsize(m), "n_layer": n_layer,
               "expert_bytes_per_layer": {str(k): v for k, v in sorted(per.items())}, "budget_mib": budget_mib, "settings": []}
        # --cpu-moe: every layer's experts on the CPU
        cpu_b = batched(m, n_layer, dt)
        res["settings"].append({"setting": "cpu-moe", "n_cpu_moe": n_layer, "batched": cpu_b, "bench": bench(m, n_layer, dt)})
        # --n-cpu-moe N: first guess from the cpu-moe peak + the experts kept on the GPU, then by trying
        base = cpu_b["peak_gpu_mib"]
        margin = 256
        def est(n: int) -> float:
            return base + sum(v for k, v in per.items() if k >= n) / MIB
        guess = next((n for n in range(0, n_layer + 1) if est(n) <= budget_mib - margin), n_layer)
        tries = []
        n = guess
        fit = None
        for _ in range(5):
            if n >= n_layer:
                break
            b = batched(m, n, dt)
            tries.append({"n_cpu_moe": n, "estimate_mib": round(est(n)), "peak_gpu_mib": b["peak_gpu_mib"], "exit": b["exit"]})
            ok = b["exit"] == 0 and b["peak_gpu_mib"] <= budget_mib
            if ok:
                fit = (n, b)
                below = n - 1
                if below >= 0 and all(t["n_cpu_moe"] != below for t in tries) and b["peak_gpu_mib"] + per.get(below, 0) / MIB <= budget_mib:
                    n = below
                    continue
                break
            if fit is not None:
                break  # n+1 already fits: n is over, fit is the smallest
            n += 1
        res["fit_search"] = tries
        if fit is not None:
            n, b = fit
            res["settings"].append({"setting": f"n-cpu-moe {n}", "n_cpu_moe": n, "batched": b, "bench": bench(m, n, dt)})
        with open(cached, "w") as f:
            json.dump(res, f, indent=1)
        results.append(res)

    llama = {}
    p = os.path.join(a.out, "llama.cpp.json")
    if os.path.exists(p):
        with open(p) as f:
            llama = json.load(f)
    gpu = open(os.path.join(a.out, "gpu.csv")).read().strip().splitlines()[-1] if os.path.exists(os.path.join(a.out, "gpu.csv")) else ""
    doc = {"kind": "peers-llama.cpp", "device": gpu, "llama_cpp": llama, "budget_gib": a.budget_gib, "threads": a.threads,
           "reps": a.reps, "decode_tokens": a.tg, "batched_new_tokens": a.batch_new, "prompts": [128, 512],
           "peak_memory": "nvidia-smi memory.used of the device, polled every 100 ms, minus the idle baseline", "results": results}
    with open(os.path.join(a.out, "peers.json"), "w") as f:
        json.dump(doc, f, indent=1)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
