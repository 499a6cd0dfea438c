"""Record the saved-pools baselines that ``tests/test_baselines.py`` compares against.

Run from the repository root, only when a change is *meant* to alter results
(say so in the commit that re-baselines):

    python tests/baselines/make.py            # the CASES
    python tests/baselines/make.py NAME ...   # named cases, e.g. of FULL_BATCHES

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

# (name, config file, variant, config overrides)
CASES = [
    ("digits", "configs/digits.py", "", {}),
    ("mnist_bald_smoke", "configs/mnist_bald.py", "smoke", {}),
]
# The same runs with every batch in the full shape (batch_buckets=False).
# mnist_bald_smoke and mnist_bald_smoke_full_batches were re-recorded (on an
# Intel Xeon) when dropout got packed masks (jaxal.models.dropout): other masks,
# so other pools and metrics. The rest of this history is of the digits pair.
# Both were first recorded at 57abcde, before buckets, and re-recorded after
# bb5eeba/bb30334 (one fit program with every bucket's guarded last step; the
# seed loop's one-dispatch split/stack and grouped MC passes): digits moved 2
# entropy picks of one seed's last round (a near-tie, the same swap as with
# buckets), mnist_bald_smoke only NLLs (<= 5e-7 relative); accuracies and all
# other orders unchanged.
FULL_BATCHES = [
    ("digits_full_batches", "configs/digits.py", "", {"train.batch_buckets": False}),
    ("mnist_bald_smoke_full_batches", "configs/mnist_bald.py", "smoke", {"train.batch_buckets": False}),  # noqa: E501
]
METRICS = ("num_labeled", "test_accuracy", "test_nll", "train_epochs", "train_accuracy")


def load_config(path: str, variant: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("cfg", os.path.join(REPO, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(variant)


def run_case(
    path: str, variant: str, workdir: str, num_devices: int = 0, overrides: dict | None = None
) -> dict:
    """``{"<strategy>/order": [S, budget], "<strategy>/<metric>": [S, R], "seeds": [S]}``."""
    import numpy as np

    from jaxal.experiment import run_experiment

    config = load_config(path, variant)
    for dotted, value in (overrides or {}).items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
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

    names = set(sys.argv[1:]) or {c[0] for c in CASES}  # the full-batch ones are history
    for name, path, variant, overrides in CASES + FULL_BATCHES:
        if name not in names:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            arrays = run_case(path, variant, os.path.join(tmp, "run"), overrides=overrides)
        np.savez(os.path.join(HERE, f"{name}.npz"), **arrays)
        print(f"wrote tests/baselines/{name}.npz ({len(arrays)} arrays)", file=sys.stderr)


if __name__ == "__main__":
    main()
