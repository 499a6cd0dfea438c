"""The hyperparameter grid as an array axis: G settings x S seeds in one process.

Runs the same small active-learning experiment (entropy sampling, 4 rounds,
SGD with momentum) for the four (learning rate, weight decay) settings of
Huseljic et al. (2023), Table 1, and 3 seeds, three ways, each in fresh
processes run one after another:

* ``grid``:  one process, ``config.grid`` = the 4 settings, ``num_seeds=3``
             (12 lanes in one program per phase; ``seed_execution=auto``);
* ``4 x 3``: 4 processes, one per setting, 3 seeds each;
* ``12 x 1``: 12 processes, one per (setting, seed).

Reports total wall time (start-up + compile + run) and the ratios. Every lane
gets the pools and metrics of its single-setting, single-seed run
(``tests/test_grid.py``), so the three compute the same results.

    python benchmarks/grid.py              # MLP and CNN (~10 min on 2 cores)
    python benchmarks/grid.py --models mlp # MLP only (~3 min)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from seeds import WORKLOADS  # noqa: E402

SETTINGS = [(0.001, 0.05), (0.01, 0.0005), (0.01, 0.05), (0.1, 0.005)]  # Table 1


def _grid(settings) -> str:
    return ";".join(f"learning_rate={lr},weight_decay={wd}" for lr, wd in settings)


def worker(model: str, grid: str, num_seeds: int, seed: int) -> dict:
    from jaxal.config import apply_overrides, base_config
    from jaxal.experiment import run_experiment

    t0 = time.perf_counter()
    c = base_config()
    c.strategy = "entropy"
    c.initial.strategy = "random"
    c.num_seeds = num_seeds
    c.seed = seed
    c.checkpoint.enabled = False
    c.train.optimizer = "sgd"
    c.train.momentum = 0.9
    c = apply_overrides(c, WORKLOADS[model])
    if ";" in grid:
        c.grid = grid
    else:  # one setting: as a plain run would set it
        lr, wd = (float(p.split("=")[1]) for p in grid.split(","))
        c.train.learning_rate, c.train.weight_decay = lr, wd
    import tempfile

    with tempfile.TemporaryDirectory() as w:
        rows = run_experiment(c, w, progress=False, console=_quiet())
    final = [r["test_accuracy"] for r in rows if r["round"] == max(x["round"] for x in rows)]
    return {"run_seconds": time.perf_counter() - t0, "lanes": len(final)}


def _quiet():
    from rich.console import Console

    return Console(quiet=True)


def _spawn(model, grid, s, seed=0) -> float:
    cmd = [sys.executable, __file__, "--worker", model, grid, str(s), str(seed)]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        model, grid, s, seed = args.worker
        print(json.dumps(worker(model, grid, int(s), int(seed))))
        return
    print(f"# load average at start: {os.getloadavg()}")
    for model in args.models.split(","):
        one = _spawn(model, _grid(SETTINGS), 3)
        per_setting = sum(_spawn(model, _grid([st]), 3) for st in SETTINGS)
        single = sum(_spawn(model, _grid([st]), 1, seed=i) for st in SETTINGS for i in range(3))
        print(f"\n## {model}: G = 4 settings x S = 3 seeds")
        print("| path | processes | wall s | / grid |")
        print("|---|---|---|---|")
        print(f"| grid (one program) | 1 | {one:.1f} | 1.00 |")
        r4, r12 = per_setting / one, single / one
        print(f"| one setting per process, 3 seeds | 4 | {per_setting:.1f} | {r4:.2f} |")
        print(f"| one (setting, seed) per process | 12 | {single:.1f} | {r12:.2f} |", flush=True)
    print(f"\n# load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
