#!/usr/bin/env python3
"""Independent reference replay of a per-layer expert cache over ESFT routing traces.

This is an oracle for the TypeScript simulator (sim/): it was written from the
"Canonical replay semantics" of issue 3 alone, without reading sim/, so that
agreement between the two is evidence that both implement the semantics.
Standard library only; written for clarity rather than speed.

Usage:
  python3 tools/reference-sim/replay.py --esft DIR --batch 1,4,16 --cache 8,16,32 \
      --policy lru,lfu,belady [--layers 26] [--top-k 6] [--experts 64]

Prints a JSON list, one object per (batch, cache, policy) in that nesting order:
  {"batch": B, "cache": C, "policy": P, "hits": H, "requests": R, "hitRate": H/R}
Any bad input prints one line to stderr and exits with status 2.
"""

import argparse
import json
import math
import os
import sys

POLICIES = ("lru", "lfu", "belady")


class InputError(Exception):
    """A problem with the input files or options; the message is shown to the user as is."""


# ---------------------------------------------------------------------------
# Reading the ESFT files
# ---------------------------------------------------------------------------

def parse_esft_line(line, path, line_no, top_k, experts):
    """One sequence line -> list over tokens of the token's top-k expert ids (a tuple).

    The line is `ids... <empty field> weights...`; weights are only checked for
    shape and number syntax, since the replay depends on ids alone.
    """
    where = f"{path}:{line_no}"
    fields = line.split("\t")
    if "" not in fields:
        raise InputError(f"{where}: no empty field separating expert ids from weights")
    split = fields.index("")
    id_fields, weight_fields = fields[:split], fields[split + 1:]
    if not id_fields:
        raise InputError(f"{where}: empty sequence (no expert ids)")
    if len(id_fields) % top_k != 0:
        raise InputError(f"{where}: {len(id_fields)} expert ids is not a multiple of --top-k {top_k}")
    if len(weight_fields) != len(id_fields):
        raise InputError(f"{where}: {len(id_fields)} expert ids but {len(weight_fields)} weights")
    ids = []
    for text in id_fields:
        # int() alone would accept " 3", "+3" or "3_0"; an id must be plain decimal digits.
        if not text.isdigit() or not text.isascii():
            raise InputError(f"{where}: expert id {text!r} is not a non-negative integer")
        value = int(text)
        if value >= experts:
            raise InputError(f"{where}: expert id {value} is out of range 0..{experts - 1}")
        ids.append(value)
    for text in weight_fields:
        try:
            weight = float(text)
        except ValueError:
            raise InputError(f"{where}: routing weight {text!r} is not a number") from None
        if not math.isfinite(weight):
            raise InputError(f"{where}: routing weight {text!r} is not finite")
    tokens = []
    for start in range(0, len(ids), top_k):
        token = tuple(ids[start:start + top_k])
        if len(set(token)) != top_k:
            # A router's top-k never picks one expert twice; a repeat means a corrupt file.
            raise InputError(f"{where}: token {start // top_k} repeats an expert id in {list(token)}")
        tokens.append(token)
    return tokens


def read_esft(directory, layers, top_k, experts):
    """Read DIR/expert_weights_<L>.txt for L = 1..layers.

    Returns routing[layer_index][sequence] = list over tokens of top-k id tuples,
    layer_index 0 being file 1. Every file must have the same sequences with the
    same token counts, since line k of every file is the same sequence.
    """
    if not os.path.isdir(directory):
        raise InputError(f"--esft {directory}: not a directory")
    routing = []
    for layer in range(1, layers + 1):
        path = os.path.join(directory, f"expert_weights_{layer}.txt")
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as error:
            raise InputError(f"{path}: cannot read ({error.strerror})") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline ends the last line; it does not start a new one
        if not lines:
            raise InputError(f"{path}: no sequences")
        sequences = [parse_esft_line(line.rstrip("\r"), path, number, top_k, experts)
                     for number, line in enumerate(lines, start=1)]
        if routing:
            first = routing[0]
            if len(sequences) != len(first):
                raise InputError(f"{path}: {len(sequences)} sequences but expert_weights_1.txt has {len(first)}")
            for index, (ours, theirs) in enumerate(zip(sequences, first)):
                if len(ours) != len(theirs):
                    raise InputError(f"{path}:{index + 1}: {len(ours)} tokens but line {index + 1} "
                                     f"of expert_weights_1.txt has {len(theirs)}")
        routing.append(sequences)
    return routing


