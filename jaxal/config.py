"""Experiment configs: the base ``ConfigDict`` and its validation.

Config files in ``configs/`` start from :func:`base_config` and override what
their experiment needs. :func:`validate` checks a config (and, once the dataset
is loaded, its sizes) before anything is compiled, and raises
:class:`ConfigError` with one line naming the key, the bad value and what is
allowed.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from jaxal import data as data_lib
from jaxal import initial as initial_lib
from jaxal import models as models_lib
from jaxal import strategies as strategies_lib
from jaxal import train as train_lib
from jaxal.settings import (
    ExecutionSettings,
    InitialSettings,
    MCSettings,
    Plan,
    RunSettings,
    StrategySpec,
    TrainSettings,
)

SEED_EXECUTION = ("auto", "vmap", "loop")
STEP_LOOP = ("auto", "device", "host")
INITIAL = initial_lib.NAMES
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
            val_size=0,
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


def _fail(key: str, value, allowed: str) -> None:
    raise ConfigError(f"config.{key}={value!r} is invalid; {allowed}")


# Strategies -----------------------------------------------------------------


def _split_top(text: str, sep: str = ",") -> list[str]:
    """``text`` split at ``sep`` outside parentheses."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [p.strip() for p in out if p.strip()]


def _literal(text: str):
    """A parameter value from the strategy list: int, float, bool, None or a string."""
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip("'\"")


def parse_strategies(config) -> tuple[StrategySpec, ...]:
    """The strategies of ``config.strategy``, each with its own parameters.

    ``config.strategy`` is a comma-separated list of items, each
    ``[label=]name[(key=value, ...)]``, e.g.
    ``"random,subsample(base=entropy,m=500),wide=subsample(base=margin,m=2000)"``.
    An item's parameters are the flat ``config.strategy_params.<key>`` values
    its strategy accepts (the older form, shared by every strategy listed),
    overridden by the item's own ``(key=value)`` ones. The label (default: the
    item as written, without spaces) names the strategy in the results.

    Raises:
      ConfigError: bad syntax, an unknown name or parameter, a repeated label.
    """
    text = str(config.strategy or "")
    items = _split_top(text)
    if not items:
        _fail("strategy", config.strategy, f"allowed: {', '.join(strategies_lib.names())}")
    specs, seen = [], {}
    for item in items:
        label = None
        head = item.split("(", 1)[0]
        if "=" in head:
            label, item = (p.strip() for p in item.split("=", 1))
            head = item.split("(", 1)[0]
        name = head.strip()
        inline: dict = {}
        if "(" in item:
            if not item.endswith(")") or item.count("(") != item.count(")"):
                _fail("strategy", item, "write name(key=value, ...), e.g. subsample(m=500)")
            for arg in _split_top(item[item.index("(") + 1 : -1]):
                if "=" not in arg:
                    _fail("strategy", item, f"parameter {arg!r} needs a value: key=value")
                k, v = (p.strip() for p in arg.split("=", 1))
                inline[k] = _literal(v)
        if name not in strategies_lib.REGISTRY:
            _fail("strategy", name, f"allowed: {', '.join(strategies_lib.names())}")
        accepted = strategies_lib.params_of(name)
        for k in inline:
            if k not in accepted:
                _fail(
                    "strategy",
                    item,
                    f"strategy {name!r} has no parameter {k!r}; "
                    f"allowed: {', '.join(accepted) or '(none)'}",
                )
        params = {
            k: v for k, v in config.strategy_params.items() if v is not None and k in accepted
        }
        params.update(inline)
        label = label or "".join(item.split())
        if label in seen:
            _fail(
                "strategy",
                config.strategy,
                f"{label!r} is listed twice (each runs once per seed, and the runs would be "
                "identical); remove the repeat or give it other parameters, "
                "e.g. subsample(base=margin,m=500)",
            )
        seen[label] = True
        specs.append(StrategySpec(label, name, tuple(params.items())))
    return tuple(specs)


def strategy_names(config) -> list[str]:
    """The labels of the run's strategies, in run order."""
    return [s.label for s in parse_strategies(config)]


