"""Role of hyperparameters in deep active learning (Huseljic et al. 2023), as one jaxal run.

Every (learning rate, weight decay) setting is a lane of the run's grid
(``config.grid``, :mod:`jaxal.grid`): the settings x seeds train in one
compiled program per phase, and ``results.csv`` / ``labeled_indices.npz`` hold
one series per ``strategy@setting``. ``experiments/hp_role/reoptimize.py``
then re-optimises the hyperparameters on the pools the run collected (the
paper's "BO" column of Table 1).

Variants:

* ``full`` (default): the paper's protocol (Sec. 3, and their code's
  ``configs/*.yaml``): ResNet-18 (CIFAR variant) on CIFAR-10 (tfds); 100
  random initial labels, +100 per round to 4,000 (40 rounds); random, entropy,
  Core-Set and BADGE, BADGE on a random candidate subset of 10,000 unlabeled
  points per round (``badge.yaml: subset_size: 10000``); the four fixed
  settings of Table 1; 3 seeds; SGD with momentum 0.9, 200 epochs, batch 32,
  cosine schedule after a 10-epoch linear warm-up from 0.01 x the rate
  (their ``CosineAnnealingLRLinearWarmup``), random crop (padding 4) + flip;
  the model is re-initialised every round (their ``model.reset_states()``).
  Needs the data (``pip install 'jaxal[tfds]'``, ``--config.dataset.download=True``
  on a machine with internet or a prepared ``--config.dataset.data_dir``) and a GPU.
* ``fig1``: as ``full`` with the nine settings of their code's grid
  (lr in {0.001, 0.01, 0.1} x wd in {0.0005, 0.005, 0.05},
  ``slurm/cifar10/*.sh``; Fig. 1 shows eight of them, the text does not say
  which), random and BADGE only (Fig. 1 a, b).
* ``smoke``: bundled digits (8x8), a one-hidden-layer MLP (64 units), 20 -> 200
  labels in steps of 20, the four Table-1 settings, 2 seeds, 30 epochs; the
  same four strategies (BADGE on 500 candidates). ~1-2 min on a 2-core CPU.

::

    python -m jaxal --config=experiments/hp_role/config.py:smoke --workdir=runs/hp_role_smoke
    python experiments/hp_role/reoptimize.py runs/hp_role_smoke --labels 100,200 \\
        --out runs/hp_role_smoke/reopt
    python -m jaxal --config=experiments/hp_role/config.py:full --workdir=runs/hp_role
    python experiments/hp_role/reoptimize.py runs/hp_role --labels 2000,4000 \\
        --out runs/hp_role/reopt
"""

from jaxal.config import base_config

VARIANTS = ("full", "fig1", "smoke")

# Table 1's HP 1..4, in the paper's order: (learning rate, weight decay).
TABLE1 = ((0.001, 0.05), (0.01, 0.0005), (0.01, 0.05), (0.1, 0.005))
# Their code's grid (slurm/cifar10/*.sh): lr x wd, 9 settings.
CODE_GRID = tuple((lr, wd) for lr in (0.001, 0.01, 0.1) for wd in (0.0005, 0.005, 0.05))
# The strategies of Table 1, labelled as in results.csv; BADGE scores a random
# subset of 10,000 unlabeled candidates each round, as in their badge.yaml.
STRATEGIES = "random,entropy,coreset,badge=subsample(base=badge,m=10000)"
FIG1_STRATEGIES = "random,badge=subsample(base=badge,m=10000)"


def grid(settings) -> str:
    """``config.grid`` for ``(learning rate, weight decay)`` pairs."""
    return ";".join(f"learning_rate={lr},weight_decay={wd}" for lr, wd in settings)


def get_config(arg: str | None = None):
    variant = arg or "full"
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown variant {arg!r} of experiments/hp_role/config.py; "
            f"allowed: {', '.join(VARIANTS)}"
        )
    c = base_config()
    c.dataset.name = "cifar10"
    c.model.name = "resnet18"
    c.strategy = STRATEGIES
    c.grid = grid(TABLE1)
    c.num_seeds = 3
    c.initial.strategy = "random"
    c.initial.size = 100
    c.query_size = 100
    c.budget = 4000
    c.train.optimizer = "sgd"
    c.train.learning_rate = 0.01  # every lane takes its grid setting's value
    c.train.weight_decay = 5e-4
    c.train.momentum = 0.9
    c.train.schedule = "cosine"
    c.train.warmup_epochs = 10
    c.train.warmup_start = 0.01
    c.train.epochs = 200
    c.train.batch_size = 32
    c.train.reinit = True
    c.train.augment.crop_padding = 4
    c.train.augment.flip = True
    if variant == "fig1":
        c.strategy = FIG1_STRATEGIES
        c.grid = grid(CODE_GRID)
    elif variant == "smoke":
        c.dataset.name = "digits"
        c.model.name = "mlp"
        c.model.hidden = (64,)
        c.model.dropout = 0.0
        c.strategy = "random,entropy,coreset,badge=subsample(base=badge,m=500)"
        c.num_seeds = 2
        c.initial.size = 20
        c.query_size = 20
        c.budget = 200
        c.train.epochs = 30
        c.train.warmup_epochs = 3
        c.train.augment.crop_padding = 0  # 8x8 digits: no crop or flip
        c.train.augment.flip = False
    return c