# ---------------------------------------------------------------------------
# Batching: which (sequence, token) pairs run at each step
# ---------------------------------------------------------------------------

def schedule_steps(sequence_lengths, batch):
    """Assign sequences to `batch` lanes in file order; return the list of steps.

    Each step is a list of (sequence, token) pairs, one per active lane. A lane whose
    sequence ends at step s takes the next unassigned sequence from step s + 1.
    Which lane receives which sequence does not change the request sets (they are
    unions over lanes), only which sequences are active at each step does.
    """
    lanes = [None] * batch  # per lane: [sequence, next token] or None when idle
    next_sequence = 0
    steps = []
    while True:
        for lane in range(batch):
            if lanes[lane] is None and next_sequence < len(sequence_lengths):
                lanes[lane] = [next_sequence, 0]
                next_sequence += 1
        active = [lane for lane in range(batch) if lanes[lane] is not None]
        if not active:
            return steps
        steps.append([(lanes[lane][0], lanes[lane][1]) for lane in active])
        for lane in active:
            lanes[lane][1] += 1
            if lanes[lane][1] == sequence_lengths[lanes[lane][0]]:
                lanes[lane] = None


def request_sets(layer_routing, steps):
    """Per step, the sorted, duplicate-free union of the top-k ids of the step's tokens."""
    sets = []
    for step in steps:
        union = set()
        for sequence, token in step:
            union.update(layer_routing[sequence][token])
        sets.append(sorted(union))
    return sets


# ---------------------------------------------------------------------------
# One layer's cache
# ---------------------------------------------------------------------------

NEVER = math.inf  # next-use step of an expert that is not requested again


class NextUse:
    """Answers "the first step after `step` at which expert e is requested" (Belady).

    Precomputes each expert's ascending list of request steps once, then walks a
    per-expert cursor forward; queries come with non-decreasing steps, so the
    whole replay costs O(requests).
    """

    def __init__(self, sets):
        self.steps_of = {}
        for step, requested in enumerate(sets):
            for expert in requested:
                self.steps_of.setdefault(expert, []).append(step)
        self.cursor = {expert: 0 for expert in self.steps_of}

    def after(self, expert, step):
        steps = self.steps_of.get(expert, [])
        position = self.cursor.get(expert, 0)
        while position < len(steps) and steps[position] <= step:
            position += 1
        self.cursor[expert] = position
        return steps[position] if position < len(steps) else NEVER


