"""Labeled pools out of a finished run, to train other models on (export / import).

A finished run's ``labeled_indices.npz`` holds, per series (a strategy, or
``strategy@setting`` in a grid run), ``<series>/order`` ``[S, budget]``: the
pool indices each seed labeled, in acquisition order. :func:`export` writes the
first ``num_labels`` of them as an ``int32 [S, num_labels]`` ``.npy`` (row ``i``
= the run's seed ``seeds[i]``), plus a ``.json`` beside it saying where they
came from. Importing is the initial-pool strategy ``from_file``
(:mod:`jaxal.initial`)::

    python -m jaxal.pools export runs/hp_role \\
        --series "entropy@learning_rate=0.01,weight_decay=0.0005" --labels 2000 --out pool.npy
    python -m jaxal --config=... --workdir=... --config.initial.strategy=from_file \\
        --config.initial.file=pool.npy --config.budget=2000   # train only, or a larger budget

Row ``i`` of the file starts seed ``config.seed + i`` of the importing run, so
give it the exporting run's seeds (``config.seed``, ``config.num_seeds``) to pair
pools and seeds as they were. Indices are positions in the pool *after* the
``config.dataset`` options (``pool_size``, ``val_size``, ``data_seed``,
``imbalance_factor``): the importing run must use the same dataset options
(the ``.json`` records them). ``python -m jaxal.pools list RUN_DIR`` lists a
run's series.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

INDICES = "labeled_indices.npz"


class PoolError(ValueError):
    """A pool cannot be exported: one line naming what is wrong."""


def _indices_path(workdir: str) -> str:
    if not os.path.isdir(workdir):
        raise PoolError(f"{workdir!r} is not a folder (expected a jaxal run's workdir)")
    path = os.path.join(workdir, INDICES)
    if not os.path.isfile(path):
        done = os.path.isfile(os.path.join(workdir, "DONE"))
        why = "" if done else " (the run is not finished: the file is written at its end)"
        raise PoolError(f"{workdir!r} has no {INDICES}{why}")
    return path


def series_names(workdir: str) -> list[str]:
    """The series of a finished run (``strategy`` or ``strategy@setting``), in file order."""
    with np.load(_indices_path(workdir)) as z:
        return [k[: -len("/order")] for k in z.files if k.endswith("/order")]


def load(workdir: str, series: str, num_labels: int | None = None):
    """``(pools int32 [S, num_labels], seeds int [S])`` of ``series`` in a finished run.

    Row ``i``: the first ``num_labels`` pool indices seed ``seeds[i]`` labeled,
    in acquisition order (``None``: every label of the run).

    Raises:
      PoolError: no such run or series; ``num_labels`` outside ``1..budget``, or
        beyond the labels a seed has (one line).
    """
    with np.load(_indices_path(workdir)) as z:
        key = f"{series}/order"
        if key not in z.files:
            have = [k[: -len("/order")] for k in z.files if k.endswith("/order")]
            raise PoolError(
                f"series {series!r} is not in {workdir!r}; it has: {', '.join(have) or 'none'}"
            )
        order, seeds = np.asarray(z[key]), np.asarray(z["seeds"])
    budget = order.shape[1]
    if num_labels is None:
        num_labels = int((order >= 0).sum(axis=1).min())
    if not 1 <= num_labels <= budget:
        raise PoolError(
            f"--labels {num_labels} is outside 1..{budget} (the run's budget) for {series!r}"
        )
    have = (order >= 0).sum(axis=1)
    short = np.flatnonzero(have < num_labels)
    if len(short):
        i = int(short[0])
        raise PoolError(
            f"seed {int(seeds[i])} of {series!r} labeled {int(have[i])} points, fewer than "
            f"{num_labels} (it stopped early)"
        )
    return np.ascontiguousarray(order[:, :num_labels], np.int32), seeds


def export(workdir: str, series: str, num_labels: int, path: str) -> np.ndarray:
    """Write ``series``'s first ``num_labels`` labels per seed to ``path`` (``.npy``).

    Returns the ``int32 [S, num_labels]`` array written. Beside it, ``path``
    with ``.json`` for ``.npy`` records the source run, series, seeds and the
    run's dataset options (what the indices are positions in).

    Raises:
      PoolError: see :func:`load`; ``path`` not ending in ``.npy``.
    """
    if not path.endswith(".npy"):
        raise PoolError(f"--out {path!r} must end in .npy (read by initial.strategy=from_file)")
    pools, seeds = load(workdir, series, num_labels)
    dataset = None
    cfg_path = os.path.join(workdir, "config.json")
    if os.path.isfile(cfg_path):
        with open(cfg_path) as f:
            dataset = json.load(f).get("dataset")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path[: -len(".npy")] + ".tmp.npy"
    np.save(tmp, pools)
    os.replace(tmp, path)
    meta = {
        "run": os.path.abspath(workdir),
        "series": series,
        "num_labels": int(num_labels),
        "seeds": [int(s) for s in seeds],
        "dataset": dataset,
        "import": (
            f"--config.initial.strategy=from_file --config.initial.file={path} "
            f"--config.seed={int(seeds[0])} --config.num_seeds={len(seeds)}"
        ),
    }
    with open(path[: -len(".npy")] + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    return pools


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m jaxal.pools",
        description="Export the labeled pools of a finished jaxal run (import them with "
        "--config.initial.strategy=from_file --config.initial.file=POOL.npy).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="write one series' first L labels per seed as .npy [S, L]")
    e.add_argument("run_dir")
    e.add_argument("--series", required=True, help="strategy, or strategy@setting in a grid run")
    e.add_argument("--labels", type=int, required=True, help="labels per seed (L)")
    e.add_argument("--out", required=True, help="output .npy path")
    ls = sub.add_parser("list", help="list a finished run's series")
    ls.add_argument("run_dir")
    args = p.parse_args(argv)
    try:
        if args.command == "list":
            for name in series_names(args.run_dir):
                print(name)
            return 0
        pools = export(args.run_dir, args.series, args.labels, args.out)
    except PoolError as err:
        print(f"jaxal.pools: error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {pools.shape[0]} seeds x {pools.shape[1]} pool indices of "
        f"{args.series!r}; import with --config.initial.strategy=from_file "
        f"--config.initial.file={args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
