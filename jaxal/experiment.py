"""``run_experiment(config, workdir)``: one config, every strategy, every seed.

Loads the dataset, validates the config against it (before anything compiles),
runs each strategy's rounds with S seeds in one process and writes, in the
workdir: ``config.json``, ``results.csv`` (rewritten after every round, so a
crash loses at most the round in flight), ``labeled_indices.npz``,
``learning_curve.png`` and a ``DONE`` marker.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from jaxal import config as config_lib
from jaxal import data as data_lib
from jaxal import parallel, report
from jaxal import strategies as strategies_lib
from jaxal.loop import acquisition_rounds, make_engine, make_train_phases, run_rounds
from jaxal.train import Data

DONE = "DONE"


class WorkdirError(RuntimeError):
    """The workdir already holds a finished run."""


def check_workdir(workdir: str, overwrite: bool) -> None:
    if os.path.exists(os.path.join(workdir, DONE)) and not overwrite:
        raise WorkdirError(
            f"workdir {workdir!r} already holds a finished run (results.csv, {DONE}); "
            "choose another --workdir or pass --overwrite"
        )


def to_device(ds: data_lib.Dataset) -> Data:
    return Data(
        *(
            jnp.asarray(a)
            for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.x_val, ds.y_val)
        )
    )


def seeds_of(config) -> np.ndarray:
    return np.arange(int(config.seed), int(config.seed) + int(config.num_seeds))


def run_experiment(
    config, workdir: str, *, overwrite: bool = False, console=None, progress: bool = True
) -> list[dict]:
    """Run every strategy of ``config`` for all its seeds; write results to ``workdir``.

    Args:
      config: an experiment ``ConfigDict`` (see :func:`jaxal.config.base_config`).
      workdir: output folder (created if missing).
      overwrite: replace a finished run in ``workdir``.
      console: a ``rich.console.Console`` (default: a new one on stdout).
      progress: show a progress bar with ETA.

    Returns:
      The rows of ``results.csv``.

    Raises:
      jaxal.config.ConfigError: invalid config (nothing has been compiled).
      WorkdirError: ``workdir`` holds a finished run and ``overwrite`` is False.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = console or Console()
    config_lib.validate(config)
    check_workdir(workdir, overwrite)
    ds = data_lib.load(config.dataset)
    config_lib.validate_sizes(config, ds)

    os.makedirs(workdir, exist_ok=True)
    for stale in (DONE, "results.csv", "labeled_indices.npz", "learning_curve.png"):
        if os.path.exists(os.path.join(workdir, stale)):
            os.remove(os.path.join(workdir, stale))
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True))

    seeds = seeds_of(config)
    names = config_lib.strategy_names(config)
    n_pool, n_cls = int(ds.x_train.shape[0]), int(ds.num_classes)
    init = config_lib.initial_size(config, n_cls)
    budget = config_lib.budget(config, n_cls)
    rounds_per = config_lib.num_acquisitions(config, n_cls) + 1
    model = config_lib.build_model(config, n_cls)
    try:
        placement = parallel.make_placement(len(seeds_of(config)), int(config.num_devices))
    except ValueError as e:
        raise config_lib.ConfigError(f"config.num_devices: {e}") from None
    data = parallel.put_shared(to_device(ds), placement)

    console.print(
        f"[bold]jaxal[/]: {ds.name} (pool {n_pool}, test {ds.x_test.shape[0]}, {n_cls} classes), "
        f"model {model.name}, {len(seeds)} seeds, strategies {', '.join(names)}, "
        f"{init} -> {budget} labels in steps of {config.query_size}"
    )
    all_rows: list[dict] = []
    orders, rounds = {}, {}
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rounds"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
        transient=True,
    )
    phases = make_train_phases(config, model, placement)
    with bar:
        task = bar.add_task("active learning", total=len(names) * rounds_per)
        for name in names:
            strategy = strategies_lib.get(name, **config_lib.strategy_kwargs(config, name))
            engine = make_engine(config, model, strategy, n_pool, n_cls, budget, phases)
            bar.update(task, description=f"{name} ({engine.seed_execution} over seeds)")

            def on_round(rec, name=name):
                all_rows.extend(report.rows(name, seeds, [rec]))
                report.write_csv(os.path.join(workdir, "results.csv"), all_rows)
                bar.console.print(report.format_row(name, rec), soft_wrap=True)
                bar.advance(task)

            state, _ = run_rounds(
                engine,
                seeds,
                data,
                init_size=init,
                query_size=int(config.query_size),
                budget=budget,
                on_round=on_round,
            )
            orders[name] = np.asarray(state.order)
            rounds[name] = acquisition_rounds(orders[name], init, int(config.query_size))

    report.write_labeled_indices(
        os.path.join(workdir, "labeled_indices.npz"), orders, rounds, seeds
    )
    report.plot_learning_curves(
        os.path.join(workdir, "learning_curve.png"), all_rows, title=f"{ds.name} / {model.name}"
    )
    console.print(report.summary_table(all_rows))
    console.print(f"results in {os.path.abspath(workdir)}")
    with open(os.path.join(workdir, DONE), "w") as f:
        f.write("finished\n")
    return all_rows


def load_rows(workdir: str) -> Sequence[dict]:
    return report.read_csv(os.path.join(workdir, "results.csv"))