def replay_layer(sets, capacity, policy, log=None):
    """Replay one MoE layer's cache of `capacity` slots over its per-step request sets.

    Returns (hits, requests). If `log` is a list, appends one tuple per request:
    (step, expert, outcome, victim) with outcome "hit", "insert" (free slot),
    "evict" (victim evicted, expert inserted) or "bypass" (used uncached).
    """
    if policy not in POLICIES:
        raise InputError(f"--policy: unknown policy {policy!r} (expected one of {', '.join(POLICIES)})")
    cached = set()
    last_access = {}      # expert -> (step, expert): accesses ordered by step, then expert id
    request_count = {}    # expert -> requests since the start, hit or miss, surviving eviction
    next_use = NextUse(sets) if policy == "belady" else None
    hits = 0
    requests = 0

    def victim_key(expert, step):
        """Smallest key = evicted first."""
        if policy == "lru":
            return last_access[expert]
        if policy == "lfu":
            return (request_count[expert], last_access[expert], expert)
        # belady: farthest next request first, then lowest id
        return (-next_use.after(expert, step), expert)

    for step, requested in enumerate(sets):
        in_request = set(requested)
        for expert in requested:  # ascending id
            requests += 1
            request_count[expert] = request_count.get(expert, 0) + 1
            if expert in cached:
                hits += 1
                last_access[expert] = (step, expert)
                outcome, victim = "hit", None
            elif len(cached) < capacity:
                cached.add(expert)
                last_access[expert] = (step, expert)
                outcome, victim = "insert", None
            else:
                candidates = [e for e in cached if e not in in_request]
                if candidates:
                    victim = min(candidates, key=lambda e: victim_key(e, step))
                    cached.remove(victim)
                    cached.add(expert)
                    last_access[expert] = (step, expert)
                    outcome = "evict"
                else:
                    outcome, victim = "bypass", None
            assert len(cached) <= capacity
            if log is not None:
                log.append((step, expert, outcome, victim))
    return hits, requests


# ---------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------

def run_grid(routing, batches, caches, policies):
    """Replay every (batch, cache, policy); request sets are built once per batch."""
    lengths = [len(tokens) for tokens in routing[0]]
    results = []
    for batch in batches:
        steps = schedule_steps(lengths, batch)
        sets_per_layer = [request_sets(layer_routing, steps) for layer_routing in routing]
        for cache in caches:
            for policy in policies:
                hits = requests = 0
                for sets in sets_per_layer:
                    layer_hits, layer_requests = replay_layer(sets, cache, policy)
                    hits += layer_hits
                    requests += layer_requests
                results.append({"batch": batch, "cache": cache, "policy": policy, "hits": hits,
                                "requests": requests, "hitRate": hits / requests})
    return results


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse prints a usage block on error; the contract here is one stderr line, exit 2."""

    def error(self, message):
        raise InputError(message)


def positive_int(option, text):
    if not text.isdigit() or not text.isascii() or int(text) < 1:
        raise InputError(f"{option}: {text!r} is not a positive integer")
    return int(text)


def int_list(option, text):
    items = text.split(",")
    if any(item == "" for item in items):
        raise InputError(f"{option}: {text!r} has an empty item (expected e.g. 1,4,16)")
    return [positive_int(option, item) for item in items]


def policy_list(text):
    items = text.split(",")
    for item in items:
        if item not in POLICIES:
            raise InputError(f"--policy: unknown policy {item!r} (expected one of {', '.join(POLICIES)})")
    return items


def parse_args(argv):
    parser = OneLineArgumentParser(description="Reference expert-cache replay over ESFT traces.")
    parser.add_argument("--esft", required=True, help="folder with expert_weights_<L>.txt")
    parser.add_argument("--batch", required=True, help="comma-separated batch sizes")
    parser.add_argument("--cache", required=True, help="comma-separated cache slots per layer")
    parser.add_argument("--policy", required=True, help="comma-separated: lru, lfu, belady")
    parser.add_argument("--layers", default="26", help="MoE layer files 1..N (default 26)")
    parser.add_argument("--top-k", default="6", help="expert ids per token in the files (default 6)")
    parser.add_argument("--experts", default="64", help="routed experts per layer (default 64)")
    args = parser.parse_args(argv)
    return {
        "esft": args.esft,
        "batches": int_list("--batch", args.batch),
        "caches": int_list("--cache", args.cache),
        "policies": policy_list(args.policy),
        "layers": positive_int("--layers", args.layers),
        "top_k": positive_int("--top-k", args.top_k),
        "experts": positive_int("--experts", args.experts),
    }


def main(argv):
    try:
        options = parse_args(argv)
        routing = read_esft(options["esft"], options["layers"], options["top_k"], options["experts"])
        results = run_grid(routing, options["batches"], options["caches"], options["policies"])
    except InputError as error:
        print(f"replay.py: {error}", file=sys.stderr)
        return 2
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
