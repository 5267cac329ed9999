#!/usr/bin/env python3
"""Writes a DeepSeek-V2 checkpoint in the Hub layout (ours: `moe-offload synth-model`) as llama.cpp's
`deepseek2` GGUF, for the peer comparison of issue 17.

Written against llama.cpp's loader (src/models/deepseek2.cpp at the commit in .peers/llama.cpp.json) and
over the `gguf` Python package of that commit; llama.cpp's own convert_hf_to_gguf.py was read to learn
the mapping, not used: it needs the checkpoint's tokenizer to be one it knows, ours is synthetic.

Mapping (HF name -> GGUF name, shape in numpy order; GGUF lists dimensions reversed):
  embed_tokens -> token_embd, norm -> output_norm, lm_head -> output
  layer i: input_layernorm -> attn_norm, q_proj -> attn_q (or q_a_proj/q_a_layernorm/q_b_proj ->
  attn_q_a/attn_q_a_norm/attn_q_b), kv_a_proj_with_mqa -> attn_kv_a_mqa, kv_a_layernorm -> attn_kv_a_norm,
  kv_b_proj [H*(nope+v), kv_lora] -> attn_k_b [H, kv_lora, nope] (the nope rows of each head, transposed:
  llama.cpp absorbs them into q, "MLA") and attn_v_b [H, v, kv_lora]; o_proj -> attn_output,
  post_attention_layernorm -> ffn_norm; dense layers mlp.{gate,up,down}_proj -> ffn_{gate,up,down};
  MoE layers mlp.gate -> ffn_gate_inp, mlp.experts.{e}.{gate,up,down}_proj stacked along a leading
  expert axis -> ffn_{gate,up,down}_exps [E, out, in], mlp.shared_experts.* -> ffn_*_shexp.
No rotary permutation: llama.cpp's deepseek2 ropes adjacent pairs (rope type NORM), which is what
DeepSeek-V2's own q_pe/k_pe de-interleaving amounts to.

Types: 2-D and 3-D weights stay bf16 (bit-exact copies); 1-D norms and the router go to fp32 (exact
upcasts; llama.cpp wants norms in fp32 and keeping the router in fp32 costs nothing).

Tokenizer: llama.cpp does not know the synthetic one, so the vocabulary is written as a plain token list
with tokenizer model "llama" (SPM; scores 0, bos/eos at the config's ids, add_bos off). Text must never be
tokenized by llama.cpp: feed token ids (peers_dump_logits), and llama-bench/llama-batched-bench, which
draw their own token ids, do not care.

Streaming: tensor infos first, then each tensor's bytes in the same order, so a 31 GB checkpoint needs one
layer's experts in memory (~1.1 GB), not the whole model.

Usage: hf_to_gguf.py --model DIR --out F.gguf [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time

import numpy as np


def fail(msg: str) -> None:
    print(f"hf_to_gguf: {msg}", file=sys.stderr)
    sys.exit(2)


try:
    import gguf  # the package of llama.cpp's commit (PYTHONPATH=<llama.cpp>/gguf-py) or PyPI's
except ImportError:
    fail("the gguf package is missing: pip install gguf, or PYTHONPATH=<llama.cpp>/gguf-py")


class SafetensorsDir:
    """bf16 tensors of a Hub checkpoint, memory-mapped (safetensors' header is 8 bytes of length + JSON;
    reading it here needs no torch, and numpy has no bf16, so bf16 comes back as uint16 bit patterns)."""

    def __init__(self, model_dir: str):
        idx = os.path.join(model_dir, "model.safetensors.index.json")
        files: list[str]
        if os.path.exists(idx):
            with open(idx) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        elif os.path.exists(os.path.join(model_dir, "model.safetensors")):
            files = ["model.safetensors"]
        else:
            fail(f"{model_dir}: no model.safetensors.index.json or model.safetensors")
        self.where: dict[str, tuple[np.memmap, dict]] = {}
        for name in files:
            path = os.path.join(model_dir, name)
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            mm = np.memmap(path, dtype=np.uint8, mode="r")
            for k, meta in header.items():
                if k == "__metadata__":
                    continue
                meta = dict(meta, base=8 + n)
                self.where[k] = (mm, meta)
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self.where

    def bf16(self, name: str) -> np.ndarray:
        """The tensor as uint16 bf16 bit patterns, shape as stored."""
        if name not in self.where:
            fail(f"checkpoint has no tensor {name}")
        mm, meta = self.where[name]
        if meta["dtype"] != "BF16":
            fail(f"tensor {name} is {meta['dtype']}; this converter expects the bf16 checkpoints synth-model writes")
        a, b = meta["data_offsets"]
        self.used.add(name)
        return mm[meta["base"] + a:meta["base"] + b].view(np.uint16).reshape(meta["shape"])


def bf16_to_f32(u16: np.ndarray) -> np.ndarray:
    return (u16.astype(np.uint32) << 16).view(np.float32)


def tname(t: "gguf.MODEL_TENSOR", bid: int | None = None) -> str:
    return gguf.TENSOR_NAMES[t].format(bid=bid) + ".weight"


def plan_tensors(st: SafetensorsDir, cfg: dict):
    """[(gguf name, producer returning ndarray, ggml type)] in file order."""
    T = gguf.MODEL_TENSOR
    BF16, F32 = gguf.GGMLQuantizationType.BF16, gguf.GGMLQuantizationType.F32
    L = cfg["num_hidden_layers"]
    H = cfg["num_attention_heads"]
    nope, v_dim, kv_lora = cfg["qk_nope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    E = cfg["n_routed_experts"]
    dense = cfg.get("first_k_dense_replace", 0)
    out: list = []

    def raw(hf: str, gg: str, to_f32: bool = False):
        if to_f32:
            out.append((gg, lambda: bf16_to_f32(st.bf16(hf)), F32))
        else:
            out.append((gg, lambda: st.bf16(hf), BF16))

    raw("model.embed_tokens.weight", tname(T.TOKEN_EMBD))
    for i in range(L):
        p = f"model.layers.{i}."
        raw(p + "input_layernorm.weight", tname(T.ATTN_NORM, i), True)
        if cfg.get("q_lora_rank"):
            raw(p + "self_attn.q_a_proj.weight", tname(T.ATTN_Q_A, i))
            raw(p + "self_attn.q_a_layernorm.weight", tname(T.ATTN_Q_A_NORM, i), True)
            raw(p + "self_attn.q_b_proj.weight", tname(T.ATTN_Q_B, i))
        else:
            raw(p + "self_attn.q_proj.weight", tname(T.ATTN_Q, i))
        raw(p + "self_attn.kv_a_proj_with_mqa.weight", tname(T.ATTN_KV_A_MQA, i))
        raw(p + "self_attn.kv_a_layernorm.weight", tname(T.ATTN_KV_A_NORM, i), True)

        def kv_b(part: str, name=p + "self_attn.kv_b_proj.weight"):
            w = st.bf16(name)
            if w.shape != (H * (nope + v_dim), kv_lora):
                fail(f"{name}: shape {w.shape}, expected {(H * (nope + v_dim), kv_lora)} from config.json")
            w = w.reshape(H, nope + v_dim, kv_lora)
            if part == "k":
                return np.ascontiguousarray(w[:, :nope, :].transpose(0, 2, 1))  # [H, kv_lora, nope]
            return np.ascontiguousarray(w[:, nope:, :])  # [H, v, kv_lora]

        out.append((tname(T.ATTN_K_B, i), lambda f=kv_b: f("k"), BF16))
        out.append((tname(T.ATTN_V_B, i), lambda f=kv_b: f("v"), BF16))
        raw(p + "self_attn.o_proj.weight", tname(T.ATTN_OUT, i))
        raw(p + "post_attention_layernorm.weight", tname(T.FFN_NORM, i), True)
        if i < dense:
            raw(p + "mlp.gate_proj.weight", tname(T.FFN_GATE, i))
            raw(p + "mlp.up_proj.weight", tname(T.FFN_UP, i))
            raw(p + "mlp.down_proj.weight", tname(T.FFN_DOWN, i))
            continue
        raw(p + "mlp.gate.weight", tname(T.FFN_GATE_INP, i), True)
        for w, t in (("gate_proj", T.FFN_GATE_EXP), ("up_proj", T.FFN_UP_EXP), ("down_proj", T.FFN_DOWN_EXP)):
            out.append((tname(t, i), lambda w=w, p=p: np.stack([st.bf16(f"{p}mlp.experts.{e}.{w}.weight") for e in range(E)]), BF16))
        if cfg.get("n_shared_experts"):
            raw(p + "mlp.shared_experts.gate_proj.weight", tname(T.FFN_GATE_SHEXP, i))
            raw(p + "mlp.shared_experts.up_proj.weight", tname(T.FFN_UP_SHEXP, i))
            raw(p + "mlp.shared_experts.down_proj.weight", tname(T.FFN_DOWN_SHEXP, i))
    raw("model.norm.weight", tname(T.OUTPUT_NORM), True)
    if not cfg.get("tie_word_embeddings"):
        raw("lm_head.weight", tname(T.OUTPUT))
    return out


def write_metadata(w: "gguf.GGUFWriter", cfg: dict, model_dir: str) -> None:
    name = os.path.basename(os.path.normpath(model_dir))
    w.add_name(name)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(1)  # MLA as MQA: one latent KV "head" shared by all heads
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_expert_count(cfg["n_routed_experts"])
    w.add_expert_used_count(cfg["num_experts_per_tok"])
    if cfg.get("n_group") is not None:
        w.add_expert_group_count(cfg["n_group"])
    if cfg.get("topk_group") is not None:
        w.add_expert_group_used_count(cfg["topk_group"])
    scoring = cfg.get("scoring_func", "softmax")
    if scoring != "softmax":
        fail(f"config.json scoring_func {scoring!r}: only DeepSeek-V2's softmax is mapped")
    if cfg.get("topk_method", "greedy") != "greedy":
        fail(f"config.json topk_method {cfg['topk_method']!r}: only greedy is mapped")
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
    w.add_leading_dense_block_count(cfg.get("first_k_dense_replace", 0))
    w.add_vocab_size(cfg["vocab_size"])
    # llama.cpp reads q_lora_rank unless the model has 26/27 layers (its "lite" test), so write 0 for
    # "no q compression" rather than leave it out (the tiny geometries have 3-4 layers).
    w.add_q_lora_rank(cfg.get("q_lora_rank") or 0)
    kv_lora, rope, nope, v = cfg["kv_lora_rank"], cfg["qk_rope_head_dim"], cfg["qk_nope_head_dim"], cfg["v_head_dim"]
    w.add_kv_lora_rank(kv_lora)
    w.add_key_length(kv_lora + rope)
    w.add_value_length(kv_lora)
    w.add_key_length_mla(nope + rope)
    w.add_value_length_mla(v)
    w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
    w.add_expert_shared_count(cfg.get("n_shared_experts") or 0)
    w.add_expert_weights_scale(float(cfg.get("routed_scaling_factor", 1.0)))
    if cfg.get("norm_topk_prob"):
        w.add_expert_weights_norm(True)
    w.add_rope_dimension_count(rope)
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("type", rs.get("rope_type"))
    if kind == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(float(rs["factor"]))
        w.add_rope_scaling_orig_ctx_len(int(rs["original_max_position_embeddings"]))
        if rs.get("beta_fast") is not None:
            w.add_rope_scaling_yarn_beta_fast(float(rs["beta_fast"]))
        if rs.get("beta_slow") is not None:
            w.add_rope_scaling_yarn_beta_slow(float(rs["beta_slow"]))
        if rs.get("mscale_all_dim") is not None:
            # llama.cpp divides this by 0.1 again on load (its TAG_DEEPSEEK2_YARN_LOG_MUL_FIX)
            w.add_rope_scaling_yarn_log_mul(0.1 * float(rs["mscale_all_dim"]))
        if rs.get("mscale") is not None and rs.get("mscale_all_dim") is not None and rs["mscale"] != rs["mscale_all_dim"]:
            fail("rope_scaling mscale != mscale_all_dim: llama.cpp's deepseek2 models only the equal case")
    elif kind is not None:
        fail(f"rope_scaling type {kind!r}: only yarn (DeepSeek-V2's) is mapped")

    # Vocabulary: token strings from tokenizer.json where present, else placeholders; ids are what count.
    n_vocab = cfg["vocab_size"]
    tokens = [f"<tok_{i}>" for i in range(n_vocab)]
    tj = os.path.join(model_dir, "tokenizer.json")
    if os.path.exists(tj):
        with open(tj) as f:
            t = json.load(f)
        for text, i in (t.get("model", {}).get("vocab") or {}).items():
            if 0 <= i < n_vocab:
                tokens[i] = text
        for at in t.get("added_tokens", []):
            if 0 <= at["id"] < n_vocab:
                tokens[at["id"]] = at["content"]
    # SPM needs distinct strings (a duplicate would shadow an id in its text -> id map)
    seen: set[str] = set()
    for i, s in enumerate(tokens):
        if s in seen:
            tokens[i] = f"<dup_{i}>"
        seen.add(tokens[i])
    types = [gguf.TokenType.NORMAL] * n_vocab
    bos, eos = cfg.get("bos_token_id"), cfg.get("eos_token_id")
    for sid in (bos, eos):
        if sid is not None and 0 <= sid < n_vocab:
            types[sid] = gguf.TokenType.CONTROL
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    if bos is not None:
        w.add_bos_token_id(bos)
    if eos is not None:
        w.add_eos_token_id(eos)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint directory (config.json, safetensors shards)")
    ap.add_argument("--out", required=True, help="GGUF file to write (atomically)")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    a = ap.parse_args()
    cfg_path = os.path.join(a.model, "config.json")
    if not os.path.exists(cfg_path):
        fail(f"{a.model}: no config.json (option --model)")
    with open(cfg_path) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "deepseek_v2":
        fail(f"{cfg_path}: model_type {cfg.get('model_type')!r}, expected 'deepseek_v2'")
    if os.path.exists(a.out) and not a.force:
        fail(f"option --out: {a.out} exists (use --force)")
    t0 = time.time()
    st = SafetensorsDir(a.model)
    plan = plan_tensors(st, cfg)
    tmp = a.out + ".partial"
    w = gguf.GGUFWriter(tmp, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.DEEPSEEK2], use_temp_file=False)
    write_metadata(w, cfg, a.model)
    # Infos first (shapes need no data except for the stacked experts, whose shape is [E] + one expert's).
    E = cfg["n_routed_experts"]
    for gg, prod, ty in plan:
        if gg.endswith("_exps.weight"):
            i = gg.split(".")[1]
            kind = {"ffn_gate_exps": "gate_proj", "ffn_up_exps": "up_proj", "ffn_down_exps": "down_proj"}[gg.split(".")[2]]
            one = st.bf16(f"model.layers.{i}.mlp.experts.0.{kind}.weight")
            shape, item = (E, *one.shape), 2
        else:
            arr = prod()
            shape, item = arr.shape, arr.dtype.itemsize
        nbytes = int(np.prod(shape)) * item
        w.add_tensor_info(gg, shape, np.dtype(np.float32 if ty == gguf.GGMLQuantizationType.F32 else np.uint16), nbytes, raw_dtype=ty)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = 0
    for gg, prod, ty in plan:
        arr = np.ascontiguousarray(prod())
        w.write_tensor_data(arr)
        total += arr.nbytes
    w.close()
    unused = sorted(set(st.where) - st.used)
    if unused:
        os.remove(tmp)
        fail(f"checkpoint tensors not mapped (the converter would silently drop them): {unused[:5]}{' ...' if len(unused) > 5 else ''}")
    os.replace(tmp, a.out)
    dt = time.time() - t0
    print(f"hf_to_gguf: wrote {a.out}: {len(plan)} tensors, {total / 1e9:.3f} GB in {dt:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
