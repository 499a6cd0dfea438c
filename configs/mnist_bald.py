"""Bayesian active learning on the bundled MNIST-5k with the small CNN
(Gal et al. 2017 setting, scaled down): BALD, max-entropy and variation ratios
with MC dropout against random.

Expected runtime on a 2-core CPU: full ~7 min (4 strategies x 3 seeds x 19
rounds: 400 s on a 2-core AMD EPYC, 2026-12-08; it was ~37 min in 2026-11,
before the training-speed work of issue 9), smoke ~30 s. On a GPU use the
same command.

    python -m jaxal --config=configs/mnist_bald.py --workdir=runs/mnist_bald
    python -m jaxal --config=configs/mnist_bald.py:smoke --workdir=runs/smoke
"""

from jaxal.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.dataset.name = "mnist5k"
    c.model.name = "cnn"
    c.model.dropout = 0.5
    c.model.conv_dropout = 0.25
    c.strategy = "random,entropy,variation_ratios,bald"
    c.num_seeds = 3
    c.initial.strategy = "class_balanced"
    c.initial.per_class = 2
    c.query_size = 10
    c.budget = 200
    c.mc.samples = 20
    c.mc.mode = "head"  # all dropout of the cnn is after its conv trunk: exact and cheaper
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3
    c.train.epochs = 50
    c.train.batch_size = 64
    if arg == "smoke":
        c.strategy = "random,bald"
        c.num_seeds = 2
        c.budget = 40
        c.train.epochs = 3
        c.mc.samples = 4
    elif arg not in (None, ""):
        raise ValueError(f"unknown variant {arg!r} of configs/mnist_bald.py; allowed: smoke")
    return c
