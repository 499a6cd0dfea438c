"""From a validated config to what the engine reads: typed settings, the plan
of sizes, the model."""

from __future__ import annotations

import dataclasses

from jaxal import grid as grid_lib
from jaxal import initial as initial_lib
from jaxal import models as models_lib
from jaxal.config.strategy_list import parse_strategies
from jaxal.settings import (
    ExecutionSettings,
    InitialSettings,
    MCSettings,
    Plan,
    PretrainSettings,
    RunSettings,
    ScheduleSettings,
    TrainSettings,
)


def model_kwargs(config) -> dict:
    """Model factory kwargs: the set (non-None) generic keys."""
    return {k: v for k, v in config.model.items() if k != "name" and v is not None}


def initial_size(config, num_classes: int | None = None) -> int:
    return initial_lib.initial_size(config.initial, num_classes)


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


def schedule_settings(config) -> ScheduleSettings:
    """``config.labeling_rate`` and ``config.stop`` (defaults where a config lacks them)."""
    lr, st = config.get("labeling_rate"), config.get("stop")
    out = ScheduleSettings()
    if lr is not None:
        out = dataclasses.replace(
            out,
            rate=str(lr.schedule),
            epsilon=float(lr.epsilon),
            g=float(lr.g),
            R=int(lr.R or 0),
            k0=int(lr.k0 or 0),
            rate_metric=str(lr.metric),
        )
    if st is not None:
        out = dataclasses.replace(
            out,
            patience=None if st.patience is None else int(st.patience),
            min_delta=float(st.min_delta),
            stop_metric=str(st.metric),
        )
    return out


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
        mc=MCSettings(
            int(config.mc.samples), str(config.mc.mode), bool(config.mc.get("consistent", False))
        ),
        query_size=int(config.query_size),
        budget=None if config.budget is None else int(config.budget),
        num_rounds=None if config.num_rounds is None else int(config.num_rounds),
        score_batch_size=int(config.score_batch_size),
        grid=grid_lib.parse(config.get("grid", "")),
        schedule=schedule_settings(config),
        checkpoint_enabled=bool(config.checkpoint.enabled),
        checkpoint_max_to_keep=int(config.checkpoint.max_to_keep),
        checkpoint_async=bool(config.checkpoint.async_save),
        checkpoint_every_epochs=int(config.checkpoint.get("every_epochs", 0)),
        checkpoint_every_minutes=float(config.checkpoint.get("every_minutes", 0.0)),
        report_band=str(config.report.band),
        init_from=str(config.train.get("init_from", "") or ""),
        pretrain=PretrainSettings.of(config.get("pretrain")),
    )
