"""Experiment configs: the base ``ConfigDict`` and its validation.

Config files in ``configs/`` start from :func:`base_config` and override what
their experiment needs. :func:`validate` checks a config (and, once the dataset
is loaded, its sizes) before anything is compiled, and raises
:class:`ConfigError` with one line naming the key, the bad value and what is
allowed.
"""

from __future__ import annotations

import math

import ml_collections

from jaxal import data as data_lib
from jaxal import models as models_lib
from jaxal import strategies as strategies_lib
from jaxal import train as train_lib

SEED_EXECUTION = ("auto", "vmap", "loop")
STEP_LOOP = ("auto", "device", "host")
INITIAL = ("random", "class_balanced")
MC_MODES = ("full", "head")


def _model_keys() -> list[str]:
    """Every parameter of every model; in a config ``None`` means the model's default
    and a key set to a value must be accepted by the chosen model."""
    return sorted({p for n in models_lib.NAMES for p in models_lib.params_of(n)})


class ConfigError(ValueError):
    """An invalid experiment config (one line: key, bad value, what is allowed)."""


def _strategy_param_union() -> ml_collections.ConfigDict:
    """Every parameter of every registered strategy, all ``None`` (= default)."""
    keys = sorted({p for n in strategies_lib.names() for p in strategies_lib.params_of(n)})
    return ml_collections.ConfigDict(
        {k: ml_collections.FieldReference(None, field_type=object) for k in keys}
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

    c.dataset = data_lib.default_config()

    c.model = ml_collections.ConfigDict()
    c.model.name = "mlp"
    for k in _model_keys():
        c.model[k] = ml_collections.FieldReference(None, field_type=object)

    c.train = ml_collections.ConfigDict()
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3
    c.train.momentum = 0.9
    c.train.weight_decay = 0.0
    c.train.schedule = "constant"
    c.train.epochs = 50
    c.train.batch_size = 64
    c.train.eval_batch_size = 512
    # Where the step loop runs: "device" (one jitted while_loop per round),
    # "host" (Python loop of jitted steps; faster for conv nets on XLA:CPU), "auto".
    c.train.step_loop = "auto"
    c.train.reinit = True  # re-initialise the model each round (False: warm start)
    c.train.augment = ml_collections.ConfigDict({"crop_padding": 0, "flip": False})
    c.train.early_stop = ml_collections.ConfigDict()
    c.train.early_stop.train_accuracy = ml_collections.FieldReference(None, field_type=float)
    c.train.early_stop.patience = ml_collections.FieldReference(None, field_type=int)

    c.initial = ml_collections.ConfigDict()
    c.initial.strategy = "random"
    c.initial.size = 20  # for "random"
    c.initial.per_class = 2  # for "class_balanced"

    c.query_size = 10  # k, points labeled per round
    c.budget = ml_collections.FieldReference(None, field_type=int)  # total labels at the end
    c.num_rounds = ml_collections.FieldReference(None, field_type=int)  # acquisitions

    # Sample-based strategies (bald, variation_ratios, ...) read [T, N, C]
    # predictions: T MC-dropout passes, or the members of an ensemble.
    c.mc = ml_collections.ConfigDict({"samples": 20, "mode": "full"})
    c.ensemble_size = 1  # M > 1: a deep ensemble trained as an [M] array axis
    c.score_batch_size = 1024
    # Orbax checkpoint of the full run state after every round (exact resume).
    c.checkpoint = ml_collections.ConfigDict(
        {"enabled": True, "max_to_keep": 3, "async_save": True}
    )
    return c


def apply_overrides(config, overrides: dict) -> ml_collections.ConfigDict:
    """Set dotted keys in place (``{"train.epochs": 5}``), as ``--config.<key>`` does."""
    for key, value in overrides.items():
        node = config
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return config


def _fail(key: str, value, allowed: str) -> None:
    raise ConfigError(f"config.{key}={value!r} is invalid; {allowed}")


def strategy_names(config) -> list[str]:
    return [s.strip() for s in str(config.strategy).split(",") if s.strip()]


def model_kwargs(config) -> dict:
    """Model factory kwargs: the set (non-None) generic keys."""
    return {k: v for k, v in config.model.items() if k != "name" and v is not None}


def strategy_kwargs(config, name: str, num_pool: int | None = None) -> dict:
    """The set (non-None) strategy parameters ``name`` accepts. With ``num_pool``,
    a default candidate-pool size ``m`` larger than the pool is cut to the pool."""
    accepted = strategies_lib.params_of(name)
    kwargs = {k: v for k, v in config.strategy_params.items() if v is not None and k in accepted}
    default_m = accepted.get("m")
    if num_pool is not None and "m" not in kwargs and isinstance(default_m, int):
        if default_m > num_pool:
            kwargs["m"] = num_pool
    return kwargs


def initial_size(config, num_classes: int | None = None) -> int:
    if config.initial.strategy == "class_balanced":
        return int(config.initial.per_class) * int(num_classes or 0)
    return int(config.initial.size)


def validate(config) -> None:
    """Checks that need no data: names, signs, and strategy/model parameters."""
    if config.seed_execution not in SEED_EXECUTION:
        _fail("seed_execution", config.seed_execution, f"allowed: {', '.join(SEED_EXECUTION)}")
    if int(config.num_seeds) < 1:
        _fail("num_seeds", config.num_seeds, "must be >= 1")
    if int(config.num_devices) < 0:
        _fail("num_devices", config.num_devices, "must be >= 0 (0 = all devices)")
    if int(config.seed_threads) < 0:
        _fail("seed_threads", config.seed_threads, "must be >= 0 (0 = auto)")
    names = strategy_names(config)
    if not names:
        _fail("strategy", config.strategy, f"allowed: {', '.join(strategies_lib.names())}")
    for name in names:
        if name not in strategies_lib.REGISTRY:
            _fail("strategy", name, f"allowed: {', '.join(strategies_lib.names())}")
    for key, value in config.strategy_params.items():
        if value is not None and not any(key in strategies_lib.params_of(n) for n in names):
            _fail(f"strategy_params.{key}", value, f"not a parameter of {', '.join(names)}")
    try:
        data_lib.validate(config.dataset)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if config.model.name not in models_lib.NAMES:
        _fail("model.name", config.model.name, f"allowed: {', '.join(models_lib.NAMES)}")
    accepted = models_lib.params_of(config.model.name)
    for key, value in model_kwargs(config).items():
        if key not in accepted:
            _fail(
                f"model.{key}",
                value,
                f"model {config.model.name!r} accepts: {', '.join(accepted) or '(nothing)'}",
            )
    t = config.train
    if t.optimizer not in train_lib.OPTIMIZERS:
        _fail("train.optimizer", t.optimizer, f"allowed: {', '.join(train_lib.OPTIMIZERS)}")
    if t.step_loop not in STEP_LOOP:
        _fail("train.step_loop", t.step_loop, f"allowed: {', '.join(STEP_LOOP)}")
    if t.schedule not in train_lib.SCHEDULES:
        _fail("train.schedule", t.schedule, f"allowed: {', '.join(train_lib.SCHEDULES)}")
    for key in ("learning_rate", "epochs", "batch_size", "eval_batch_size"):
        v = t[key]
        if not isinstance(v, int | float) or isinstance(v, bool) or not v > 0:
            _fail(f"train.{key}", v, "must be a positive number")
    if not float(t.epochs).is_integer():
        _fail("train.epochs", t.epochs, "must be a positive integer")
    if t.weight_decay < 0:
        _fail("train.weight_decay", t.weight_decay, "must be >= 0")
    if t.augment.crop_padding < 0:
        _fail("train.augment.crop_padding", t.augment.crop_padding, "must be >= 0")
    es = t.early_stop
    if es.train_accuracy is not None and not 0 < es.train_accuracy <= 1:
        _fail("train.early_stop.train_accuracy", es.train_accuracy, "must be in (0, 1] or None")
    if es.patience is not None:
        if es.patience < 1:
            _fail("train.early_stop.patience", es.patience, "must be >= 1 or None")
        if not config.dataset.val_size:
            _fail(
                "train.early_stop.patience",
                es.patience,
                "needs a validation split: set config.dataset.val_size > 0",
            )
    if config.initial.strategy not in INITIAL:
        _fail("initial.strategy", config.initial.strategy, f"allowed: {', '.join(INITIAL)}")
    if config.initial.strategy == "random" and int(config.initial.size) < 1:
        _fail("initial.size", config.initial.size, "must be >= 1")
    if config.initial.strategy == "class_balanced" and int(config.initial.per_class) < 1:
        _fail("initial.per_class", config.initial.per_class, "must be >= 1")
    if int(config.query_size) < 1:
        _fail("query_size", config.query_size, "must be >= 1 (points labeled per round)")
    if (config.budget is None) == (config.num_rounds is None):
        _fail("budget", config.budget, "set exactly one of config.budget and config.num_rounds")
    if config.num_rounds is not None and int(config.num_rounds) < 0:
        _fail("num_rounds", config.num_rounds, "must be >= 0")
    if config.mc.mode not in MC_MODES:
        _fail("mc.mode", config.mc.mode, f"allowed: {', '.join(MC_MODES)}")
    if int(config.mc.samples) < 1:
        _fail("mc.samples", config.mc.samples, "must be >= 1")
    if int(config.ensemble_size) < 1:
        _fail("ensemble_size", config.ensemble_size, "must be >= 1")
    if int(config.score_batch_size) < 1:
        _fail("score_batch_size", config.score_batch_size, "must be >= 1")
    dropout = config.model.get("dropout")
    if dropout is None:
        dropout = models_lib.params_of(config.model.name).get("dropout", 0.0)
    for name in names:  # builds each strategy: catches bad parameter values early
        try:
            needs = strategies_lib.get(name, **strategy_kwargs(config, name)).needs
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config.strategy_params for {name!r}: {e}") from None
        if needs.samples and int(config.ensemble_size) == 1 and not dropout:
            _fail(
                "model.dropout",
                dropout,
                f"strategy {name!r} needs MC-dropout samples: set model.dropout > 0 "
                "or ensemble_size > 1",
            )


def build_model(config, num_classes: int):
    """The config's model (an ensemble of ``ensemble_size`` members when > 1)."""
    from jaxal.models.ensemble import ensemble

    model = models_lib.get_model(config.model.name, num_classes, **model_kwargs(config))
    size = int(config.ensemble_size)
    return ensemble(model, size) if size > 1 else model


def budget(config, num_classes: int) -> int:
    """Total labels at the end of the run."""
    if config.budget is not None:
        return int(config.budget)
    return initial_size(config, num_classes) + int(config.num_rounds) * int(config.query_size)


def num_acquisitions(config, num_classes: int) -> int:
    """Acquisition rounds; the last one labels fewer than k if k does not divide."""
    extra = budget(config, num_classes) - initial_size(config, num_classes)
    return math.ceil(extra / int(config.query_size))


def validate_sizes(config, dataset) -> None:
    """Checks against the loaded dataset (still before anything compiles)."""
    n = int(dataset.x_train.shape[0])
    c = int(dataset.num_classes)
    init = initial_size(config, c)
    total = budget(config, c)
    if config.initial.strategy == "class_balanced":
        import numpy as np

        smallest = int(np.bincount(dataset.y_train, minlength=c).min())
        if config.initial.per_class > smallest:
            _fail(
                "initial.per_class",
                config.initial.per_class,
                f"the smallest class of the pool has {smallest} points",
            )
    key = "initial.size" if config.initial.strategy == "random" else "initial.per_class"
    if init > n:
        _fail(
            key,
            getattr(config.initial, key.split(".")[1]),
            f"the initial pool ({init}) must not exceed the pool size {n}",
        )
    if total > n:
        _fail("budget", total, f"must not exceed the pool size {n}")
    m = config.strategy_params.get("m")
    if m is not None and not 1 <= int(m) <= n:
        _fail("strategy_params.m", m, f"the candidate pool must have 1..{n} (pool size) points")
    if init > total:
        _fail(
            key,
            getattr(config.initial, key.split(".")[1]),
            f"the initial pool ({init}) must not exceed the budget {total}",
        )
