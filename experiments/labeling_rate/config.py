"""Labeling rate, stopping and cost: the Sherbrooke IFT780 report's study.

Riahi, Raymond & Giard-Leroux, *Active Learning of Deep Neural Networks*,
Université de Sherbrooke, 2021 (``/work/shared/papers/sherbrooke-ift780-report.txt``;
protocol details and section numbers in :mod:`jaxal.labeling_rate`):

* start from ``n_start`` random labels **per class** (``initial.per_class``);
* each round trains ``E`` epochs (``train.epochs``) and labels ``k``
  (``query_size``) with least confidence, margin, entropy or random;
* two stratified validation splits drawn from the training split: split 1
  watched while training (``val_accuracy``), split 2 decides (``val2_accuracy``):
  stop after ``n_rounds`` or after ``P`` rounds without improvement on split 2
  (``stop.patience``);
* augmentation (rotation ±15°, contrast and hue ±10 %, horizontal flip) on/off
  and L2 (Adam ``weight_decay`` as a gradient term) — the L2 values of the
  report's Table 3.3 run as one grid (``config.grid``) in the ``*_l2`` variants;
* the adaptive labeling rate (the report's Algorithm 1, §4.4.1:
  ``labeling_rate.schedule=adaptive``; the report gives no ε, g, R — ours are
  in the README) in the ``*_adaptive`` variants.

The authors' code keeps training one model across rounds (no re-initialisation):
``train.reinit = False``. Their SqueezeNet 1.1 is not in jaxal's zoo; the
CIFAR-10 variants use the CIFAR ResNet-18 (the report's EMNIST model).

Variants (``--config=experiments/labeling_rate/config.py:<variant>``):
  smoke, smoke_adaptive, smoke_l2   bundled 8x8 digits, MLP; minutes on 2 CPU cores
  cifar10, cifar10_adaptive, cifar10_l2, cifar10_noaug   CIFAR-10 (tfds), GPU
  emnist                            EMNIST 'balanced' (tfds), ResNet-18, GPU
"""

from jaxal.config import base_config

STRATEGIES = "random,least_confidence,margin,entropy"
# Table 3.3's L2 values with augmentation (G2-G5); G1 is cifar10_noaug.
L2_GRID = "weight_decay=0.0;weight_decay=0.001;weight_decay=0.005;weight_decay=0.008"
VARIANTS = (
    "smoke",
    "smoke_adaptive",
    "smoke_l2",
    "cifar10",
    "cifar10_adaptive",
    "cifar10_l2",
    "cifar10_noaug",
    "emnist",
)


def _report_training(c):
    """Tables 3.4/3.5/3.7: Adam 1e-4, batch 50, L2 0.005 with augmentation."""
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-4
    c.train.weight_decay = 0.005
    c.train.batch_size = 50
    c.train.epochs = 10  # E
    c.train.reinit = False  # the authors' code trains one model on
    c.train.augment.rotation = 15.0
    c.train.augment.contrast = 0.1
    c.train.augment.hue = 0.1
    c.train.augment.flip = True
    c.stop.patience = 3  # P
    c.stop.metric = "val2_accuracy"


def get_config(arg: str | None = None):
    variant = arg or "smoke"
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown variant {variant!r} of experiments/labeling_rate/config.py; "
            f"allowed: {', '.join(VARIANTS)}"
        )
    c = base_config()
    c.strategy = STRATEGIES
    c.num_seeds = 3
    c.initial.strategy = "class_balanced"
    c.budget = None
    if variant.startswith("smoke"):
        # 8x8 digits: 1797 images, 1347 train -> 200 + 200 validation, 947 pool.
        c.dataset.name = "digits"
        c.dataset.val_size = 200
        c.dataset.val2_size = 200
        c.model.name = "mlp"
        c.model.hidden = (128,)
        c.model.dropout = 0.0
        c.initial.per_class = 2  # n_start
        c.query_size = 10  # k
        c.num_rounds = 12  # n_rounds
        c.train.optimizer = "adam"
        c.train.learning_rate = 3e-3
        c.train.weight_decay = 0.0
        c.train.batch_size = 32
        c.train.epochs = 15
        c.train.reinit = False
        c.train.augment.rotation = 15.0  # contrast/hue: 8x8 grey digits have no hue
        c.stop.patience = 3
        c.stop.metric = "val2_accuracy"
        if variant == "smoke_adaptive":
            c.query_size = 40  # the most one round may label (R <= query_size)
            c.labeling_rate.schedule = "adaptive"
            c.labeling_rate.k0 = 10  # eta(0): the fixed variant's k
            c.labeling_rate.metric = "val2_accuracy"
        if variant == "smoke_l2":
            c.strategy = "random,entropy"
            c.train.weight_decay = 0.0
            c.train.optimizer = "adam"
            c.grid = "weight_decay=0.0;weight_decay=0.001;weight_decay=0.005"
        return c
    # Full variants: GPU, tfds data prepared beforehand (no download here).
    c.dataset.download = False
    _report_training(c)
    c.model.name = "resnet18"
    if variant == "emnist":
        c.dataset.name = "emnist/balanced"  # 47 classes (the report says 62)
        c.dataset.val_size = 22560  # 20 % of 112,800
        c.dataset.val2_size = 22560
        c.initial.per_class = 50
        c.query_size = 1000
        c.num_rounds = 10
        return c
    c.dataset.name = "cifar10"
    c.dataset.val_size = 10000  # 20 % of the 50,000 training images
    c.dataset.val2_size = 10000  # 20 % (the authors' code: 20 % of the rest, 8,000)
    c.initial.per_class = 100
    c.query_size = 100
    c.num_rounds = 20
    if variant == "cifar10_adaptive":
        c.query_size = 500  # R: the most one round may label
        c.labeling_rate.schedule = "adaptive"
        c.labeling_rate.k0 = 100
    elif variant == "cifar10_l2":
        c.train.weight_decay = 0.0
        c.grid = L2_GRID
    elif variant == "cifar10_noaug":
        c.train.weight_decay = 0.0  # G1: no augmentation, no L2
        c.train.augment.rotation = 0.0
        c.train.augment.contrast = 0.0
        c.train.augment.hue = 0.0
        c.train.augment.flip = False
    return c
