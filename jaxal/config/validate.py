"""Config checks, before anything is compiled or written: one line per bad key.

:func:`validate` needs no data; :func:`validate_sizes` runs once the dataset
is loaded; :func:`check_model` once the model is built (a user module's MC
capabilities).
"""

from __future__ import annotations

import math

from jaxal import data as data_lib
from jaxal import grid as grid_lib
from jaxal import initial as initial_lib
from jaxal import models as models_lib
from jaxal import pretrain as pretrain_lib
from jaxal import report as report_lib
from jaxal import strategies as strategies_lib
from jaxal import train as train_lib
from jaxal.config.errors import ConfigError, _fail
from jaxal.config.resolve import make_plan, model_kwargs
from jaxal.config.strategy_list import parse_strategies
from jaxal.settings import LABELING_RATES, ROUND_METRICS, Plan, TrainSettings

SEED_EXECUTION = ("auto", "vmap", "loop")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


# Keys whose values must have a type before anything compares or converts them;
# sizes must fit the int32 arrays they end up in.
_INTS = (
    "seed",
    "num_seeds",
    "num_devices",
    "seed_threads",
    "query_size",
    "ensemble_size",
    "score_batch_size",
    "mc.samples",
    "initial.size",
    "initial.per_class",
    "train.batch_size",
    "train.eval_batch_size",
    "train.augment.crop_padding",
    "train.warmup_epochs",
    "train.retrains",
    "checkpoint.every_epochs",
)
_OPTIONAL_INTS = ("budget", "num_rounds", "train.early_stop.patience")
_NUMBERS = (
    "train.learning_rate",
    "train.momentum",
    "train.weight_decay",
    "train.epochs",
    "train.warmup_start",
    "checkpoint.every_minutes",
)
_OPTIONAL_NUMBERS = ("train.early_stop.train_accuracy",)
# Augmentation strengths: (key, lowest, highest, unit).
_AUGMENT_RANGES = (
    ("train.augment.rotation", 0.0, 180.0, "degrees"),
    ("train.augment.contrast", 0.0, 1.0, "contrast factor spread"),
    ("train.augment.hue", 0.0, 0.5, "turns of the colour circle"),
    ("train.augment.brightness", 0.0, 10.0, "shift in input units"),
)
_STRINGS = (
    "seed_execution",
    "strategy",
    "train.optimizer",
    "train.schedule",
    "train.step_loop",
    "initial.strategy",
    "mc.mode",
    "model.name",
    "grid",
)
_BOOLS = ("train.reinit", "train.augment.flip", "train.batch_buckets")
_MAX_INT = 2**31 - 1


