"""Initial pools for deep active learning (Chandra et al. 2021), as a jaxal sweep.

Every initial-pool strategy x every acquisition group is one work unit (one
jaxal run, all seeds in it). The groups follow the paper's §3.3 / §5.1 list:

* ``main``: passive (random), LC, MM (margin), ME (entropy), Core-Set;
* ``dbal``: DBAL = max entropy of the MC-dropout predictive mean (dropout 0.5
  before the classifier, only for DBAL, as in §6.1);
* ``ens``: ENS-varR = variation ratios of an ensemble of 3 models.

The initial pools (``get_hyper``): random; k-means on SimCLR features with
equal and with proportional shares (§3.2.2, §5.2 "K-Means"); hardest by VAE
reconstruction error ("VAE"), by SimCLR contrastive loss ("SimCLR") and by
autoencoder reconstruction error; the binned VAE mix with n = 5 (§4.1). The
encoders are trained once and shared by every unit of the sweep through
``initial.cache_dir = "../ssl_cache"`` (relative to each unit's workdir, i.e.
``ROOT/ssl_cache``).

Variants:

* ``smoke``: bundled digits (8x8, MLP), 30 -> 180 labels in steps of 30,
  3 seeds; 21 units, ~5 min on a 2-core CPU with ``--parallel=2``.
* ``full`` (default): CIFAR-10 via tfds, ResNet-18, the paper's protocol:
  10% of the pool initially (5,000), 10% per episode, 5 episodes (§4 "AL
  Details"), SGD lr 0.025, cosine, 200 epochs, batch 96, momentum 0.9,
  wd 3e-4, horizontal flips (§6.2, Table 1), 3 trials (§5.1). The SimCLR encoder
  is the ResNet-18 backbone (§6.1, ``initial.ssl.arch=model``); the VAE / AE
  are the 4-conv-layer encoder / decoder (§5.3.1), Adam 1e-3, 100 epochs,
  batch 200, wd 5e-4, 5% validation split, best-loss epoch kept (§6.3).
  Needs the data (``pip install 'jaxal[tfds]'``; ``--config.dataset.download=True``
  on a machine with internet or ``--config.dataset.data_dir``) and a GPU.
* ``lowbudget``: CIFAR-10, 1,000 initial + 10 episodes of 1,000 (to 22%),
  LC / ME / DBAL, 2 trials (§5.3.2 "Low-Budget AL").
* ``longtail``: long-tail CIFAR-10 (imbalance factor 50, Cui et al. 2019:
  13,996 pool points), 10% initially and per episode, LC / ME / DBAL, 2 trials
  (§5.3.2 "Long-Tail CIFAR-10").

    jaxal sweep --config=experiments/initial_pools/config.py:smoke \\
        --workdir=runs/initial_pools_smoke --parallel=2
    python experiments/initial_pools/analyze.py runs/initial_pools_smoke
"""

from jaxal.config import base_config

VARIANTS = ("smoke", "full", "lowbudget", "longtail")

MAIN = "passive=random,lc=least_confidence,mm=margin,me=entropy,coreset"
DBAL = "dbal=entropy(source=mc)"
ENS = "ens_varR=variation_ratios"


