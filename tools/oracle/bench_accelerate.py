#!/usr/bin/env python3
"""Baseline of issue 6: transformers + accelerate CPU offload under a GPU memory budget.

What a user gets from `from_pretrained(..., device_map="auto", max_memory={0: BUDGET, "cpu": ...})`:
accelerate places as many modules as fit in BUDGET on the GPU and the rest in CPU memory, and moves
each offloaded module's weights to the GPU for every forward (no expert cache, no prefetch). The
routing is the model's own (random weights: near-uniform); accelerate moves whole modules whatever
the routing, so its time per token barely depends on it.

  bench_accelerate.py --model DIR --gpu-memory 12GiB --batch 1 --prompt 128 --new-tokens 8 --out result.json

Greedy decode with the KV cache; every step synchronised and timed after one warm-up token. Writes
{device, budget, batch, prompt, newTokens, loadSeconds, prefillMs, msPerToken {mean, p50, p99},
peakGpuBytes (torch allocator), peakDeviceUsedBytes (cudaMemGetInfo, whole device), placement}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_transformers import percentile  # noqa: E402


def fail(msg: str) -> None:
    print(f"bench_accelerate: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--gpu-memory", default="12GiB", help="accelerate max_memory for GPU 0 (e.g. 12GiB)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if a.batch < 1 or a.prompt < 1 or a.new_tokens < 2:
        fail("--batch and --prompt must be >= 1, --new-tokens >= 2")
    return a


def main() -> None:
    a = parse_args()
    try:
        import torch
        import accelerate
        import transformers
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        fail(f"needs torch, transformers and accelerate: {e}")
    if not torch.cuda.is_available():
        fail("no CUDA device: the accelerate baseline offloads to a GPU")
    if not os.path.isfile(os.path.join(a.model, "config.json")):
        fail(f"--model {a.model}: no config.json")
    free0, total = torch.cuda.mem_get_info()
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(
        a.model, dtype=torch.bfloat16, device_map="auto",
        max_memory={0: a.gpu_memory, "cpu": "200GiB"},
    )
    model.eval()
    load_s = time.time() - t0
    placement: dict[str, int] = {}
    for where in getattr(model, "hf_device_map", {}).values():
        placement[str(where)] = placement.get(str(where), 0) + 1
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(0, vocab, (a.batch, a.prompt), generator=g).to("cuda")
    peak_used = [total - free0]

    def sample_used() -> None:
        free, _ = torch.cuda.mem_get_info()
        peak_used[0] = max(peak_used[0], total - free)

    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        tok = out.logits[:, -1].argmax(dim=-1)
        torch.cuda.synchronize()
        prefill_ms = 1e3 * (time.perf_counter() - t)
        sample_used()
        past = out.past_key_values
        steps = []
        for i in range(a.new_tokens - 1):
            t = time.perf_counter()
            out = model(input_ids=tok[:, None], past_key_values=past, use_cache=True)
            past = out.past_key_values
            tok = out.logits[:, -1].argmax(dim=-1)
            torch.cuda.synchronize()
            sample_used()
            if i > 0:  # the first decode step is the warm-up
                steps.append(1e3 * (time.perf_counter() - t))
            print(f"bench_accelerate: token {i + 2}/{a.new_tokens}", file=sys.stderr, flush=True)
    result = {
        "baseline": "transformers + accelerate CPU offload (device_map=auto, max_memory)",
        "device": torch.cuda.get_device_name(0), "budget": a.gpu_memory,
        "torch": torch.__version__, "transformers": transformers.__version__, "accelerate": accelerate.__version__,
        "batch": a.batch, "prompt": a.prompt, "newTokens": a.new_tokens, "timedSteps": len(steps),
        "routing": "router (random weights)",
        "loadSeconds": round(load_s, 1), "prefillMs": prefill_ms,
        "msPerToken": {"mean": sum(steps) / len(steps), "p50": percentile(steps, 50), "p99": percentile(steps, 99)},
        "peakGpuBytes": int(torch.cuda.max_memory_allocated()), "peakDeviceUsedBytes": int(peak_used[0]),
        "placement": placement,
    }
    tmp = a.out + ".partial"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, a.out)
    print(json.dumps({k: result[k] for k in ("device", "budget", "batch", "prompt", "msPerToken", "peakGpuBytes")}))


if __name__ == "__main__":
    main()