def _get(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _check_unknown_keys(config, known=None, path: str = "config") -> None:
    """Every key is one :func:`~jaxal.config.base_config` has (a typo such as
    ``train.epoch`` set from Python or a config file would otherwise be ignored)."""
    import difflib

    from jaxal.config.base import base_config

    known = base_config() if known is None else known
    for key in config.keys():
        if key not in known:
            close = difflib.get_close_matches(key, list(known.keys()), n=1)
            hint = f"; did you mean {path}.{close[0]}?" if close else " (see jaxal --help)"
            raise ConfigError(f"unknown config key {path}.{key}{hint}")
        sub, ref = config[key], known[key]
        if hasattr(sub, "keys") and hasattr(ref, "keys") and key != "model":
            _check_unknown_keys(sub, ref, f"{path}.{key}")


def _check_types(config) -> None:
    """Every typed key has a value of its type (the Python API can set anything)."""
    for key in _INTS + _OPTIONAL_INTS:
        v = _get(config, key)
        if v is None and key in _OPTIONAL_INTS:
            continue
        if not _is_int(v):
            _fail(key, v, "must be an integer" + (" or None" if key in _OPTIONAL_INTS else ""))
        if key != "seed" and abs(v) > _MAX_INT:
            _fail(key, v, f"must be at most {_MAX_INT} in size")
    for key in _NUMBERS + _OPTIONAL_NUMBERS:
        v = _get(config, key)
        if v is None and key in _OPTIONAL_NUMBERS:
            continue
        if not _is_number(v):
            _fail(key, v, "must be a finite number")
    for key in _STRINGS:
        v = _get(config, key)
        if not isinstance(v, str):
            _fail(key, v, "must be a string")
    for key in _BOOLS:
        v = _get(config, key)
        if not isinstance(v, bool):
            _fail(key, v, "must be True or False")


STEP_LOOP = ("auto", "device", "host")
MAX_RETRAINS = 64  # train.retrains: R replicas of each round's model
INITIAL = initial_lib.NAMES
MC_MODES = ("full", "head")


def _check_in_round_checkpoints(config) -> None:
    """``checkpoint.every_epochs`` / ``every_minutes``: checkpoints inside a round."""
    ck = config.checkpoint
    if ck.every_epochs < 0:
        _fail("checkpoint.every_epochs", ck.every_epochs, "must be >= 0 (0 = at round ends only)")
    if ck.every_minutes < 0:
        _fail("checkpoint.every_minutes", ck.every_minutes, "must be >= 0 (0 = off)")
    if not (ck.every_epochs or ck.every_minutes):
        return
    key = "checkpoint.every_epochs" if ck.every_epochs else "checkpoint.every_minutes"
    value = ck.every_epochs or ck.every_minutes
    if not ck.enabled:
        _fail(key, value, "needs checkpoint.enabled=True")
    if config.train.retrains > 1:
        _fail(
            key,
            value,
            "is not supported with train.retrains > 1 yet (set it to 0, or train.retrains=1)",
        )


def validate(config, *, custom_model=None) -> None:
    """Checks that need no data: names, signs, and strategy/model parameters.

    Args:
      config: the experiment config.
      custom_model: a model given from Python (``run_experiment(model=...)``):
        ``config.model.*`` is then not checked (the built model is, by
        :func:`check_model`).

    Raises:
      ConfigError: one line naming the key, the bad value and what is allowed.
    """
    _check_unknown_keys(config)
    _check_types(config)
    if config.seed_execution not in SEED_EXECUTION:
        _fail("seed_execution", config.seed_execution, f"allowed: {', '.join(SEED_EXECUTION)}")
    if int(config.num_seeds) < 1:
        _fail("num_seeds", config.num_seeds, "must be >= 1")
    if not 0 <= int(config.seed) <= 2**32 - int(config.num_seeds):
        _fail(
            "seed",
            config.seed,
            "seeds seed .. seed + num_seeds - 1 must lie in [0, 2**32) (uint32 PRNG seeds)",
        )
    if int(config.num_devices) < 0:
        _fail("num_devices", config.num_devices, "must be >= 0 (0 = all devices)")
    if int(config.seed_threads) < 0:
        _fail("seed_threads", config.seed_threads, "must be >= 0 (0 = auto)")
    specs = parse_strategies(config)
    names = [s.name for s in specs]
    for key, value in config.strategy_params.items():
        if value is not None and not any(key in strategies_lib.params_of(n) for n in names):
            _fail(f"strategy_params.{key}", value, f"not a parameter of {', '.join(names)}")
    try:
        data_lib.validate(config.dataset)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if custom_model is None:
        _validate_model(config)
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
    if not 0 <= t.warmup_epochs <= t.epochs:
        _fail("train.warmup_epochs", t.warmup_epochs, f"must be in [0, train.epochs={t.epochs}]")
    if not 0 <= t.warmup_start <= 1:
        _fail("train.warmup_start", t.warmup_start, "must be in [0, 1]")
    try:
        grid_lib.check(grid_lib.parse(config.grid), TrainSettings.of(t))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not 1 <= t.retrains <= MAX_RETRAINS:
        _fail("train.retrains", t.retrains, f"must be in [1, {MAX_RETRAINS}] (1 = train once)")
    _check_in_round_checkpoints(config)
    if t.augment.crop_padding < 0:
        _fail("train.augment.crop_padding", t.augment.crop_padding, "must be >= 0")
    for key, lo, hi, unit in _AUGMENT_RANGES:
        v = t.augment.get(key.rsplit(".", 1)[1], 0.0)  # absent = off
        if not (_is_number(v) and lo <= v <= hi):
            _fail(key, v, f"must be a number in [{lo:g}, {hi:g}] ({unit}; 0 = off)")
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
    try:
        initial_lib.validate(config.initial)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:  # train.init_from and config.pretrain (the round-start hook, jaxal.pretrain)
        pretrain_lib.validate(
            t.get("init_from", ""), config.get("pretrain"), config.get("ensemble_size", 1)
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if int(config.query_size) < 1:
        _fail("query_size", config.query_size, "must be >= 1 (points labeled per round)")
    if (config.budget is None) == (config.num_rounds is None):
        _fail("budget", config.budget, "set exactly one of config.budget and config.num_rounds")
    if config.num_rounds is not None and int(config.num_rounds) < 0:
        _fail("num_rounds", config.num_rounds, "must be >= 0")
    if config.report.band not in report_lib.BANDS:
        _fail("report.band", config.report.band, f"allowed: {', '.join(report_lib.BANDS)}")
    if config.mc.mode not in MC_MODES:
        _fail("mc.mode", config.mc.mode, f"allowed: {', '.join(MC_MODES)}")
    if int(config.mc.samples) < 1:
        _fail("mc.samples", config.mc.samples, "must be >= 1")
    if not isinstance(config.mc.get("consistent", False), bool):
        _fail("mc.consistent", config.mc.consistent, "must be True or False")
    if int(config.ensemble_size) < 1:
        _fail("ensemble_size", config.ensemble_size, "must be >= 1")
    if int(config.score_batch_size) < 1:
        _fail("score_batch_size", config.score_batch_size, "must be >= 1")
    _validate_sampling(config, specs)
    _validate_schedule(config)
    _validate_live(config)


WANDB_MODES = ("offline", "online", "disabled")


def _validate_live(config) -> None:
    """``config.live``: the optional writers' settings, and their packages."""
    import importlib.util

    live = config.get("live")
    if live is None:
        return
    for key in ("wandb", "mlflow"):
        if not isinstance(live[key], bool):
            _fail(f"live.{key}", live[key], "must be True or False")
    if live.wandb_mode not in WANDB_MODES:
        _fail("live.wandb_mode", live.wandb_mode, f"allowed: {', '.join(WANDB_MODES)}")
    for key, module, extra in (("wandb", "wandb", "wandb"), ("mlflow", "mlflow", "mlflow")):
        if live[key] and importlib.util.find_spec(module) is None:
            _fail(f"live.{key}", True, f"needs the {module} package: pip install 'jaxal[{extra}]'")


_SPLIT_OF = {"val_accuracy": "val_size", "val2_accuracy": "val2_size"}


def _validate_schedule(config) -> None:
    """``config.labeling_rate`` and ``config.stop`` (the Sherbrooke report's loop)."""
    lr, st = config.get("labeling_rate"), config.get("stop")
    k = int(config.query_size)
    if lr is not None:
        if lr.schedule not in LABELING_RATES:
            _fail("labeling_rate.schedule", lr.schedule, f"allowed: {', '.join(LABELING_RATES)}")
        for key in ("epsilon", "g"):
            if not _is_number(lr[key]) or not lr[key] > 0:
                _fail(f"labeling_rate.{key}", lr[key], "must be a finite number > 0")
        for key in ("R", "k0"):
            if not _is_int(lr[key]) or not 0 <= lr[key] <= k:
                _fail(
                    f"labeling_rate.{key}",
                    lr[key],
                    f"must be an integer in [0, query_size={k}] (0 = query_size; query_size "
                    "is the most one round can label)",
                )
        if lr.schedule == "adaptive":
            _check_metric(config, "labeling_rate.metric", lr.metric)
    if st is not None:
        if st.patience is not None and (not _is_int(st.patience) or st.patience < 1):
            _fail("stop.patience", st.patience, "must be an integer >= 1 or None")
        if not _is_number(st.min_delta) or st.min_delta < 0:
            _fail("stop.min_delta", st.min_delta, "must be a finite number >= 0")
        if st.patience is not None:
            _check_metric(config, "stop.metric", st.metric)


def _check_metric(config, key: str, metric) -> None:
    if metric not in ROUND_METRICS:
        _fail(key, metric, f"allowed: {', '.join(ROUND_METRICS)}")
    split = _SPLIT_OF.get(metric)
    if split and not config.dataset.get(split):
        _fail(key, metric, f"needs that validation split: set config.dataset.{split} > 0")


def _validate_model(config) -> None:
    name = config.model.name
    user = isinstance(name, str) and ":" in name
    if not user and name not in models_lib.NAMES:
        _fail(
            "model.name",
            name,
            f"allowed: {', '.join(models_lib.NAMES)}, or 'module:factory' for your own Flax module",
        )
    try:
        accepted = models_lib.params_of(name)
    except ValueError as e:
        raise ConfigError(f"config.{' '.join(str(e).split())}") from None
    open_ended = user and getattr(accepted, "accepts_any", False)
    for key, value in model_kwargs(config).items():
        if key not in accepted and not open_ended:
            _fail(
                f"model.{key}",
                value,
                f"model {name!r} accepts: {', '.join(accepted) or '(nothing)'}",
            )
    try:
        models_lib.validate(name, model_kwargs(config))
    except ValueError as e:
        raise ConfigError(f"config.{' '.join(str(e).split())}") from None


def _validate_sampling(config, specs, model=None) -> None:
    """Sample-based strategies need MC dropout (or an ensemble) the model can do.

    Without ``model`` a built-in model is checked from ``config.model``; a user
    factory (``module:factory``) is checked once built (:func:`check_model`).
    """
    ensemble = int(config.ensemble_size) > 1
    for spec in specs:  # builds each strategy: catches bad parameter values early
        try:
            needs = strategies_lib.get(spec.name, **spec.kwargs).needs
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"config.strategy {spec.label!r}: {' '.join(str(e).split())}"
            ) from None
        if not needs.samples or ensemble:
            continue
        if model is None:
            name = config.model.name
            if ":" in str(name):
                continue  # a user factory: its capabilities are known once it is built
            dropout = config.model.get("dropout")
            if dropout is None:
                dropout = models_lib.params_of(name).get("dropout", 0.0)
            if not dropout:
                _fail(
                    "model.dropout",
                    dropout,
                    f"strategy {spec.label!r} needs MC-dropout samples: set model.dropout > 0 "
                    "or ensemble_size > 1",
                )
            continue
        if not model.mc_dropout:
            _fail(
                "strategy",
                spec.label,
                f"model {model.name!r} cannot run MC dropout in eval mode (batch norm without "
                "a separate dropout switch); use ensemble_size > 1 or a strategy that needs "
                "no samples",
            )
        if config.mc.mode == "head" and not model.supports_head:
            _fail(
                "mc.mode",
                config.mc.mode,
                f"model {model.name!r} has no backbone/head split; use mc.mode='full'",
            )


def check_model(config, model) -> None:
    """What the built ``model`` must be able to do for the config's strategies
    (MC dropout, the ``head`` MC mode); still before anything compiles.

    Raises:
      ConfigError: one line naming the key.
    """
    _validate_sampling(config, parse_strategies(config), model)


def validate_sizes(config, dataset) -> Plan:
    """Checks against the loaded dataset (still before anything compiles).

    Returns:
      The run's :class:`~jaxal.settings.Plan`.
    """
    plan = make_plan(config, dataset)
    n, init, total = plan.num_pool, plan.initial_size, plan.budget
    try:
        initial_lib.validate_sizes(
            config.initial,
            dataset.y_train,
            plan.num_classes,
            num_seeds=int(config.num_seeds),
            x_shape=dataset.x_train.shape,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    key = initial_lib.size_key(config.initial)
    value = config.initial[key.split(".")[1]]
    if init > n:
        _fail(key, value, f"the initial pool ({init}) must not exceed the pool size {n}")
    if total > n:
        _fail("budget", total, f"must not exceed the pool size {n}")
    for spec in parse_strategies(config):
        m = spec.kwargs.get("m")
        if m is not None and not 1 <= int(m) <= n:
            where = "strategy_params.m" if config.strategy_params.get("m") == m else "strategy"
            _fail(where, m, f"the candidate pool must have 1..{n} (pool size) points")
    if init > total:
        _fail(key, value, f"the initial pool ({init}) must not exceed the budget {total}")
    return plan