def get_config(arg: str | None = None):
    variant = arg or "full"
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown variant {arg!r} of experiments/initial_pools/config.py; "
            f"allowed: {', '.join(VARIANTS)}"
        )
    c = base_config()
    c.strategy = MAIN
    c.initial.strategy = "random"
    c.initial.cache_dir = "../ssl_cache"  # ROOT/ssl_cache: shared by the units of a sweep
    c.initial.features = "simclr"
    c.initial.score = "vae"
    c.initial.bins = 5
    c.initial.kmeans_iters = 100
    if variant == "smoke":
        c.dataset.name = "digits"
        c.model.name = "mlp"
        c.model.hidden = (128,)
        c.model.dropout = 0.0
        c.num_seeds = 3
        c.initial.size = 30
        c.query_size = 30
        c.budget = 180
        c.train.optimizer = "adam"
        c.train.learning_rate = 3e-3
        c.train.epochs = 30
        c.train.batch_size = 32
        c.mc.samples = 10
        s = c.initial.ssl
        s.arch = "mlp"
        s.latent = 16
        s.hidden = 256
        s.epochs = 40
        s.batch_size = 64
        s.learning_rate = 1e-3
        s.temperature = 0.5
        return c
    # CIFAR-10 (full, lowbudget, longtail)
    c.dataset.name = "cifar10"
    c.model.name = "resnet18"
    c.model.dropout = 0.0
    c.num_seeds = 3
    c.train.optimizer = "sgd"
    c.train.learning_rate = 0.025
    c.train.momentum = 0.9
    c.train.weight_decay = 3e-4
    c.train.schedule = "cosine"
    c.train.epochs = 200
    c.train.batch_size = 96
    c.train.augment.flip = True
    c.mc.samples = 25
    c.mc.mode = "head"  # the resnet's only dropout is before the classifier: exact, cheaper
    c.initial.size = 5000
    c.query_size = 5000
    c.num_rounds = 5
    s = c.initial.ssl
    s.arch = "conv"  # VAE / AE: 4 conv layers each side (§5.3.1)
    s.latent = 128
    s.hidden = 512
    s.epochs = 100
    s.batch_size = 200
    s.learning_rate = 1e-3
    s.weight_decay = 5e-4
    s.val_fraction = 0.05
    s.temperature = 0.5
    if variant == "lowbudget":
        c.strategy = "lc=least_confidence,me=entropy"
        c.num_seeds = 2
        c.initial.size = 1000
        c.query_size = 1000
        c.num_rounds = 10
    elif variant == "longtail":
        c.strategy = "lc=least_confidence,me=entropy"
        c.num_seeds = 2
        c.dataset.imbalance_factor = 50.0
        c.initial.size = 1400  # 10% of the 13,996 long-tailed pool points
        c.query_size = 1400
        c.num_rounds = 5
    return c


# The initial pools of the study: name -> overrides.
POOLS = {
    "random": {"config.initial.strategy": "random"},
    "kmeans": {
        "config.initial.strategy": "cluster",
        "config.initial.features": "simclr",
        "config.initial.cluster_share": "equal",
    },
    "kmeans_prop": {
        "config.initial.strategy": "cluster",
        "config.initial.features": "simclr",
        "config.initial.cluster_share": "proportional",
    },
    "vae": {"config.initial.strategy": "hardest", "config.initial.score": "vae"},
    "simclr": {"config.initial.strategy": "hardest", "config.initial.score": "simclr"},
    "ae": {"config.initial.strategy": "hardest", "config.initial.score": "ae"},
    "vae_binned": {
        "config.initial.strategy": "binned",
        "config.initial.score": "vae",
        "config.initial.bins": 5,
    },
}


def groups(variant: str | None) -> dict:
    """The acquisition groups of a variant: name -> overrides (``main`` = the config's)."""
    out = {"main": {}, "dbal": {"config.strategy": DBAL, "config.model.dropout": 0.5}}
    if (variant or "full") in ("smoke", "full"):
        out["ens"] = {"config.strategy": ENS, "config.ensemble_size": 3}
    return out


def pools(variant: str | None) -> dict:
    """The initial pools of a variant: on CIFAR-10 the SimCLR encoder is the
    ResNet-18 backbone (§6.1); on digits every encoder is an MLP."""
    out = {name: dict(p) for name, p in POOLS.items()}
    if (variant or "full") != "smoke":
        for p in out.values():
            if "simclr" in (p.get("config.initial.features"), p.get("config.initial.score")):
                p["config.initial.ssl.arch"] = "model"
    return out


def get_hyper(h, variant=None):
    """``jaxal sweep``: every initial pool x every acquisition group."""
    del h  # the points are built directly: each pool sets only its own keys
    return [
        {**pool, **group} for pool in pools(variant).values() for group in groups(variant).values()
    ]
