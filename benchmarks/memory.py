"""Resident memory of a jaxal run, round by round (issue 9, item 4).

Runs the CLI in a child process and samples its ``VmRSS`` (``/proc``) every
``--interval`` seconds; each time ``results.csv`` gains a round's rows it
records the RSS then and the peak so far, so growth across rounds and across
strategies shows directly. Prints one row per (strategy, round) and the peak
(``ru_maxrss`` of the child).

    .venv/bin/python benchmarks/memory.py -- --config=configs/digits.py
    .venv/bin/python benchmarks/memory.py -- --config=configs/mnist_bald.py --config.num_seeds=1

Everything after ``--`` goes to ``python -m jaxal`` (``--workdir`` defaults to
a temporary folder, ``--overwrite --no_progress`` are added).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--json", default=None)
    ap.add_argument("jaxal_args", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    extra = [a for a in args.jaxal_args if a != "--"]
    workdir = next((a.split("=", 1)[1] for a in extra if a.startswith("--workdir=")), None)
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="jaxal_memory_")
        extra.append(f"--workdir={workdir}")
    cmd = [sys.executable, "-m", "jaxal", *extra, "--overwrite", "--no_progress"]
    results = os.path.join(workdir, "results.csv")
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    t0, peak, seen, rows = time.perf_counter(), 0.0, 0, []
    while child.poll() is None:
        now = rss_mb(child.pid)
        if now is not None:
            peak = max(peak, now)
        if os.path.exists(results):
            with open(results) as f:
                lines = list(csv.DictReader(f))
            # One row per (strategy, seed, round); a round is done when all seeds are.
            rounds = {}
            for r in lines:
                rounds.setdefault((r["strategy"], int(r["round"])), 0)
                rounds[(r["strategy"], int(r["round"]))] += 1
            if len(rounds) > seen:
                for key in sorted(rounds, key=list(rounds).index)[seen:]:
                    rows.append((*key, round(time.perf_counter() - t0, 1), now, peak))
                seen = len(rounds)
        time.sleep(args.interval)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"command: {' '.join(cmd)}")
    print("| strategy | round | t (s) | RSS (MB) | peak so far (MB) |")
    print("|---|---:|---:|---:|---:|")
    for s, r, t, now, pk in rows:
        print(f"| {s} | {r} | {t} | {now:.0f} | {pk:.0f} |")
    print(f"exit {child.returncode}; ru_maxrss {usage.ru_maxrss / 1024:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cmd": cmd, "rows": rows, "maxrss_mb": usage.ru_maxrss / 1024}, f)


if __name__ == "__main__":
    main()
