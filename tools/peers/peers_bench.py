#!/usr/bin/env python3
"""llama.cpp's rows of the issue-17 table, on the GPU machine (called by run-h200.sh).

Per GGUF dtype: --cpu-moe (every routed expert on the CPU; llama-bench spells it --n-cpu-moe <all layers>)
and --n-cpu-moe N with the smallest N that keeps the peak GPU memory within the budget, then --n-cpu-moe 0
(every expert on the GPU, over the budget: the ceiling). The peak is
nvidia-smi's memory.used of the device, polled every 100 ms, minus the idle baseline (so the CUDA context
and every llama.cpp buffer count). N is found by trying: the first guess is the cpu-moe peak plus the
expert bytes of layers N.. (from the GGUF's tensor sizes); the fit test is llama-batched-bench at 16
sequences (the largest KV cache and compute buffers of the table); a try over budget moves N up, a fit
with room for one more layer's experts moves it down. Results per dtype are kept in WORK/result-<dtype>.json
so a resumed run skips finished dtypes, and every single run in WORK/runs/<name>.json so a resumed run skips
the runs of a dtype it had finished before being cut.

Few files come back from the device (8): logs go to --logs (outside OUT) and are packed into OUT/logs.tgz,
and OUT/peers.json and OUT/commands.jsonl are rewritten after every run, so a call killed at its limit
still returns everything measured until then. --deadline (epoch seconds): a run that would not end before
it is not started; the script then writes peers.json with "incomplete" and exits 3 (call again to resume).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
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
    ap.add_argument("--run", default=None, help="the dtypes to measure now (default: all of --dtypes); the others are read from WORK/result-<dtype>.json when there")
    ap.add_argument("--logs", default=None, help="log folder (default WORK/logs); packed into OUT/logs.tgz after every run")
    ap.add_argument("--deadline", type=float, default=0, help="epoch seconds; 0: none")
    a = ap.parse_args()
    budget_mib = int(a.budget_gib * 1024)
    logs = a.logs or os.path.join(a.work, "logs")
    runs_dir = os.path.join(a.work, "runs")
    os.makedirs(logs, exist_ok=True)
    os.makedirs(runs_dir, exist_ok=True)
    to_run = (a.run or a.dtypes).split()
    took: dict[str, float] = {}  # seconds of the last run per kind, for the deadline estimate

    class Stop(Exception):
        pass

    def pack():
        tmp = os.path.join(a.out, "logs.tgz.partial")
        with tarfile.open(tmp, "w:gz") as t:
            t.add(logs, arcname="logs")
        os.replace(tmp, os.path.join(a.out, "logs.tgz"))
        if os.path.abspath(a.commands) != os.path.abspath(os.path.join(a.out, "commands.jsonl")):
            with open(a.commands) as f, open(os.path.join(a.out, "commands.jsonl"), "w") as g:
                g.write(f.read())

    def run(name: str, argv: list[str]) -> tuple[int, str, int, float]:
        cache = os.path.join(runs_dir, name + ".json")
        if os.path.exists(cache):  # measured by an earlier (cut) call on this machine
            with open(cache) as f:
                c = json.load(f)
            print(f"peers_bench: {name}: from {cache}", file=sys.stderr)
            return c["exit"], c["stdout"], c["peak_gpu_mib"], c["seconds"]
        kind = name.split("-")[0] + "-" + name.split("-")[1]  # batched-bf16, bench-q8_0, ...
        est = took.get(kind, 90.0)
        if a.deadline and time.time() + est > a.deadline:
            raise Stop(f"{name} (about {est:.0f} s) would end after the deadline")
        with open(a.commands, "a") as f:
            f.write(json.dumps({"name": name, "argv": argv}) + "\n")
        t0 = time.time()
        with Peak() as p:
            r = subprocess.run(argv, capture_output=True, text=True)
        secs = time.time() - t0
        took[kind] = secs
        with open(os.path.join(logs, name + ".log"), "w") as f:
            f.write(r.stderr)
            f.write(r.stdout)
        with open(a.commands, "a") as f:
            f.write(json.dumps({"name": name, "exit": r.returncode, "peak_gpu_mib": p.peak, "seconds": round(secs, 1)}) + "\n")
        with open(cache + ".partial", "w") as f:
            json.dump({"argv": argv, "exit": r.returncode, "stdout": r.stdout, "peak_gpu_mib": p.peak, "seconds": secs}, f)
        os.replace(cache + ".partial", cache)
        print(f"peers_bench: {name}: exit {r.returncode}, peak {p.peak} MiB, {secs:.0f} s", file=sys.stderr)
        pack()
        return r.returncode, r.stdout, p.peak, secs

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

    def measure(dt: str):
        m = os.path.join(a.work, f"lite-{dt}.gguf")
        if not os.path.exists(m):
            print(f"peers_bench: {m} missing; skipping {dt}", file=sys.stderr)
            return None
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
        # The ceiling: every routed expert on the GPU (n-cpu-moe 0), whatever its memory (the H200 has room);
        # when N = 0 already fits the budget, that setting is the ceiling and is not run twice.
        if fit is None or fit[0] != 0:
            res["settings"].append({"setting": "all experts on the GPU (ceiling)", "n_cpu_moe": 0, "ceiling": True,
                                    "batched": batched(m, 0, dt), "bench": bench(m, 0, dt)})
        return res

    results = []
    stopped = None

    def write_doc():
        llama = {}
        p = os.path.join(a.out, "llama.cpp.json")
        if os.path.exists(p):
            with open(p) as f:
                llama = json.load(f)
        gp = os.path.join(a.out, "gpu.csv")
        gpu = open(gp).read().strip().splitlines()[-1] if os.path.exists(gp) else ""
        done = [r["dtype"] for r in results]
        doc = {"kind": "peers-llama.cpp", "device": gpu, "llama_cpp": llama, "budget_gib": a.budget_gib, "threads": a.threads,
               "reps": a.reps, "decode_tokens": a.tg, "batched_new_tokens": a.batch_new, "prompts": [128, 512],
               "peak_memory": "nvidia-smi memory.used of the device, polled every 100 ms, minus the idle baseline",
               "incomplete": stopped, "missing_dtypes": [d for d in a.dtypes.split() if d not in done], "results": results}
        with open(os.path.join(a.out, "peers.json.partial"), "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(os.path.join(a.out, "peers.json.partial"), os.path.join(a.out, "peers.json"))

    for dt in a.dtypes.split():
        cached = os.path.join(a.work, f"result-{dt}.json")
        if os.path.exists(cached):
            with open(cached) as f:
                results.append(json.load(f))
            continue
        if dt not in to_run or stopped:
            continue
        try:
            res = measure(dt)
        except Stop as e:
            stopped = str(e)
            print(f"peers_bench: stopping before the deadline: {stopped}; call again to resume", file=sys.stderr)
            continue
        if res is not None:
            with open(cached, "w") as f:
                json.dump(res, f, indent=1)
            results.append(res)
        write_doc()
    write_doc()
    if stopped:
        return 3
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
