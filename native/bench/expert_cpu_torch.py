#!/usr/bin/env python3
"""PyTorch baseline for native/bench/expert_cpu_bench.cpp: one DeepSeek-V2-Lite routed expert
(gate/up [1408, 2048], down [2048, 1408], bf16) on the CPU, y = down(silu(gate x) * up x), for 1, 4 and
16 tokens and 1..N threads, "hot" (the same expert again and again) and "cold" (cycling through a pool
of experts larger than the last-level cache). Prints a table and writes JSON in the same layout.

  python native/bench/expert_cpu_torch.py --json out.json [--max-threads 16] [--pool 48] [--min-seconds 0.3]
"""
import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

HIDDEN, FF = 2048, 1408


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", required=True)
    p.add_argument("--max-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--pool", type=int, default=48)
    p.add_argument("--min-seconds", type=float, default=0.3)
    a = p.parse_args()
    torch.manual_seed(0)
    experts = [
        (torch.randn(FF, HIDDEN, dtype=torch.bfloat16) * 0.02, torch.randn(FF, HIDDEN, dtype=torch.bfloat16) * 0.02,
         torch.randn(HIDDEN, FF, dtype=torch.bfloat16) * 0.02)
        for _ in range(a.pool)
    ]
    expert_bytes = 3 * FF * HIDDEN * 2
    threads = []
    t = 1
    while t < a.max_threads:
        threads.append(t)
        t *= 2
    threads.append(a.max_threads)
    results = []
    print(f"torch {torch.__version__}; {a.pool} experts in the cold pool")
    print(f"{'mode':<5} {'tokens':>6} {'threads':>7} {'median ms':>10} {'min ms':>10} {'GB/s':>9}")
    with torch.inference_mode():
        for n in threads:
            torch.set_num_threads(n)
            for tokens in (1, 4, 16):
                x = torch.randn(tokens, HIDDEN, dtype=torch.bfloat16)
                for mode in ("hot", "cold"):
                    g, u, d = experts[0]
                    F.linear(F.silu(F.linear(x, g)) * F.linear(x, u), d)  # warm-up
                    times, i, start = [], 0, time.perf_counter()
                    while len(times) < 10 or time.perf_counter() - start < a.min_seconds:
                        g, u, d = experts[i % len(experts) if mode == "cold" else 0]
                        i += 1
                        t0 = time.perf_counter()
                        F.linear(F.silu(F.linear(x, g)) * F.linear(x, u), d)
                        times.append((time.perf_counter() - t0) * 1e3)
                    times.sort()
                    med = times[len(times) // 2]
                    r = {"kernel": "torch-bf16", "mode": mode, "tokens": tokens, "threads": n, "iterations": len(times),
                         "median_ms": med, "min_ms": times[0], "gbps": expert_bytes / (med * 1e-3) / 1e9}
                    results.append(r)
                    print(f"{mode:<5} {tokens:>6} {n:>7} {med:>10.3f} {times[0]:>10.3f} {r['gbps']:>9.1f}")
    doc = {"benchmark": "expert_cpu_torch", "torch_version": torch.__version__,
           "expert": {"hidden": HIDDEN, "d_ff": FF, "dtype": "bf16", "bytes": expert_bytes},
           "cold_pool_experts": a.pool, "results": results}
    tmp = a.json + ".partial"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, a.json)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
