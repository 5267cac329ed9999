"""Tests of the reference replay on hand-made inputs whose answers are worked out by hand.

Run: python3 -m unittest discover -s tools/reference-sim
Log tuples are (step, expert, outcome, victim); see replay.replay_layer.
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

import replay

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "replay.py")
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
ESFT_DIR = os.path.join(REPO_ROOT, "..", "shared", "traces", "esft")


def replay_with_log(sets, capacity, policy):
    log = []
    hits, requests = replay.replay_layer(sets, capacity, policy, log)
    return hits, requests, log


def esft_line(tokens):
    """Token id tuples -> one ESFT line: ids, an empty field, one weight per id."""
    ids = [str(e) for token in tokens for e in token]
    return "\t".join(ids + [""] + ["0.1000"] * len(ids))


def write_esft(directory, layers):
    """layers[l][s] = list of token tuples of sequence s at MoE layer l + 1."""
    for index, sequences in enumerate(layers, start=1):
        with open(os.path.join(directory, f"expert_weights_{index}.txt"), "w", encoding="utf-8") as f:
            f.write("".join(esft_line(tokens) + "\n" for tokens in sequences))


def run_cli(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=120)


class ScheduleTest(unittest.TestCase):
    def test_lanes_refill_on_the_next_step(self):
        # Lengths 3,1,2,1 on 2 lanes. Step 0: s0 and s1 start; s1 ends. Step 1: lane 1 takes s2.
        # Step 2: s0 and s2 both end. Step 3: s3 on one lane, the other idle; then nothing remains.
        self.assertEqual(replay.schedule_steps([3, 1, 2, 1], 2), [
            [(0, 0), (1, 0)],
            [(0, 1), (2, 0)],
            [(0, 2), (2, 1)],
            [(3, 0)],
        ])

    def test_several_short_sequences_through_one_lane(self):
        # Lengths 1,3,1,1 on 2 lanes: lane 0 runs s0, s2, s3 one per step beside s1.
        self.assertEqual(replay.schedule_steps([1, 3, 1, 1], 2), [
            [(0, 0), (1, 0)],
            [(2, 0), (1, 1)],
            [(3, 0), (1, 2)],
        ])

    def test_more_lanes_than_sequences(self):
        self.assertEqual(replay.schedule_steps([2, 1], 4), [[(0, 0), (1, 0)], [(0, 1)]])

    def test_batch_one_is_file_order(self):
        self.assertEqual(replay.schedule_steps([2, 1], 1), [[(0, 0)], [(0, 1)], [(1, 0)]])

    def test_request_set_is_a_sorted_union_without_duplicates(self):
        layer = [[(5, 1)], [(1, 3)]]
        self.assertEqual(replay.request_sets(layer, [[(0, 0), (1, 0)]]), [[1, 3, 5]])


class LruTest(unittest.TestCase):
    def test_recency_is_ordered_by_step_then_expert_id(self):
        # C=3.
        # t0 {3,4}: insert 3 @(0,3), insert 4 @(0,4).
        # t1 {1,3}: insert 1 @(1,1) (free slot), 3 hit @(1,3).
        # t2 {0,5}: 0 misses; LRU of {1@(1,1), 3@(1,3), 4@(0,4)} is 4. 5 misses; candidates not
        #           in R: {1@(1,1), 3@(1,3)} -> 1 (same step, lower id accessed first).
        # t3 {1,3}: 1 misses; candidates {0@(2,0), 5@(2,5)} -> 0. 3 hit.
        # t4 {4,5}: 4 misses; candidates {1@(3,1), 3@(3,3)} -> 1. 5 hit.
        # FIFO would evict 3 at t2 instead (inserted before 4 and 1).
        hits, requests, log = replay_with_log([[3, 4], [1, 3], [0, 5], [1, 3], [4, 5]], 3, "lru")
        self.assertEqual(log, [
            (0, 3, "insert", None), (0, 4, "insert", None),
            (1, 1, "insert", None), (1, 3, "hit", None),
            (2, 0, "evict", 4), (2, 5, "evict", 1),
            (3, 1, "evict", 0), (3, 3, "hit", None),
            (4, 4, "evict", 1), (4, 5, "hit", None),
        ])
        self.assertEqual((hits, requests), (3, 10))

    def test_bypass_when_every_cached_expert_is_requested(self):
        # C=1.
        # t0 {0,1}: insert 0; 1 misses, the only cached expert (0) is in R -> bypass.
        # t1 {0,2}: 0 hit; 2 bypass (0 in R).
        # t2 {1,2}: 1 misses, 0 not in R -> evict 0, insert 1; 2 bypass (1 in R).
        hits, requests, log = replay_with_log([[0, 1], [0, 2], [1, 2]], 1, "lru")
        self.assertEqual(log, [
            (0, 0, "insert", None), (0, 1, "bypass", None),
            (1, 0, "hit", None), (1, 2, "bypass", None),
            (2, 1, "evict", 0), (2, 2, "bypass", None),
        ])
        self.assertEqual((hits, requests), (1, 6))


class LfuTest(unittest.TestCase):
    def test_counts_survive_eviction(self):
        # C=2, one expert per step. Counts after each request in brackets.
        # t0 {0}: insert 0 [0:1].  t1 {0}: hit [0:2].  t2 {1}: insert 1 [1:1].
        # t3 {2}: [2:1] candidates 0 (2 requests), 1 (1) -> evict 1.  (LRU would evict 0.)
        # t4 {1}: [1:2] candidates 0 (2, last (1,0)), 2 (1) -> evict 2.
        # t5 {3}: [3:1] candidates 0 (2, last (1,0)), 1 (2, last (4,1)): tie on count, 0 is least
        #         recent -> evict 0. Had eviction reset 1's count, 1 would go instead.
        # t6 {2}: [2:2] candidates 1 (2), 3 (1) -> evict 3.
        hits, requests, log = replay_with_log([[0], [0], [1], [2], [1], [3], [2]], 2, "lfu")
        self.assertEqual(log, [
            (0, 0, "insert", None), (1, 0, "hit", None), (2, 1, "insert", None),
            (3, 2, "evict", 1), (4, 1, "evict", 2), (5, 3, "evict", 0), (6, 2, "evict", 3),
        ])
        self.assertEqual((hits, requests), (1, 7))

    def test_count_tie_goes_to_least_recent_and_bypasses_count(self):
        # C=2, three experts per step.
        # t0 {0,1,2}: insert 0, insert 1, 2 bypass (0 and 1 in R). Counts 0:1 1:1 2:1.
        # t1 {2,3,4}: 2 [2:2] misses; candidates 0 (1, last (0,0)), 1 (1, last (0,1)): count tie,
        #             0 is least recent -> evict 0. 3 [3:1]: candidates {1} -> evict 1.
        #             4 [4:1]: cached {2,3} all in R -> bypass.
        # t2 {0,1,4}: 0 [0:2]: candidates 2 (2: its t0 bypass counts), 3 (1) -> evict 3.
        #             Without counting the bypass, 2 would tie with 3 at 1 and go (less recent).
        #             1 [1:2]: candidates {2} -> evict 2. 4 [4:2]: cached {0,1} in R -> bypass.
        # t3 {0,1,5}: 0 hit, 1 hit, 5 bypass.
        sets = [[0, 1, 2], [2, 3, 4], [0, 1, 4], [0, 1, 5]]
        hits, requests, log = replay_with_log(sets, 2, "lfu")
        self.assertEqual(log, [
            (0, 0, "insert", None), (0, 1, "insert", None), (0, 2, "bypass", None),
            (1, 2, "evict", 0), (1, 3, "evict", 1), (1, 4, "bypass", None),
            (2, 0, "evict", 3), (2, 1, "evict", 2), (2, 4, "bypass", None),
            (3, 0, "hit", None), (3, 1, "hit", None), (3, 5, "bypass", None),
        ])
        self.assertEqual((hits, requests), (2, 12))


class BeladyTest(unittest.TestCase):
    def test_never_again_is_farthest_and_ties_go_to_lowest_id(self):
        # C=2, requests 0 1 2 1 3 2 4 3 5 (one per step).
        # t2 {2}: 0 never again, 1 next at t3 -> evict 0 (never = infinitely far).
        # t3 {1}: hit.  t4 {3}: 1 never, 2 next at t5 -> evict 1.  t5 {2}: hit.
        # t6 {4}: 2 never, 3 next at t7 -> evict 2.  t7 {3}: hit.
        # t8 {5}: 3 and 4 both never again -> tie, lowest id 3 goes.
        sets = [[0], [1], [2], [1], [3], [2], [4], [3], [5]]
        hits, requests, log = replay_with_log(sets, 2, "belady")
        self.assertEqual(log, [
            (0, 0, "insert", None), (1, 1, "insert", None), (2, 2, "evict", 0),
            (3, 1, "hit", None), (4, 3, "evict", 1), (5, 2, "hit", None),
            (6, 4, "evict", 2), (7, 3, "hit", None), (8, 5, "evict", 3),
        ])
        self.assertEqual((hits, requests), (3, 9))

    def test_equal_finite_next_use_goes_to_lowest_id(self):
        # C=3.
        # t0 {0,1,2}: three inserts.
        # t1 {3}: next uses 0 -> t3, 1 -> t3, 2 -> t2: farthest are 0 and 1 (tie) -> evict 0.
        # t2 {2}: hit.
        # t3 {0,1}: 0 misses; candidates not in R: 2 (never), 3 (never) -> evict 2. 1 hit.
        sets = [[0, 1, 2], [3], [2], [0, 1]]
        hits, requests, log = replay_with_log(sets, 3, "belady")
        self.assertEqual(log, [
            (0, 0, "insert", None), (0, 1, "insert", None), (0, 2, "insert", None),
            (1, 3, "evict", 0), (2, 2, "hit", None), (3, 0, "evict", 2), (3, 1, "hit", None),
        ])
        self.assertEqual((hits, requests), (2, 7))

    def test_belady_is_optimal_for_single_requests(self):
        # With one request per step and no bypass this is classic paging, where Belady's MIN
        # is optimal: no other policy may hit more often on any sequence.
        rng = random.Random(7)
        for trial in range(200):
            sets = [[rng.randrange(6)] for _ in range(rng.randrange(1, 40))]
            capacity = rng.randrange(1, 5)
            best, _ = replay.replay_layer(sets, capacity, "belady")
            for policy in ("lru", "lfu"):
                other, _ = replay.replay_layer(sets, capacity, policy)
                self.assertGreaterEqual(best, other, f"trial {trial}: {sets} C={capacity} {policy}")


# Two MoE layers, top-2 of 8 experts, three sequences of 2, 1 and 2 tokens.
TWO_LAYERS = [
    [[(0, 1), (1, 2)], [(1, 3)], [(2, 3), (0, 3)]],
    [[(4, 5), (4, 5)], [(4, 5)], [(4, 6), (5, 6)]],
]


class GridTest(unittest.TestCase):
    def test_batch_two_with_lane_refill_and_per_layer_caches(self):
        # B=2: step 0 = s0t0 + s1t0; s1 ends, lane 1 takes s2: step 1 = s0t1 + s2t0; step 2 = s2t1.
        # Layer 1, C=2, lru:
        #   step 0 R={0,1}|{1,3}={0,1,3} (1 counted once): insert 0, insert 1, 3 bypass.
        #   step 1 R={1,2}|{2,3}={1,2,3}: 1 hit; 2 evicts 0 (only candidate); 3 bypass.
        #   step 2 R={0,3}: 0 evicts 1 (1@(1,1) older than 2@(1,2)); 3 evicts 2.  -> 1 hit / 8.
        # Layer 2, own empty cache:
        #   step 0 R={4,5}: insert, insert.  step 1 R={4,5,6}: hit, hit, 6 bypass.
        #   step 2 R={5,6}: 5 hit, 6 evicts 4.  -> 3 hits / 7.
        # B=1 (5 steps: s0t0 s0t1 s1t0 s2t0 s2t1):
        #   layer 1: {0,1} ins ins; {1,2} hit, 2 evicts 0; {1,3} hit, 3 evicts 2;
        #            {2,3} 2 evicts 1, 3 hit; {0,3} 0 evicts 2, 3 hit  -> 4 hits / 10.
        #   layer 2: {4,5} ins ins; {4,5} 2 hits; {4,5} 2 hits; {4,6} 4 hit, 6 evicts 5;
        #            {5,6} 5 evicts 4, 6 hit  -> 6 hits / 10.
        with tempfile.TemporaryDirectory() as directory:
            write_esft(directory, TWO_LAYERS)
            routing = replay.read_esft(directory, layers=2, top_k=2, experts=8)
        results = replay.run_grid(routing, [1, 2], [2], ["lru"])
        self.assertEqual(results, [
            {"batch": 1, "cache": 2, "policy": "lru", "hits": 10, "requests": 20, "hitRate": 0.5},
            {"batch": 2, "cache": 2, "policy": "lru", "hits": 4, "requests": 15, "hitRate": 4 / 15},
        ])

    def test_cli_prints_json_in_batch_cache_policy_order(self):
        with tempfile.TemporaryDirectory() as directory:
            write_esft(directory, TWO_LAYERS)
            result = run_cli("--esft", directory, "--batch", "1,2", "--cache", "2,1",
                             "--policy", "lru,belady", "--layers", "2", "--top-k", "2", "--experts", "8")
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = json.loads(result.stdout)
        self.assertEqual([(r["batch"], r["cache"], r["policy"]) for r in rows], [
            (1, 2, "lru"), (1, 2, "belady"), (1, 1, "lru"), (1, 1, "belady"),
            (2, 2, "lru"), (2, 2, "belady"), (2, 1, "lru"), (2, 1, "belady"),
        ])
        self.assertEqual(list(rows[0].keys()), ["batch", "cache", "policy", "hits", "requests", "hitRate"])
        self.assertEqual((rows[0]["hits"], rows[0]["requests"]), (10, 20))  # worked out above
        self.assertEqual((rows[4]["hits"], rows[4]["requests"]), (4, 15))
        for row in rows:
            self.assertEqual(row["hitRate"], row["hits"] / row["requests"])


class BadInputTest(unittest.TestCase):
    """Every bad input: exit 2, nothing on stdout, one stderr line naming the file or option."""

    def run_bad(self, layers, extra_args, expected_fragments, write=None):
        with tempfile.TemporaryDirectory() as directory:
            write_esft(directory, layers)
            if write:
                write(directory)
            args = ["--esft", directory, "--batch", "1", "--cache", "2", "--policy", "lru",
                    "--layers", str(len(layers)), "--top-k", "2", "--experts", "8"]
            result = run_cli(*(args + extra_args))
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        self.assertEqual(result.stdout, "")
        lines = result.stderr.strip("\n").split("\n")
        self.assertEqual(len(lines), 1, result.stderr)
        for fragment in expected_fragments:
            self.assertIn(fragment, lines[0])

    def overwrite(self, layer, text):
        def write(directory):
            with open(os.path.join(directory, f"expert_weights_{layer}.txt"), "w", encoding="utf-8") as f:
                f.write(text)
        return write

    def test_missing_folder(self):
        result = run_cli("--esft", "/nonexistent/esft", "--batch", "1", "--cache", "2", "--policy", "lru")
        self.assertEqual(result.returncode, 2)
        self.assertIn("/nonexistent/esft", result.stderr)

    def test_missing_layer_file(self):
        self.run_bad(TWO_LAYERS, ["--layers", "3"], ["expert_weights_3.txt", "cannot read"])

    def test_mismatched_line_counts(self):
        shorter = [TWO_LAYERS[0], TWO_LAYERS[1][:2]]
        self.run_bad(shorter, [], ["expert_weights_2.txt", "2 sequences", "3"])

    def test_mismatched_token_counts(self):
        changed = [TWO_LAYERS[0], [TWO_LAYERS[1][0], [(4, 5), (4, 6)], TWO_LAYERS[1][2]]]
        self.run_bad(changed, [], ["expert_weights_2.txt:2", "2 tokens"])

    def test_id_out_of_range(self):
        self.run_bad(TWO_LAYERS, [], ["expert_weights_1.txt:1", "out of range"],
                     self.overwrite(1, "0\t9\t\t0.1\t0.1\n1\t3\t\t0.1\t0.1\n2\t3\t\t0.1\t0.1\n"))

    def test_id_not_an_integer(self):
        self.run_bad(TWO_LAYERS, [], ["expert_weights_1.txt:2", "'x'"],
                     self.overwrite(1, "0\t1\t\t0.1\t0.1\n1\tx\t\t0.1\t0.1\n2\t3\t\t0.1\t0.1\n"))

    def test_negative_id(self):
        self.run_bad(TWO_LAYERS, [], ["expert_weights_1.txt:1", "'-1'"],
                     self.overwrite(1, "0\t-1\t\t0.1\t0.1\n1\t3\t\t0.1\t0.1\n2\t3\t\t0.1\t0.1\n"))

    def test_repeated_id_within_a_token(self):
        self.run_bad(TWO_LAYERS, [], ["expert_weights_1.txt:1", "repeats"],
                     self.overwrite(1, "0\t0\t\t0.1\t0.1\n1\t3\t\t0.1\t0.1\n2\t3\t\t0.1\t0.1\n"))

    def test_ids_not_a_multiple_of_top_k(self):
        self.run_bad(TWO_LAYERS, [], ["expert_weights_1.txt:1", "multiple of --top-k"],
                     self.overwrite(1, "0\t1\t2\t\t0.1\t0.1\t0.1\n1\t3\t\t0.1\t0.1\n2\t3\t\t0.1\t0.1\n"))

    def test_missing_separator(self):
        self.run_bad(TWO_LAYERS, [], ["expert_weights_1.txt:1", "no empty field"],
                     self.overwrite(1, "0\t1\n1\t3\t\t0.1\t0.1\n2\t3\t\t0.1\t0.1\n"))

    def test_weight_count_mismatch(self):
        self.run_bad(TWO_LAYERS, [], ["expert_weights_1.txt:1", "2 expert ids but 1 weights"],
                     self.overwrite(1, "0\t1\t\t0.1\n1\t3\t\t0.1\t0.1\n2\t3\t\t0.1\t0.1\n"))

    def test_bad_weight(self):
        self.run_bad(TWO_LAYERS, [], ["expert_weights_1.txt:1", "'abc'"],
                     self.overwrite(1, "0\t1\t\t0.1\tabc\n1\t3\t\t0.1\t0.1\n2\t3\t\t0.1\t0.1\n"))

    def test_empty_sequence(self):
        self.run_bad(TWO_LAYERS, [], ["expert_weights_1.txt:2", "empty sequence"],
                     self.overwrite(1, "0\t1\t\t0.1\t0.1\n\t\n2\t3\t\t0.1\t0.1\n"))

    def test_empty_file(self):
        self.run_bad(TWO_LAYERS, [], ["expert_weights_1.txt", "no sequences"], self.overwrite(1, ""))

    def test_unknown_policy(self):
        self.run_bad(TWO_LAYERS, ["--policy", "lru,fifo"], ["--policy", "'fifo'"])

    def test_zero_cache(self):
        self.run_bad(TWO_LAYERS, ["--cache", "0"], ["--cache", "'0'"])

    def test_bad_batch_list(self):
        self.run_bad(TWO_LAYERS, ["--batch", "1,,4"], ["--batch", "empty item"])

    def test_missing_required_option(self):
        result = run_cli("--batch", "1", "--cache", "2", "--policy", "lru")
        self.assertEqual(result.returncode, 2)
        self.assertEqual(len(result.stderr.strip("\n").split("\n")), 1, result.stderr)
        self.assertIn("--esft", result.stderr)


@unittest.skipUnless(os.path.isdir(os.path.join(ESFT_DIR, "intent")),
                     f"ESFT traces not found at {os.path.normpath(ESFT_DIR)}; skipping real-trace checks")
class RealTraceTest(unittest.TestCase):
    def test_intent_request_count_and_belady_on_top(self):
        routing = replay.read_esft(os.path.join(ESFT_DIR, "intent"), layers=26, top_k=6, experts=64)
        # The README gives 127 sequences and 8,222 tokens per layer; at batch 1 every token is
        # its own step, so each layer sees exactly 6 distinct requests per token.
        self.assertEqual(len(routing[0]), 127)
        self.assertEqual(sum(len(tokens) for tokens in routing[0]), 8222)
        rows = replay.run_grid(routing, [16], [32], ["lru", "lfu", "belady"])
        self.assertEqual(len({row["requests"] for row in rows}), 1)
        lru, lfu, belady = (row["hits"] for row in rows)
        self.assertGreaterEqual(belady, lru)
        self.assertGreaterEqual(belady, lfu)


if __name__ == "__main__":
    unittest.main()
