"""Experiment configs: the base ``ConfigDict``, its validation, and the typed
settings the engine reads.

* :mod:`.base`: :func:`base_config` (every key, with defaults), :func:`apply_overrides`;
* :mod:`.strategy_list`: ``config.strategy`` items, each with its own parameters;
* :mod:`.validate`: :func:`validate` (no data), :func:`validate_sizes` (with the
  dataset), :func:`check_model` (with the built model) — each raises
  :class:`ConfigError` with one line naming the key, the value and what is allowed;
* :mod:`.resolve`: :func:`settings` (typed :class:`~jaxal.settings.RunSettings`),
  :func:`make_plan` (the :class:`~jaxal.settings.Plan` of sizes), :func:`build_model`.

This package, the assembler and the CLI are the only places that know
``ml_collections``.
"""

from jaxal.config.base import EXCLUSIVE, apply_overrides, base_config, dataset_config
from jaxal.config.errors import ConfigError
from jaxal.config.resolve import (
    budget,
    build_model,
    initial_size,
    make_plan,
    model_kwargs,
    settings,
)
from jaxal.config.strategy_list import parse_strategies, strategy_kwargs, strategy_names
from jaxal.config.validate import (
    INITIAL,
    MC_MODES,
    SEED_EXECUTION,
    STEP_LOOP,
    check_model,
    validate,
    validate_sizes,
)

__all__ = [
    "EXCLUSIVE",
    "INITIAL",
    "MC_MODES",
    "SEED_EXECUTION",
    "STEP_LOOP",
    "ConfigError",
    "apply_overrides",
    "base_config",
    "budget",
    "build_model",
    "check_model",
    "dataset_config",
    "initial_size",
    "make_plan",
    "model_kwargs",
    "parse_strategies",
    "settings",
    "strategy_kwargs",
    "strategy_names",
    "validate",
    "validate_sizes",
]
