#!/usr/bin/env python3
"""transformers side of `moe bench`: timings of the same grid and the teacher-forced reference.

Loads the checkpoint once with transformers (bf16 on the GPU by default; the weight mapping is
checked as in dump_logits.py, --verify sample), then, as the request asks:
  - check: one forward over each reference sequence (teacher forcing): the logits of every position
    and the output of every decoder layer, written as raw little-endian float32 files;
  - grid: for each (batch, prompt, new tokens) config: prefill of the given prompts, then greedy decode
    with the KV cache, every step synchronised and timed (warm-up runs first);
  - check.fp32 (last): the model cast to float32 (matmuls without TF32) and the reference again: the
    higher-precision point both bf16 results are measured against.

  bench_transformers.py --model DIR --request request.json --out result.json [--device cuda] [--dtype bfloat16]
                        [--attn sdpa|eager]

request.json: {"check": {"sequences": [[ids]], "logitsPath": str, "hiddenPath": str,
                         "fp32": {"logitsPath": str, "hiddenPath": str} | null} | null,
               "grid": [{"batch": B, "prompt": P, "newTokens": N, "prompts": [[ids] x B]}],
               "repeats": R, "warmupTokens": W}
result.json: {"device", "dtype", "attn", "torch", "transformers", "loadSeconds", "check": {...}, "grid": [...]}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump_logits import fail, patch_norm_topk_prob, verify_weights  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--request", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="auto: cuda when available")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"],
                   help="attention implementation (sdpa: what a user of transformers gets by default)")
    return p.parse_args()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    idx = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
    return s[idx]


def run_check(model, torch, check: dict, device: str) -> dict:
    seqs = check["sequences"]
    captured: dict[int, object] = {}
    hooks = []
    for i, layer in enumerate(model.model.layers):
        def hook(_m, _inp, out, i=i):
            t = out[0] if isinstance(out, tuple) else out
            captured[i] = t.detach().float().cpu()
        hooks.append(layer.register_forward_hook(hook))
    t0 = time.time()
    with open(check["logitsPath"], "wb") as lf, open(check["hiddenPath"], "wb") as hf:
        # One sequence at a time: no padding, the same positions the engine sees.
        for ids in seqs:
            with torch.no_grad():
                out = model(input_ids=torch.tensor([ids], device=device), use_cache=False)
            lf.write(out.logits[0].float().cpu().numpy().astype("<f4").tobytes())
            # hidden file layout: [sequence][layer][position][hidden]
            for i in range(len(model.model.layers)):
                hf.write(captured[i][0].numpy().astype("<f4").tobytes())
    for h in hooks:
        h.remove()
    return {"sequences": len(seqs), "positions": sum(len(s) for s in seqs), "layers": len(model.model.layers),
            "seconds": round(time.time() - t0, 3)}


def run_config(model, torch, cfg: dict, repeats: int, warmup_tokens: int, device: str) -> dict:
    ids = torch.tensor(cfg["prompts"], device=device)
    new_tokens = cfg["newTokens"]
    cuda = device == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def generate(n: int):
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True)
            tok = out.logits[:, -1].argmax(dim=-1)
            sync()
            prefill = time.perf_counter() - t0
            past = out.past_key_values
            steps = []
            for _ in range(n - 1):
                t = time.perf_counter()
                out = model(input_ids=tok[:, None], past_key_values=past, use_cache=True)
                past = out.past_key_values
                tok = out.logits[:, -1].argmax(dim=-1)
                sync()
                steps.append(time.perf_counter() - t)
        return prefill, steps

    generate(max(2, warmup_tokens))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    prefills, steps = [], []
    for _ in range(repeats):
        p, s = generate(new_tokens)
        prefills.append(p)
        steps.extend(s)
    batch = cfg["batch"]
    step_ms = [1e3 * s for s in steps]
    mean = sum(step_ms) / len(step_ms) if step_ms else float("nan")
    return {
        "batch": batch, "prompt": cfg["prompt"], "newTokens": new_tokens, "repeats": repeats,
        "prefillMs": {"mean": 1e3 * sum(prefills) / len(prefills), "min": 1e3 * min(prefills)},
        "msPerToken": {"mean": mean, "p50": percentile(step_ms, 50), "p99": percentile(step_ms, 99)},
        "decodeTokensPerSecond": batch * 1e3 / mean if step_ms else None,
        "peakGpuBytes": int(torch.cuda.max_memory_allocated()) if cuda else None,
    }


def main() -> None:
    a = parse_args()
    with open(a.request) as f:
        req = json.load(f)
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        fail(f"needs torch and transformers: {e}")
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device available")
    dtype = torch.bfloat16 if a.dtype == "bfloat16" else torch.float32
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, attn_implementation=a.attn)
    model.eval()
    if type(model).__name__ != "DeepseekV2ForCausalLM":
        fail(f"loaded {type(model).__name__}, expected DeepseekV2ForCausalLM")
    verified = verify_weights(model, a.model, "sample")
    patched = patch_norm_topk_prob(model)
    model.to(a.device)
    load_s = time.time() - t0
    print(f"bench_transformers: loaded in {load_s:.1f} s ({verified['tensors_checked']} tensors verified)", file=sys.stderr)

    result = {
        "device": torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu",
        "dtype": a.dtype, "attn": a.attn, "torch": torch.__version__, "transformers": transformers.__version__,
        "loadSeconds": round(load_s, 2), "weightsVerified": verified, "normTopkRoutersPatched": patched,
        "check": None, "grid": [],
    }
    if req.get("check"):
        result["check"] = run_check(model, torch, req["check"], a.device)
        print(f"bench_transformers: reference of {result['check']['positions']} positions in {result['check']['seconds']} s",
              file=sys.stderr)
    for cfg in req.get("grid", []):
        r = run_config(model, torch, cfg, int(req.get("repeats", 1)), int(req.get("warmupTokens", 4)), a.device)
        print(f"bench_transformers: batch {r['batch']} prompt {r['prompt']}: prefill {r['prefillMs']['mean']:.1f} ms, "
              f"{r['msPerToken']['mean']:.2f} ms/token", file=sys.stderr)
        result["grid"].append(r)
    fp32 = (req.get("check") or {}).get("fp32")
    if fp32:
        torch.backends.cuda.matmul.allow_tf32 = False
        model.float()
        result["checkFp32"] = run_check(model, torch, {"sequences": req["check"]["sequences"], **fp32}, a.device)
        print(f"bench_transformers: float32 reference in {result['checkFp32']['seconds']} s", file=sys.stderr)
    tmp = f"{a.out}.partial-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
