#!/usr/bin/env python3
"""Runs a command and records its wall time and peak resident memory (the child's ru_maxrss).

  python3 tools/gpu/measure.py OUT.json CMD [ARGS...]

The command's output passes through; OUT.json gets {"cmd", "seconds", "peakRssGiB", "exitCode"}.
Used on the GPU machine, where /usr/bin/time may be absent.
"""
import json
import resource
import subprocess
import sys
import time


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, cmd = sys.argv[1], sys.argv[2:]
    t0 = time.perf_counter()
    code = subprocess.run(cmd).returncode
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    record = {"cmd": cmd, "seconds": round(seconds, 3), "peakRssGiB": round(peak_kib / 2**20, 3), "exitCode": code}
    with open(out, "w") as f:
        json.dump(record, f)
    print(f"measure: {' '.join(cmd[:3])}... {seconds:.2f} s, peak RSS {record['peakRssGiB']} GiB, exit {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
