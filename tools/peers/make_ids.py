#!/usr/bin/env python3
"""Random token ids for the second oracle, one sequence per line (what peers_dump_logits and
`moe-offload peer-agreement` read). Deterministic in --seed; ids drawn from [0, vocab) except the
config's bos/eos, so no position means "end of text" to either side.
Usage: make_ids.py --model DIR --sequences N --length L [--seed S] --out ids.txt
"""
import argparse
import json
import os
import random
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--sequences", type=int, required=True)
ap.add_argument("--length", type=int, required=True)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--out", required=True)
a = ap.parse_args()
try:
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
except (OSError, json.JSONDecodeError) as e:
    sys.exit(f"make_ids: option --model: {e}")
if a.sequences < 1 or a.length < 2:
    sys.exit("make_ids: --sequences must be >= 1 and --length >= 2")
rng = random.Random(a.seed)
skip = {cfg.get("bos_token_id"), cfg.get("eos_token_id")}
pool = [i for i in range(cfg["vocab_size"]) if i not in skip]
lines = [" ".join(str(rng.choice(pool)) for _ in range(a.length)) for _ in range(a.sequences)]
tmp = a.out + ".partial"
with open(tmp, "w") as f:
    f.write("\n".join(lines) + "\n")
os.replace(tmp, a.out)