def model_kwargs(config) -> dict:
    """Model factory kwargs: the set (non-None) generic keys."""
    return {k: v for k, v in config.model.items() if k != "name" and v is not None}


def strategy_kwargs(spec: StrategySpec, num_pool: int | None = None) -> dict:
    """``spec``'s parameters. With ``num_pool``, a default candidate-pool size
    ``m`` larger than the pool is cut to the pool."""
    kwargs = spec.kwargs
    default_m = strategies_lib.params_of(spec.name).get("m")
    if num_pool is not None and "m" not in kwargs and isinstance(default_m, int):
        if default_m > num_pool:
            kwargs["m"] = num_pool
    return kwargs


def initial_size(config, num_classes: int | None = None) -> int:
    return initial_lib.initial_size(config.initial, num_classes)


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
    if config.seed_execution not in SEED_EXECUTION:
        _fail("seed_execution", config.seed_execution, f"allowed: {', '.join(SEED_EXECUTION)}")
    if int(config.num_seeds) < 1:
        _fail("num_seeds", config.num_seeds, "must be >= 1")
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
    try:
        initial_lib.validate(config.initial)
    except ValueError as e:
        raise ConfigError(str(e)) from None
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
    _validate_sampling(config, specs)


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


def build_model(config_or_settings, num_classes: int):
    """The config's model (an ensemble of ``ensemble_size`` members when > 1)."""
    from jaxal.models.ensemble import ensemble

    if isinstance(config_or_settings, RunSettings):
        name = config_or_settings.model_name
        kwargs = dict(config_or_settings.model_kwargs)
        size = config_or_settings.ensemble_size
    else:
        name = config_or_settings.model.name
        kwargs = model_kwargs(config_or_settings)
        size = int(config_or_settings.ensemble_size)
    model = models_lib.get_model(name, num_classes, **kwargs)
    return ensemble(model, size) if size > 1 else model


def budget(config, num_classes: int) -> int:
    """Total labels at the end of the run."""
    if config.budget is not None:
        return int(config.budget)
    return initial_size(config, num_classes) + int(config.num_rounds) * int(config.query_size)


def make_plan(config, dataset) -> Plan:
    """Every size of the run, from the config and the loaded dataset (once)."""
    c = int(dataset.num_classes)
    return Plan(
        num_pool=int(dataset.x_train.shape[0]),
        num_classes=c,
        initial_size=initial_size(config, c),
        query_size=int(config.query_size),
        budget=budget(config, c),
    )


def validate_sizes(config, dataset) -> Plan:
    """Checks against the loaded dataset (still before anything compiles).

    Returns:
      The run's :class:`~jaxal.settings.Plan`.
    """
    plan = make_plan(config, dataset)
    n, init, total = plan.num_pool, plan.initial_size, plan.budget
    try:
        initial_lib.validate_sizes(config.initial, dataset.y_train, plan.num_classes)
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


def settings(config) -> RunSettings:
    """The typed settings of a validated config: what the engine reads."""
    t = config.train
    return RunSettings(
        seed=int(config.seed),
        num_seeds=int(config.num_seeds),
        execution=ExecutionSettings(
            str(config.seed_execution), int(config.seed_threads), int(config.num_devices)
        ),
        strategies=parse_strategies(config),
        model_name=str(config.model.name),
        model_kwargs=tuple(model_kwargs(config).items()),
        ensemble_size=int(config.ensemble_size),
        train=TrainSettings.of(t),
        initial=InitialSettings.of(config.initial),
        mc=MCSettings(int(config.mc.samples), str(config.mc.mode)),
        query_size=int(config.query_size),
        budget=None if config.budget is None else int(config.budget),
        num_rounds=None if config.num_rounds is None else int(config.num_rounds),
        score_batch_size=int(config.score_batch_size),
        checkpoint_enabled=bool(config.checkpoint.enabled),
        checkpoint_max_to_keep=int(config.checkpoint.max_to_keep),
        checkpoint_async=bool(config.checkpoint.async_save),
    )
