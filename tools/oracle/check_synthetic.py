#!/usr/bin/env python3
"""Checks that a (synthetic) checkpoint is a meaningful test subject for the oracle, in transformers:

1. it loads, and the weight check of dump_logits.py passes;
2. the weight check is not toothless: after swapping two experts in the loaded model it must fail;
3. a forward pass gives finite logits;
4. routing is not degenerate: over a 48-token prompt, each MoE layer uses at least half of its
   experts and at least 4 distinct top-k sets;
5. the norm_topk_prob patch does what it says: routed weights sum to 1 when it is set, and to
   routed_scaling_factor * (sum of the top-k softmax scores) < routed_scaling_factor otherwise.

Prints a JSON list of summaries (one per model) on stdout; exits 1 with a message on the first
failed check. Several models share one process, which saves the slow transformers import.
Usage: check_synthetic.py --model DIR [DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dump_logits  # noqa: E402


def check(cond: bool, msg: str) -> None:
    if not cond:
        print(f"check_synthetic: FAILED: {msg}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, nargs="+")
    a = p.parse_args()
    print(json.dumps([check_model(m) for m in a.model]))


def check_model(model_dir: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    verified = dump_logits.verify_weights(model, model_dir, "all")

    # 2. the weight check must notice two swapped experts
    moe_layer = next(i for i, l in enumerate(model.model.layers) if hasattr(l.mlp, "experts"))
    fused = model.model.layers[moe_layer].mlp.experts.gate_up_proj
    with torch.no_grad():
        saved = fused.data.clone()
        fused.data[[0, 1]] = fused.data[[1, 0]]
    try:
        dump_logits.verify_weights(model, model_dir, "all")
        caught = False
    except SystemExit:
        caught = True
    with torch.no_grad():
        fused.data.copy_(saved)
    check(caught, f"{model_dir}: verify_weights did not notice two swapped experts")

    patched = dump_logits.patch_norm_topk_prob(model)
    routes: dict[int, list] = {}
    weights: dict[int, list] = {}
    hooks = []
    for i, layer in enumerate(model.model.layers):
        if hasattr(layer.mlp, "gate"):
            def hook(_m, _inp, out, i=i):
                _logits, w, idx = out
                routes.setdefault(i, []).extend(tuple(sorted(r)) for r in idx.tolist())
                weights.setdefault(i, []).extend(w.sum(dim=-1).tolist())
            hooks.append(layer.mlp.gate.register_forward_hook(hook))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (1, 48), generator=g)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    for h in hooks:
        h.remove()
    check(bool(torch.isfinite(logits).all()), f"{model_dir}: non-finite logits")

    per_layer = {}
    for i, sets in routes.items():
        used = len({e for s in sets for e in s})
        distinct = len(set(sets))
        per_layer[i] = {"experts_used": used, "distinct_topk_sets": distinct, "tokens": len(sets)}
        check(used >= cfg.n_routed_experts / 2, f"{model_dir}: layer {i}: only {used} of {cfg.n_routed_experts} experts used over 48 tokens")
        check(distinct >= 4, f"{model_dir}: layer {i}: only {distinct} distinct top-k sets over 48 tokens")
        sums = weights[i]
        if cfg.norm_topk_prob and cfg.num_experts_per_tok > 1:
            check(all(abs(s - 1) < 1e-5 for s in sums), f"{model_dir}: layer {i}: norm_topk_prob set but routed weights do not sum to 1")
        else:
            check(all(s < cfg.routed_scaling_factor * (1 - 1e-6) for s in sums),
                  f"{model_dir}: layer {i}: routed weights sum to routed_scaling_factor or more although norm_topk_prob is false")
    return {
        "model": model_dir,
        "weights_verified": verified,
        "swap_detected": caught,
        "norm_topk_prob": bool(cfg.norm_topk_prob),
        "routers_patched": patched,
        "logits_std": float(logits.std()),
        "routing": per_layer,
    }


if __name__ == "__main__":
    main()
