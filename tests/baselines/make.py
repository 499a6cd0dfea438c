"""Record the saved-pools baselines that ``tests/test_baselines.py`` compares against.

Run from the repository root, only when a change is *meant* to alter results
(say so in the commit that re-baselines):

    python tests/baselines/make.py

Writes ``tests/baselines/<name>.npz`` per config: every strategy's acquisition
order ``[S, budget]`` and the per-(strategy, seed, round) metrics at full
float precision, from ``run_experiment`` on one CPU device.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# (name, config file, variant)
CASES = [
    ("digits", "configs/digits.py", ""),
    ("mnist_bald_smoke", "configs/mnist_bald.py", "smoke"),
]
METRICS = ("num_labeled", "test_accuracy", "test_nll", "train_epochs", "train_accuracy")


def load_config(path: str, variant: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("cfg", os.path.join(REPO, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(variant)


def run_case(path: str, variant: str, workdir: str, num_devices: int = 0) -> dict:
    """``{"<strategy>/order": [S, budget], "<strategy>/<metric>": [S, R], "seeds": [S]}``."""
    import numpy as np

    from jaxal.experiment import run_experiment

    config = load_config(path, variant)
    if num_devices:
        config.num_devices = num_devices
    rows = run_experiment(config, workdir, progress=False)
    npz = np.load(os.path.join(workdir, "labeled_indices.npz"))
    out = {k: npz[k] for k in npz.files if k.endswith("/order") or k == "seeds"}
    seeds = list(npz["seeds"])
    for name in dict.fromkeys(r["strategy"] for r in rows):
        sub = [r for r in rows if r["strategy"] == name]
        rounds = sorted({r["round"] for r in sub})
        for m in METRICS:
            table = np.zeros((len(seeds), len(rounds)), np.float64)
            for r in sub:
                table[seeds.index(r["seed"]), rounds.index(r["round"])] = r[m]
            out[f"{name}/{m}"] = table
    return out


def main() -> None:
    import numpy as np

    for name, path, variant in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            arrays = run_case(path, variant, os.path.join(tmp, "run"))
        np.savez(os.path.join(HERE, f"{name}.npz"), **arrays)
        print(f"wrote tests/baselines/{name}.npz ({len(arrays)} arrays)", file=sys.stderr)


if __name__ == "__main__":
    main()
