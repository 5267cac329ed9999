#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers for a DeepSeek-V2 checkpoint (test-only oracle).

Loads the checkpoint (Hub layout, original tensor names) with transformers' native deepseek_v2
model, checks that every parameter equals the safetensors tensor it came from (transformers 5 fuses
the per-expert weights into 3-D tensors on load; a silent mis-mapping would make every comparison
meaningless), then runs each prompt on its own: prefill, then greedy decoding with the KV cache.

Output (JSON, see tools/oracle/README.md):
  results[i].tokens[k]  the k-th generated token, argmax of results[i].logits[k]
  results[i].logits[0]  logits of the last prompt position (prefill); logits[k] for k >= 1 come from
                        the decode step that fed tokens[k-1]
  results[i].hidden_states (with --hidden-states): prefill residual stream, from forward hooks:
                        embed [T][H], layers[l] = output of decoder layer l [T][H], final_norm [T][H]

Usage:
  dump_logits.py --model DIR --inputs prompts.json --max-new-tokens N --out out.json
                 [--device cpu|cuda] [--dtype float32|bfloat16] [--hidden-states] [--no-stop-at-eos]
prompts.json: [[ids...], ...] or {"prompts": [[ids...], ...]}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time


def fail(msg: str) -> None:
    print(f"dump_logits: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint directory (config.json, index, shards)")
    p.add_argument("--inputs", required=True, help="JSON file: list of prompts, each a list of token ids")
    p.add_argument("--max-new-tokens", type=int, required=True, help="tokens to generate per prompt (>= 1)")
    p.add_argument("--out", required=True, help="JSON file to write (atomically)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--hidden-states", action="store_true", help="also dump the prefill's per-layer hidden states")
    p.add_argument("--no-stop-at-eos", action="store_true", help="keep decoding after an end-of-sequence token")
    p.add_argument("--verify", default="all", choices=["all", "sample"],
                   help="compare every tensor with the loaded parameters (all) or a few per kind (sample, for big models)")
    a = p.parse_args()
    if a.max_new_tokens < 1:
        fail("--max-new-tokens must be >= 1")
    return a


def read_prompts(path: str, vocab_size: int) -> list[list[int]]:
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path}: cannot read prompts ({e})")
    prompts = raw.get("prompts") if isinstance(raw, dict) else raw
    if not isinstance(prompts, list) or not prompts:
        fail(f"{path}: expected a non-empty list of prompts")
    for i, p in enumerate(prompts):
        if not isinstance(p, list) or not p or not all(isinstance(t, int) and 0 <= t < vocab_size for t in p):
            fail(f"{path}: prompt {i} must be a non-empty list of token ids in [0, {vocab_size})")
    return prompts


def load_weight_map(model_dir: str) -> dict[str, str]:
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return dict(json.load(f)["weight_map"])
    from safetensors import safe_open

    single = os.path.join(model_dir, "model.safetensors")
    with safe_open(single, framework="pt") as f:
        return {k: "model.safetensors" for k in f.keys()}


def loaded_view(params: dict, name: str, moe_intermediate: int):
    """The slice of a loaded parameter that holds checkpoint tensor `name` (original Hub naming)."""
    import re

    m = re.match(r"^(model\.layers\.\d+\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$", name)
    if m and name not in params:
        prefix, e, proj = m.group(1), int(m.group(2)), m.group(3)
        if proj == "down_proj":
            return f"{prefix}.down_proj", params[f"{prefix}.down_proj"][e]
        fused = params[f"{prefix}.gate_up_proj"][e]  # [2 * moe_intermediate, hidden]: gate rows, then up rows
        rows = slice(0, moe_intermediate) if proj == "gate_proj" else slice(moe_intermediate, 2 * moe_intermediate)
        return f"{prefix}.gate_up_proj", fused[rows]
    if name not in params:
        raise KeyError(name)
    return name, params[name]


def verify_weights(model, model_dir: str, mode: str) -> dict:
    """Every checkpoint tensor must equal (bit for bit, after the dtype cast) what the model holds."""
    import torch
    from safetensors import safe_open

    params = dict(model.named_parameters())
    weight_map = load_weight_map(model_dir)
    names = sorted(weight_map)
    if mode == "sample":
        # first and last expert of the first and last MoE layer, plus every non-expert tensor
        import re

        experts = [n for n in names if ".mlp.experts." in n]
        layers = sorted({int(re.search(r"layers\.(\d+)\.", n).group(1)) for n in experts})
        keep_layers = {layers[0], layers[-1]} if layers else set()
        ids = sorted({int(re.search(r"experts\.(\d+)\.", n).group(1)) for n in experts})
        keep_ids = {ids[0], ids[-1]} if ids else set()
        names = [n for n in names if ".mlp.experts." not in n or (
            int(re.search(r"layers\.(\d+)\.", n).group(1)) in keep_layers and int(re.search(r"experts\.(\d+)\.", n).group(1)) in keep_ids)]
    inter = model.config.moe_intermediate_size
    covered: dict[str, int] = {}
    by_shard: dict[str, list[str]] = {}
    for n in names:
        by_shard.setdefault(weight_map[n], []).append(n)
    checked = 0
    for shard, shard_names in by_shard.items():
        with safe_open(os.path.join(model_dir, shard), framework="pt") as f:
            for n in shard_names:
                want = f.get_tensor(n)
                try:
                    pname, got = loaded_view(params, n, inter)
                except KeyError:
                    fail(f"weight check: checkpoint tensor {n} has no parameter in the loaded model (conversion dropped it)")
                if tuple(got.shape) != tuple(want.shape):
                    fail(f"weight check: {n} has shape {tuple(want.shape)} in {shard} but {pname} holds {tuple(got.shape)}")
                # bf16 -> float32 is exact, so a correctly loaded parameter compares equal bit for bit
                if not torch.equal(got.detach().cpu().float(), want.float()):
                    diff = (got.detach().float().cpu() - want.float()).abs().max().item()
                    fail(f"weight check: {n} from {shard} differs from loaded {pname} (max |diff| {diff}): mis-mapped on load")
                covered[pname] = covered.get(pname, 0) + want.numel()
                checked += 1
    if mode == "all":
        for pname, p in params.items():
            if covered.get(pname, 0) != p.numel():
                fail(f"weight check: parameter {pname} ({p.numel()} values) was filled with {covered.get(pname, 0)} checkpoint values: "
                     "part of it is not from the checkpoint")
    return {"mode": mode, "tensors_checked": checked, "parameters": len(params)}


