"""Architecture study: does the best acquisition strategy depend on the network?

*The Influence of Feature Space Complexity on Optimal Data Selection in Deep
Active Learning* (``/work/shared/papers/feature-space-architectures.txt``),
Focus 1 (§3): seven acquisition strategies -- least confidence, margin,
entropy and BALD (MC dropout), Core-Set, BADGE, random -- each without and with
unsupervised pretraining (DeepCluster, ``train.init_from=pretrain``), across
architectures (App. B: ResNet-18/34/50, VGG-11/16/19 with the paper's FC head;
plus the small CNN and MLPs of two depths), compared by labeling efficiency
and gain in test accuracy over random (``analyze.py``).

One work unit of the sweep (``get_hyper``) = one architecture x with/without
pretraining; each unit runs every strategy for every seed (strategies of a seed
share the initial pool and the per-round model initialisation, or the
pretrained start). One more unit per architecture runs random alone to twice
the budget: labeling efficiency needs the labels random takes to reach a
strategy's accuracy, which often lie past the study's budget. ``model.name``
alone picks the network; the MLPs' depth is ``model.hidden``.

Protocol (§3.2): a class-balanced initial pool of 1,000 labels, +1,000 per
round, 25 rounds; a 90/10 pool/validation split with a pool of 30,000; at most
500 epochs per round, stopping at 99% training accuracy or after 50 epochs
without validation improvement (the best validation epoch is kept); 3 seeds;
augmentation (random crops and horizontal flips, §3.2 "Effect of data
augmentation") on or off. Not given by the paper, chosen here: SGD 0.01,
momentum 0.9, weight decay 5e-4, batch 64; dropout 0.5 in every model's head
(BALD and entropy are MC-dropout scores, §3.1; the paper's ResNets have no
dropout, so this head dropout is ours); 20 MC samples; DeepCluster 50
clusterings of one epoch, k = 10 (the number of classes), PCA to 32.

Variants (``--config=experiments/architectures/config.py:<variant>``):

* ``smoke``: bundled 8x8 digits; MLP and the small CNN; 40 -> 200 labels;
  2 seeds; 6 units (4 + 2 random references), 4 min on a 2-core CPU:

      jaxal sweep --config=experiments/architectures/config.py:smoke \\
          --workdir=runs/arch_smoke
      python experiments/architectures/analyze.py runs/arch_smoke

* ``mnist``, ``fashion_mnist``, ``cifar10``, ``svhn`` (tfds ``svhn_cropped``):
  the full protocol without augmentation; ``<dataset>_aug`` with crops (4 px)
  and flips. Needs the data prepared for tfds (``--config.dataset.data_dir``)
  and a GPU:

      jaxal sweep --config=experiments/architectures/config.py:cifar10 \\
          --workdir=runs/arch_cifar10
      python experiments/architectures/analyze.py runs/arch_cifar10
"""

from jaxal.config import base_config

STRATEGIES = (
    "random,least_confidence,margin,entropy=entropy(source=mc),bald,coreset,badge"
)
DATASETS = {
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist",
    "cifar10": "cifar10",
    "svhn": "svhn_cropped",
}
VARIANTS = ("smoke", *DATASETS, *(f"{d}_aug" for d in DATASETS))

# The architectures of the study: name -> the config keys that build it.
PAPER_ARCHS = {
    "resnet18": {"config.model.name": "resnet18"},
    "resnet34": {"config.model.name": "resnet34"},
    "resnet50": {"config.model.name": "resnet50"},
    "vgg11": {"config.model.name": "vgg11_fc"},
    "vgg16": {"config.model.name": "vgg16_fc"},
    "vgg19": {"config.model.name": "vgg19_fc"},
}
SMALL_ARCHS = {
    "cnn": {"config.model.name": "cnn"},
    "mlp-256": {"config.model.name": "mlp", "config.model.hidden": (256,)},
    "mlp-256-256-256": {"config.model.name": "mlp", "config.model.hidden": (256, 256, 256)},
}
SMOKE_ARCHS = {
    "mlp-128": {"config.model.name": "mlp", "config.model.hidden": (128,)},
    "cnn": {"config.model.name": "cnn"},
}
PRETRAIN = ("", "pretrain")  # train.init_from: none, DeepCluster


def architectures(variant: str | None) -> dict[str, dict]:
    """The architectures a variant's sweep runs."""
    return SMOKE_ARCHS if (variant or "smoke") == "smoke" else {**PAPER_ARCHS, **SMALL_ARCHS}


