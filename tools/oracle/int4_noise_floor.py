"""What int4 with groups of 64 (asymmetric, scale and zero point per group) costs a random-weight expert, in
plain numpy, apart from the engine: the floor any implementation of the format reaches on the synthetic
checkpoint's Gaussian weights. The engine's int4 experts measured 15.8% (round-to-nearest) and 14.5% (with
the scale search) median output error over all 1,664 experts (reports/bench/quant-h200/fidelity-cpu/,
reports/bench/h100-2026-12-07/call1/quant-check/); this script gives the format's own figure for one
DeepSeek-V2-Lite-shaped expert (hidden 2048, intermediate 1408, N(0, 0.02) weights, N(0, 1) activations).

    python3 tools/oracle/int4_noise_floor.py --out reports/bench/int4-floor/int4-floor.json
"""
import argparse
import json
import os
import tempfile

import numpy as np

H, F = 2048, 1408


def quantize(w, group, clip):
    """Round-to-nearest on 16 levels over each group's [mid - clip * half-range, mid + clip * half-range]."""
    g = w.reshape(w.shape[0], -1, group)
    lo_raw, hi_raw = g.min(-1, keepdims=True), g.max(-1, keepdims=True)
    mid, half = (lo_raw + hi_raw) / 2, (hi_raw - lo_raw) / 2 * clip
    lo, step = mid - half, 2 * half / 15
    q = np.clip(np.round((g - lo) / step), 0, 15)
    return q * step + lo


def quantize_searched(w, group, clips):
    """Per group, the clip factor with the least squared weight error (a search over the range)."""
    g = w.reshape(w.shape[0], -1, group)
    best, err = None, None
    for c in clips:
        q = quantize(w, group, c)
        e = ((q - g) ** 2).sum(-1, keepdims=True)
        if best is None:
            best, err = q, e
        else:
            take = e < err
            best, err = np.where(take, q, best), np.where(take, e, err)
    return best.reshape(w.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=64)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    gate, up = (rng.normal(0, 0.02, (F, H)).astype(np.float32) for _ in range(2))
    down = rng.normal(0, 0.02, (H, F)).astype(np.float32)
    x = rng.normal(0, 1, (a.rows, H)).astype(np.float32)

    def expert(g, u, d):
        h = x @ g.T
        return ((h / (1 + np.exp(-h))) * (x @ u.T)) @ d.T

    y = expert(gate, up, down)
    results = []
    for group in (64, 128):
        for name, fn in (("round-to-nearest", lambda w: quantize(w, group, 1.0).reshape(w.shape)),
                         ("clip search 0.6-1.0", lambda w: quantize_searched(w, group, np.linspace(0.6, 1.0, 21)))):
            q = [fn(w) for w in (gate, up, down)]
            err = np.linalg.norm(expert(*q) - y, axis=1) / np.linalg.norm(y, axis=1)
            results.append({"group": group, "quantizer": name,
                            "weightRelErr": float(np.linalg.norm(q[0] - gate) / np.linalg.norm(gate)),
                            "expertOutputRelErrMedian": float(np.median(err))})
            print(f"int4 g{group} {name}: weight error {100 * results[-1]['weightRelErr']:.2f}%, "
                  f"expert output error median {100 * results[-1]['expertOutputRelErrMedian']:.2f}%")
    doc = {"generatedBy": "python3 tools/oracle/int4_noise_floor.py", "seed": a.seed, "hidden": H, "intermediate": F,
           "weights": "N(0, 0.02)", "activations": f"N(0, 1), {a.rows} rows", "results": results}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(a.out)))
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
