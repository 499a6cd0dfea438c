"""The base ``ConfigDict``: every key a run reads, with defaults and comments.

Config files in ``configs/`` start from :func:`base_config` and override what
their experiment needs.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from jaxal import models as models_lib
from jaxal import strategies as strategies_lib


def _model_keys() -> list[str]:
    """Every parameter of every model; in a config ``None`` means the model's default
    and a key set to a value must be accepted by the chosen model."""
    return sorted({p for n in models_lib.NAMES for p in models_lib.params_of(n)})


def _strategy_param_union() -> ml_collections.ConfigDict:
    """Every parameter of every registered strategy, all ``None`` (= default)."""
    keys = sorted({p for n in strategies_lib.names() for p in strategies_lib.params_of(n)})
    return ml_collections.ConfigDict(
        {k: ml_collections.FieldReference(None, field_type=object) for k in keys}
    )


def dataset_config() -> ml_collections.ConfigDict:
    """The ``dataset`` config block with its defaults.

    ``data_dir`` and ``pool_size`` default to ``None`` as typed placeholders, so
    ``--config.dataset.pool_size=500`` works from the command line.
    """
    return ml_collections.ConfigDict(
        dict(
            name="digits",
            data_dir=config_dict.placeholder(str),
            download=False,
            normalize="standardize",
            pool_size=config_dict.placeholder(int),
            val_size=0,  # validation split 1 (early stopping, monitoring), from the pool
            val2_size=0,  # validation split 2 (AL-level stopping, labeling rate), from the pool
            imbalance_factor=1.0,
            data_seed=0,
        )
    )


def base_config() -> ml_collections.ConfigDict:
    """The full config with defaults; every key a run reads is here."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # seeds are seed, seed + 1, ..., seed + num_seeds - 1
    c.num_seeds = 3
    c.seed_execution = "auto"  # how the seed axis runs: vmap, a loop of jitted calls, or auto
    # Under seed_execution=loop, seeds run concurrently in this many host
    # threads (0 = auto: the CPU cores on CPU, the seed devices elsewhere).
    c.seed_threads = 0
    # Devices for the ("seed", "data") mesh: 0 = every visible device.
    c.num_devices = 0
    # One strategy, or several separated by commas (run one after another,
    # sharing initial pools and per-round model initialisations per seed).
    c.strategy = "entropy"
    c.strategy_params = _strategy_param_union()
    # Hyperparameter grid as an array axis: settings separated by ';', each
    # "key=value,..." of learning_rate / weight_decay / momentum (the rest from
    # train.*); G settings x num_seeds seeds train in one program. "" = none.
    c.grid = ""

    c.dataset = dataset_config()

    c.model = ml_collections.ConfigDict()
    c.model.name = "mlp"
    for k in _model_keys():
        c.model[k] = ml_collections.FieldReference(None, field_type=object)

    c.train = ml_collections.ConfigDict()
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3
    c.train.momentum = 0.9
    c.train.weight_decay = 0.0
    c.train.schedule = "constant"  # or "cosine" (to 0 over the round's steps)
    # Linear warm-up over the first epochs of every round (0 = none), from
    # warmup_start x the rate; then the schedule over the remaining steps.
    c.train.warmup_epochs = 0
    c.train.warmup_start = 0.01
    c.train.epochs = 50
    c.train.batch_size = 64
    c.train.eval_batch_size = 512
    # An epoch's last, partial batch runs in the smallest of the static shapes
    # 8, 16, 32, ... < batch_size, batch_size that holds it (jaxal.train.batch_buckets):
    # 20 labels at batch 64 train one step of 32, not 64 with 44 weight-0 repeats.
    # False: every batch has the shape batch_size (the results of jaxal <= 0.1).
    c.train.batch_buckets = True
    # Where the step loop runs: "device" (one jitted while_loop per round),
    # "host" (Python loop of jitted steps; faster for conv nets on XLA:CPU), "auto".
    c.train.step_loop = "auto"
    c.train.reinit = True  # re-initialise the model each round (False: warm start)
    # What a re-initialised round starts from: "" = model.init (a fresh draw per
    # seed and round); "pretrain" = the model pretrained on the pool without labels
    # (config.pretrain, once per run, cached); "file:PATH" = the variables in an npz
    # (jaxal.pretrain.save_variables). With reinit=False only the first round does.
    c.train.init_from = ""
    c.train.augment = ml_collections.ConfigDict({"crop_padding": 0, "flip": False})
    # Per image, before crop and flip; 0 = off.
    c.train.augment.rotation = 0.0  # degrees r: angle U[-r, r], bilinear, zero fill
    c.train.augment.contrast = 0.0  # c: factor U[1 - c, 1 + c] about the mean luma
    c.train.augment.hue = 0.0  # h: shift U[-h, h] turns (YIQ chroma rotation), RGB only
    # b: add U[-b, b] to every pixel of an image (input units; after contrast)
    c.train.augment.brightness = 0.0
    c.train.early_stop = ml_collections.ConfigDict()
    c.train.early_stop.train_accuracy = ml_collections.FieldReference(None, field_type=float)
    c.train.early_stop.patience = ml_collections.FieldReference(None, field_type=int)
    # R: train each round's model R times (derived keys; an [R] axis), report the
    # mean test/val metrics (and test_accuracy_r<j>); replica 0 scores the pool.
    c.train.retrains = 1

    c.initial = ml_collections.ConfigDict()
    # random | class_balanced | from_file | cluster (k-means, K = classes) |
    # hardest (top self-supervised loss) | binned (Chandra et al. 2021 §4.1)
    c.initial.strategy = "random"
    c.initial.size = 20  # for "random", "cluster", "hardest", "binned"
    c.initial.per_class = 2  # for "class_balanced"
    # for "from_file": a .npy / .txt / .csv / .npz of pool indices, [n] (every
    # seed) or [S, n] (row i = seed + i); labeled_indices.npz of a run works
    c.initial.file = config_dict.placeholder(str)
    c.initial.file_key = config_dict.placeholder(str)  # the array of a .npz (e.g. margin/order)
    c.initial.file_take = config_dict.placeholder(int)  # the first m of each row (None: all)
    # for "cluster": features to cluster: simclr | vae | ae | raw | file:PATH ([N, d])
    c.initial.features = "simclr"
    c.initial.cluster_share = "equal"  # equal (B/K per cluster) | proportional (|C_j| B / N)
    c.initial.kmeans_iters = 100  # most Lloyd iterations (stops at convergence)
    # for "hardest" / "binned": the score: vae (reconstruction error) | vae_elbo
    # (negative ELBO) | ae (reconstruction error) | simclr (contrastive loss)
    c.initial.score = "vae"
    c.initial.bins = 2  # for "binned": n bins of the sorted scores
    # Where the trained encoders are cached (relative paths: from the workdir);
    # None = <workdir>/initial. Every strategy, seed and resume reuses them.
    c.initial.cache_dir = config_dict.placeholder(str)
    # Self-supervised encoders (AE, VAE, SimCLR) trained on the unlabeled pool.
    c.initial.ssl = ml_collections.ConfigDict()
    # auto (conv for images whose sides divide by 16, else mlp) | mlp | conv |
    # model (SimCLR only: the backbone of config.model, e.g. ResNet-18 as in the paper)
    c.initial.ssl.arch = "auto"
    c.initial.ssl.latent = 32  # latent size (AE/VAE) and SimCLR projection size
    c.initial.ssl.hidden = 256  # width of the mlp layers; SimCLR backbone output for mlp/conv
    c.initial.ssl.epochs = 50
    c.initial.ssl.batch_size = 128  # also the chunk whose other points are SimCLR's negatives
    c.initial.ssl.learning_rate = 1e-3  # Adam
    c.initial.ssl.weight_decay = 0.0
    c.initial.ssl.val_fraction = 0.05  # held out; the best validation epoch's weights are kept
    c.initial.ssl.temperature = 0.5  # SimCLR NT-Xent temperature
    c.initial.ssl.step_loop = "auto"  # device | host (Python loop of jitted steps) | auto
    c.initial.ssl.seed = 0  # encoder randomness: one encoder per run, shared by all seeds

    c.query_size = 10  # k, points labeled per round (with an adaptive rate: the most)
    # Labels per round (the Sherbrooke report's Algorithm 1, jaxal.labeling_rate):
    # "fixed" = query_size; "adaptive" = next k from the last gain of `metric`,
    # ceil(min(R, min(g, 1 - a) / delta)), delta = max(epsilon, a(i) - a(i-1)) / k,
    # per seed, at most query_size. R, k0: 0 = query_size. The report gives no
    # values for epsilon, g, R: these defaults are jaxal's.
    c.labeling_rate = ml_collections.ConfigDict(
        {
            "schedule": "fixed",
            "epsilon": 0.01,
            "g": 0.05,
            "R": 0,
            "k0": 0,
            "metric": "val2_accuracy",
        }
    )
    # Active-learning-level stopping: a seed stops after `patience` rounds in a
    # row without `metric` beating its best by more than min_delta (None = off).
    c.stop = ml_collections.ConfigDict(
        {
            "patience": ml_collections.FieldReference(None, field_type=int),
            "min_delta": 0.0,
            "metric": "val2_accuracy",
        }
    )
    c.budget = ml_collections.FieldReference(None, field_type=int)  # total labels at the end
    c.num_rounds = ml_collections.FieldReference(None, field_type=int)  # acquisitions

    # Sample-based strategies (bald, variation_ratios, ...) read [T, N, C]
    # predictions: T MC-dropout passes, or the members of an ensemble.
    # consistent: one dropout mask per sample for the whole pool, for every
    # sample-based strategy (BatchBALD, which needs it, always gets it).
    c.mc = ml_collections.ConfigDict({"samples": 20, "mode": "full", "consistent": False})
    c.ensemble_size = 1  # M > 1: a deep ensemble trained as an [M] array axis
    c.score_batch_size = 1024
    # Unsupervised pretraining for train.init_from="pretrain" (jaxal.pretrain):
    # DeepCluster (Caron et al. 2018) on the pool -- k-means on the PCA-whitened,
    # L2-normalised penultimate features gives pseudo-labels, the network trains on
    # them (classes sampled uniformly, last layer re-drawn each time), repeat.
    c.pretrain = ml_collections.ConfigDict()
    c.pretrain.method = "deepcluster"
    c.pretrain.rounds = 10  # clusterings (DeepCluster re-clusters every epoch)
    c.pretrain.epochs = 1  # training epochs on each clustering's pseudo-labels
    c.pretrain.clusters = 0  # k of k-means; 0 = the number of classes
    c.pretrain.pca_dim = 256  # PCA-whitening dimension before k-means (0 = no PCA)
    c.pretrain.kmeans_iters = 50  # most Lloyd iterations per clustering
    # The optimizer is train.optimizer (with its momentum and weight decay). None: train's.
    c.pretrain.learning_rate = ml_collections.FieldReference(None, field_type=float)
    c.pretrain.batch_size = ml_collections.FieldReference(None, field_type=int)  # None: train's
    c.pretrain.seed = 0  # one pretrained model per run, shared by all seeds and strategies
    # Where the pretrained variables are cached (relative paths: from the workdir);
    # None = <workdir>/pretrain.
    c.pretrain.cache_dir = config_dict.placeholder(str)
    # learning_curve.png/.pdf/.svg: the band around the mean over seeds: std,
    # sem (standard error) or ci95 (95% t interval).
    c.report = ml_collections.ConfigDict({"band": "std"})
    # Optional live writers besides metrics.jsonl and TensorBoard (jaxal.live):
    # Weights & Biases (mode offline | online | disabled) and MLflow (tracking
    # URI "" = a file store in <workdir>/mlruns). Extras: jaxal[wandb], jaxal[mlflow].
    c.live = ml_collections.ConfigDict(
        {
            "wandb": False,
            "wandb_project": "jaxal",
            "wandb_mode": "offline",
            "mlflow": False,
            "mlflow_tracking_uri": "",
            "mlflow_experiment": "jaxal",
        }
    )
    # Orbax checkpoint of the full run state after every round (exact resume).
    # Inside a round too: every_epochs = N saves the training state every N
    # epochs; every_minutes = M every M minutes (checked at epoch ends, or every
    # N epochs when both are set); 0 = off. A run killed mid-round resumes from
    # that epoch, to the results of the run never interrupted.
    c.checkpoint = ml_collections.ConfigDict(
        {
            "enabled": True,
            "max_to_keep": 3,
            "async_save": True,
            "every_epochs": 0,
            "every_minutes": 0.0,
        }
    )
    return c


# Keys of which a config sets exactly one; setting one clears the other.
EXCLUSIVE = (("budget", "num_rounds"),)


def apply_overrides(config, overrides: dict) -> ml_collections.ConfigDict:
    """Set dotted keys in place (``{"train.epochs": 5}``), as ``--config.<key>`` does.

    ``budget`` and ``num_rounds`` exclude each other: setting one to a value
    clears the other, so the last one set wins (as on the command line).
    """
    for key, value in overrides.items():
        node = config
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
        for pair in EXCLUSIVE:
            if key in pair and value is not None:
                config[pair[1 - pair.index(key)]] = None
    return config