def arch_name(cfg: dict) -> str:
    """The study's name of a unit's architecture, from its ``config.json``:
    ``mlp-<widths>`` for MLPs, else the name of :data:`PAPER_ARCHS` /
    :data:`SMALL_ARCHS` whose ``model.name`` it has (``vgg16_fc`` -> ``vgg16``)."""
    model = cfg["model"]
    if model["name"] == "mlp":
        return "mlp-" + "-".join(str(w) for w in model.get("hidden") or (256,))
    for name, keys in {**PAPER_ARCHS, **SMALL_ARCHS}.items():
        if keys["config.model.name"] == model["name"]:
            return name
    return str(model["name"])


def get_config(arg: str | None = None):
    variant = arg or "smoke"
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown variant {arg!r} of experiments/architectures/config.py; "
            f"allowed: {', '.join(VARIANTS)}"
        )
    c = base_config()
    c.strategy = STRATEGIES
    c.initial.strategy = "class_balanced"
    c.mc.mode = "head"  # every jaxal model's dropout is in its head: exact, cheaper
    c.train.early_stop.train_accuracy = 0.99
    c.train.init_from = ""
    c.pretrain.method = "deepcluster"
    c.pretrain.clusters = 0  # = the number of classes (§4.2: better as k nears it)
    # PCA-whitening dimension: DeepCluster's 256 serve 10,000 clusters of 4,096-d
    # features; for k = 10 fewer are better (digits, README: whitening all 128
    # embedding dimensions lowered the NMI of the clusters with the labels).
    c.pretrain.pca_dim = 32
    if variant == "smoke":
        # 8x8 digits: 1,347 train -> 150 validation + 1,197 pool.
        c.dataset.name = "digits"
        c.dataset.val_size = 150
        c.model.name = "mlp"  # the units set the architecture (SMOKE_ARCHS)
        c.model.dropout = 0.5
        c.num_seeds = 2
        c.initial.per_class = 4  # 40 labels
        c.query_size = 40
        c.num_rounds = 4  # 40 -> 200
        c.train.optimizer = "adam"
        c.train.learning_rate = 3e-3
        c.train.batch_size = 32
        c.train.epochs = 40
        c.train.early_stop.patience = 10
        c.mc.samples = 8
        c.pretrain.rounds = 8
        c.pretrain.epochs = 1
        c.pretrain.batch_size = 64
        c.pretrain.kmeans_iters = 30
        c.pretrain.pca_dim = 16
        return c
    aug = variant.endswith("_aug")
    c.dataset.name = DATASETS[variant.removesuffix("_aug")]
    c.dataset.download = False
    c.dataset.val_size = 3333  # 10% of the 33,333 (pool + validation)
    c.dataset.pool_size = 30000
    c.model.name = "resnet18"
    c.model.dropout = 0.5
    c.num_seeds = 3
    c.initial.per_class = 100  # 1,000 class-balanced labels
    c.query_size = 1000
    c.num_rounds = 25
    c.train.optimizer = "sgd"
    c.train.learning_rate = 0.01
    c.train.momentum = 0.9
    c.train.weight_decay = 5e-4
    c.train.batch_size = 64
    c.train.epochs = 500
    c.train.early_stop.patience = 50
    c.mc.samples = 20
    c.score_batch_size = 2048
    c.pretrain.rounds = 50
    c.pretrain.epochs = 1
    c.pretrain.kmeans_iters = 50
    if aug:
        c.train.augment.crop_padding = 4
        c.train.augment.flip = True
    return c


def reference_rounds(variant: str | None) -> int:
    """Rounds of the long random run: twice the study's, at most the pool (the
    labels random needs to match a strategy must lie on its curve)."""
    c = get_config(variant)
    if c.dataset.pool_size is not None:
        most = (c.dataset.pool_size - c.initial.per_class * 10) // c.query_size
        return min(2 * c.num_rounds, most)
    return 2 * c.num_rounds


def get_hyper(h, variant=None):
    """``jaxal sweep``: one unit per architecture x with/without pretraining, plus
    per architecture a random-only reference run to twice the budget (the random
    curve that labeling efficiency interpolates on; ``analyze.py``)."""
    archs = [dict(keys) for keys in architectures(variant).values()]
    units = h.product([archs, h.sweep("config.train.init_from", list(PRETRAIN))])
    long_random = {
        "config.train.init_from": "",
        "config.strategy": "random",
        "config.num_rounds": reference_rounds(variant),
    }
    return units + [{**a, **long_random} for a in archs]
