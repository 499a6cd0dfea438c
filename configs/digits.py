"""Uncertainty sampling vs random on the bundled 8×8 digits (MLP), several seeds.

The quickstart experiment: needs no download. Expected runtime on a 2-core CPU:
full ~1 min (4 strategies x 4 seeds x 10 rounds), smoke ~15 s.

    python -m jaxal --config=configs/digits.py --workdir=runs/digits
    python -m jaxal --config=configs/digits.py:smoke --workdir=runs/smoke
    jaxal sweep --config=configs/digits.py:smoke --workdir=runs/sweep   # get_hyper below
"""

from jaxal.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.dataset.name = "digits"
    c.model.name = "mlp"
    c.model.hidden = (128,)
    c.model.dropout = 0.0
    c.strategy = "random,least_confidence,margin,entropy"
    c.num_seeds = 4
    c.initial.strategy = "class_balanced"
    c.initial.per_class = 2
    c.query_size = 20
    c.budget = 200
    c.train.optimizer = "adam"
    c.train.learning_rate = 3e-3
    c.train.epochs = 60
    c.train.batch_size = 32
    if arg == "smoke":
        c.strategy = "random,entropy"
        c.num_seeds = 2
        c.query_size = 10
        c.budget = 50
        c.train.epochs = 20
    elif arg not in (None, ""):
        raise ValueError(f"unknown variant {arg!r} of configs/digits.py; allowed: smoke")
    return c


def get_hyper(h):
    """``jaxal sweep``: one run per (strategy, learning rate), all seeds in each."""
    return h.product(
        [
            h.sweep("config.strategy", ["margin", "entropy"]),
            h.sweep("config.train.learning_rate", [1e-3, 3e-3]),
        ]
    )
