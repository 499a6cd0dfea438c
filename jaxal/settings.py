"""Typed settings of a run and the plan of its sizes: what the engine reads.

:mod:`jaxal.config` turns an experiment ``ConfigDict`` into these frozen
dataclasses once, after validation; below the assembler nothing sees a
``ConfigDict``. The :class:`Plan` holds every derived size (initial pool,
budget, rounds, query size) computed once, from one formula.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

_MISSING = object()


def _get(obj, dotted: str, default=_MISSING):
    """``obj.a.b`` for ``dotted="a.b"`` on attribute- or mapping-style objects."""
    for part in dotted.split("."):
        if isinstance(obj, dict):
            if part not in obj and default is not _MISSING:
                return default
            obj = obj[part]
        elif default is not _MISSING and not hasattr(obj, part):
            return default
        else:
            obj = getattr(obj, part)
    return obj


_CONVERT = {"str": str, "int": int, "float": float, "bool": bool}


def _from_block(cls, cfg):
    """A flat settings dataclass from its config block (``None``: the defaults; an
    instance: as is). Each field is read by name, missing ones take the default,
    and values are converted to the field's type (``T | None`` keeps ``None``)."""
    if cfg is None:
        return cls()
    if isinstance(cfg, cls):
        return cfg
    values = {}
    for f in dataclasses.fields(cls):
        kind, _, optional = str(f.type).partition(" | ")
        v = _get(cfg, f.name, f.default)
        values[f.name] = None if (optional and v is None) else _CONVERT[kind](v)
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How one round trains (``config.train``)."""

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: int = 0  # linear warm-up of the rate (Huseljic et al. 2023)
    warmup_start: float = 0.01  # the warm-up's first rate, as a fraction of the peak
    epochs: int = 50
    batch_size: int = 64
    eval_batch_size: int = 512
    batch_buckets: bool = True  # the last batch in a bucket shape (jaxal.train)
    step_loop: str = "auto"
    reinit: bool = True
    crop_padding: int = 0
    flip: bool = False
    rotation: float = 0.0  # degrees: U[-rotation, rotation] per image (0 = off)
    contrast: float = 0.0  # factor U[1 - contrast, 1 + contrast] (0 = off)
    hue: float = 0.0  # hue shift U[-hue, hue] turns, RGB images only (0 = off)
    brightness: float = 0.0  # additive shift U[-brightness, brightness] per image (0 = off)
    early_stop_accuracy: float | None = None
    patience: int | None = None
    # R: each round's model trained R times with derived keys, metrics averaged
    # (jaxal.loop: the [R] replica axis); replica 0 is the R = 1 model and scores.
    retrains: int = 1

    @classmethod
    def of(cls, cfg) -> TrainSettings:
        """From a ``train`` config block (``augment.*``, ``early_stop.*`` nested),
        or an instance (returned as is)."""
        if isinstance(cfg, cls):
            return cfg
        acc = _get(cfg, "early_stop.train_accuracy", None)
        patience = _get(cfg, "early_stop.patience", None)
        return cls(
            optimizer=str(cfg.optimizer),
            learning_rate=float(cfg.learning_rate),
            momentum=float(cfg.momentum or 0.0),
            weight_decay=float(cfg.weight_decay or 0.0),
            schedule=str(cfg.schedule),
            warmup_epochs=int(_get(cfg, "warmup_epochs", 0) or 0),
            warmup_start=float(_get(cfg, "warmup_start", 0.01)),
            epochs=int(cfg.epochs),
            batch_size=int(cfg.batch_size),
            eval_batch_size=int(_get(cfg, "eval_batch_size", 512)),
            batch_buckets=bool(_get(cfg, "batch_buckets", True)),
            step_loop=str(_get(cfg, "step_loop", "auto")),
            reinit=bool(_get(cfg, "reinit", True)),
            crop_padding=int(_get(cfg, "augment.crop_padding", 0)),
            flip=bool(_get(cfg, "augment.flip", False)),
            rotation=float(_get(cfg, "augment.rotation", 0.0) or 0.0),
            contrast=float(_get(cfg, "augment.contrast", 0.0) or 0.0),
            hue=float(_get(cfg, "augment.hue", 0.0) or 0.0),
            brightness=float(_get(cfg, "augment.brightness", 0.0) or 0.0),
            early_stop_accuracy=None if acc is None else float(acc),
            patience=None if patience is None else int(patience),
            retrains=int(_get(cfg, "retrains", 1) or 1),
        )


@dataclasses.dataclass(frozen=True)
class SSLSettings:
    """The self-supervised encoders of the initial pools (``config.initial.ssl``);
    see :mod:`jaxal.ssl`."""

    arch: str = "auto"  # auto | mlp | conv | model (SimCLR only: config.model's backbone)
    latent: int = 32
    hidden: int = 256
    epochs: int = 50
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.05
    temperature: float = 0.5
    step_loop: str = "auto"
    seed: int = 0

    @classmethod
    def of(cls, cfg) -> SSLSettings:
        return _from_block(cls, cfg)


@dataclasses.dataclass(frozen=True)
class InitialSettings:
    """The initial labeled pool (``config.initial``); see :mod:`jaxal.initial`."""

    strategy: str = "random"
    size: int = 20  # for "random", "cluster", "hardest", "binned"
    per_class: int = 2  # for "class_balanced"
    file: str | None = None  # for "from_file"
    file_key: str | None = None  # the array of a .npz file
    file_take: int | None = None  # the first m indices of each row (None: all)
    features: str = "simclr"  # for "cluster"
    cluster_share: str = "equal"  # for "cluster": equal | proportional
    kmeans_iters: int = 100
    score: str = "vae"  # for "hardest" / "binned"
    bins: int = 2  # for "binned"
    cache_dir: str | None = None  # None: <workdir>/initial
    ssl: SSLSettings = SSLSettings()

    @classmethod
    def of(cls, cfg) -> InitialSettings:
        if isinstance(cfg, cls):
            return cfg
        d = cls()

        def opt(key, conv):
            v = _get(cfg, key, None)
            return None if v is None else conv(v)

        return cls(
            strategy=str(cfg.strategy),
            size=int(cfg.size),
            per_class=int(cfg.per_class),
            file=opt("file", str),
            file_key=opt("file_key", str),
            file_take=opt("file_take", int),
            features=str(_get(cfg, "features", d.features)),
            cluster_share=str(_get(cfg, "cluster_share", d.cluster_share)),
            kmeans_iters=int(_get(cfg, "kmeans_iters", d.kmeans_iters)),
            score=str(_get(cfg, "score", d.score)),
            bins=int(_get(cfg, "bins", d.bins)),
            cache_dir=opt("cache_dir", str),
            ssl=SSLSettings.of(_get(cfg, "ssl", None)),
        )


@dataclasses.dataclass(frozen=True)
class PretrainSettings:
    """Unsupervised pretraining of the model on the pool (``config.pretrain``),
    the variables every round starts from with ``train.init_from='pretrain'``;
    see :mod:`jaxal.pretrain` (DeepCluster)."""

    method: str = "deepcluster"
    rounds: int = 10  # k-means re-clusterings (DeepCluster re-clusters every epoch)
    epochs: int = 1  # training epochs on each clustering's pseudo-labels
    clusters: int = 0  # k; 0 = the number of classes
    pca_dim: int = 256  # PCA-whitening of the features before k-means (0 = none)
    kmeans_iters: int = 50
    learning_rate: float | None = None  # None = train.learning_rate
    batch_size: int | None = None  # None = train.batch_size
    seed: int = 0  # one pretrained model per run, shared by every seed and strategy
    cache_dir: str | None = None  # None: <workdir>/pretrain

    @classmethod
    def of(cls, cfg) -> PretrainSettings:
        return _from_block(cls, cfg)


@dataclasses.dataclass(frozen=True)
class MCSettings:
    """Sample-based scoring: T MC-dropout passes in ``full`` or ``head`` mode.

    ``consistent``: every sample-based strategy gets consistent MC dropout (one
    dropout mask per sample, shared by the whole pool); strategies that need it
    (``Needs.consistent``: BatchBALD) get it whatever this says.
    """

    samples: int = 20
    mode: str = "full"
    consistent: bool = False


ROUND_METRICS = ("val2_accuracy", "val_accuracy", "test_accuracy")
LABELING_RATES = ("fixed", "adaptive")


@dataclasses.dataclass(frozen=True)
class ScheduleSettings:
    """Per-round labels and active-learning-level stopping (``config.labeling_rate``,
    ``config.stop``); see :mod:`jaxal.labeling_rate` (the Sherbrooke report).

    ``rate="fixed"`` labels ``query_size`` per round; ``"adaptive"`` sets each
    lane's next query size with the report's Algorithm 1 from ``rate_metric``
    (``epsilon``, ``g``, ``R``, ``k0``; bounded by ``query_size``, the per-round
    capacity). ``patience``: a lane stops (labels nothing more, writes no more
    rows) after ``patience`` rounds in a row without ``stop_metric`` beating its
    best by more than ``min_delta``.
    """

    rate: str = "fixed"
    epsilon: float = 0.01
    g: float = 0.05
    R: int = 0  # 0 = query_size
    k0: int = 0  # 0 = query_size
    rate_metric: str = "val2_accuracy"
    patience: int | None = None
    min_delta: float = 0.0
    stop_metric: str = "val2_accuracy"

    @property
    def adaptive(self) -> bool:
        return self.rate == "adaptive"


@dataclasses.dataclass(frozen=True)
class ExecutionSettings:
    """How the seed axis runs and on which devices."""

    seed_execution: str = "auto"
    seed_threads: int = 0
    num_devices: int = 0


@dataclasses.dataclass(frozen=True)
class StrategySpec:
    """One strategy of a run: its result label, registry name and parameters."""

    label: str
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every size of a run, derived once from the config and the dataset.

    Attributes:
      num_pool: N, the unlabeled pool.
      num_classes: C.
      initial_size: labels of the initial pool.
      query_size: k, labels per acquisition (the last may take fewer).
      budget: labels at the end; also the capacity of the ``order`` buffer.
    """

    num_pool: int
    num_classes: int
    initial_size: int
    query_size: int
    budget: int

    @property
    def num_acquisitions(self) -> int:
        """Acquisition rounds; the last labels fewer than k if k does not divide."""
        return math.ceil((self.budget - self.initial_size) / self.query_size)

    @property
    def num_rounds(self) -> int:
        """Training rounds per strategy: one per acquisition, plus the last."""
        return self.num_acquisitions + 1

    def labels_at(self, round_: int) -> int:
        """Labels the model of round ``round_`` trains on."""
        return min(self.initial_size + round_ * self.query_size, self.budget)

    def take(self, num_labeled: int) -> int:
        """Points labeled by the acquisition after a round with ``num_labeled``."""
        return min(self.query_size, self.budget - num_labeled)


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything a run reads, typed (built by :func:`jaxal.config.settings`)."""

    seed: int
    num_seeds: int
    execution: ExecutionSettings
    strategies: tuple[StrategySpec, ...]
    model_name: str
    model_kwargs: tuple[tuple[str, Any], ...]
    ensemble_size: int
    train: TrainSettings
    initial: InitialSettings
    mc: MCSettings
    query_size: int
    budget: int | None
    num_rounds: int | None
    score_batch_size: int
    grid: tuple = ()  # hyperparameter grid settings (jaxal.grid.parse)
    schedule: ScheduleSettings = ScheduleSettings()
    checkpoint_enabled: bool = True
    checkpoint_max_to_keep: int = 3
    checkpoint_async: bool = True
    checkpoint_every_epochs: int = 0  # > 0: save the training carry inside a round
    checkpoint_every_minutes: float = 0.0
    report_band: str = "std"
    # train.init_from: "" (every round from model.init), "pretrain" or "file:PATH"
    # (every round from those variables; jaxal.pretrain); pretrain: its settings.
    init_from: str = ""
    pretrain: PretrainSettings = PretrainSettings()

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.num_seeds))