def patch_norm_topk_prob(model) -> int:
    """transformers' deepseek_v2 router ignores norm_topk_prob; DeepSeek's own code renormalises the
    top-k weights to sum to 1 when it is set (routed_scaling_factor must then be 1, which config.ts
    enforces, so DeepSeek-V2's and V3's conventions agree). Returns the number of routers patched."""
    cfg = model.config
    if not getattr(cfg, "norm_topk_prob", False) or cfg.num_experts_per_tok <= 1:
        return 0
    if cfg.routed_scaling_factor != 1.0:
        fail("norm_topk_prob with routed_scaling_factor != 1 is ambiguous between reference implementations; refused")
    patched = 0
    for module in model.modules():
        if type(module).__name__ == "DeepseekV2TopkRouter":
            original = module.forward

            def forward(hidden_states, _orig=original):
                logits, weights, indices = _orig(hidden_states)
                weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
                return logits, weights, indices

            module.forward = forward
            patched += 1
    if patched == 0:
        fail("norm_topk_prob is set but no DeepseekV2TopkRouter was found to patch (transformers changed?)")
    return patched


def run_prompt(model, prompt: list[int], max_new: int, eos_ids: set[int], stop_at_eos: bool, device: str, hidden: bool) -> dict:
    import torch

    captured: dict = {}
    hooks = []
    if hidden:
        base = model.model

        def grab(key):
            def hook(_m, _inp, out):
                t = out[0] if isinstance(out, tuple) else out
                captured.setdefault(key, t[0].detach().float().cpu().tolist())
            return hook

        hooks.append(base.embed_tokens.register_forward_hook(grab("embed")))
        for i, layer in enumerate(base.layers):
            hooks.append(layer.register_forward_hook(grab(f"layer{i}")))
        hooks.append(base.norm.register_forward_hook(grab("final_norm")))

    ids = torch.tensor([prompt], dtype=torch.long, device=device)
    logits_out, tokens = [], []
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        for h in hooks:
            h.remove()
        past = out.past_key_values
        logits = out.logits[0, -1].float()
        stopped = "length"
        for step in range(max_new):
            logits_out.append(logits.cpu().tolist())
            tok = int(torch.argmax(logits).item())
            tokens.append(tok)
            if stop_at_eos and tok in eos_ids:
                stopped = "eos"
                break
            if step + 1 == max_new:
                break
            out = model(input_ids=torch.tensor([[tok]], device=device), past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].float()
    result = {"prompt": prompt, "tokens": tokens, "logits": logits_out, "stopped": stopped}
    if hidden:
        n_layers = len(model.model.layers)
        result["hidden_states"] = {
            "embed": captured["embed"],
            "layers": [captured[f"layer{i}"] for i in range(n_layers)],
            "final_norm": captured["final_norm"],
        }
    return result


def main() -> None:
    a = parse_args()
    # Inputs are checked before the (slow) torch import, so a bad call fails fast.
    config_path = os.path.join(a.model, "config.json")
    if not os.path.exists(config_path):
        fail(f"{config_path}: missing")
    with open(config_path, "rb") as f:
        config_bytes = f.read()
    config = json.loads(config_bytes)
    prompts = read_prompts(a.inputs, config["vocab_size"])
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        fail(f"needs torch and transformers (tools/setup-python.sh installs tools/python-requirements.txt): {e}")
    if a.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device available")
    dtype = torch.float32 if a.dtype == "float32" else torch.bfloat16

    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, attn_implementation="eager")
    model.eval()
    if type(model).__name__ != "DeepseekV2ForCausalLM":
        fail(f"loaded {type(model).__name__}, expected DeepseekV2ForCausalLM")
    verified = verify_weights(model, a.model, a.verify)
    patched = patch_norm_topk_prob(model)
    model.to(a.device)
    load_s = time.time() - t0

    eos = config.get("eos_token_id")
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    t1 = time.time()
    results = [run_prompt(model, p, a.max_new_tokens, eos_ids, not a.no_stop_at_eos, a.device, a.hidden_states) for p in prompts]
    for r in results:
        for row in r["logits"]:
            if not all(math.isfinite(v) for v in row):
                fail("non-finite logits: the checkpoint or the reference is broken")
    doc = {
        "format": "moe-offload-oracle-v1",
        "model": os.path.abspath(a.model),
        "config_sha256": hashlib.sha256(config_bytes).hexdigest(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "device": a.device,
        "dtype": a.dtype,
        "attn_implementation": "eager",
        "weights_verified": verified,
        "norm_topk_prob_routers_patched": patched,
        "stop_at_eos": not a.no_stop_at_eos,
        "max_new_tokens": a.max_new_tokens,
        "seconds": {"load": round(load_s, 3), "run": round(time.time() - t1, 3)},
        "results": results,
    }
    tmp = f"{a.out}.partial-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {len(results)} prompts, weights verified ({verified['tensors_checked']} tensors), "
          f"{patched} routers patched for norm_topk_prob", file=sys.stderr)


if __name__ == "__main__":
    main()
