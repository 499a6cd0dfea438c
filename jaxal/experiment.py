"""``run_experiment(config, workdir)``: one config, every strategy, every seed.

Loads the dataset, validates the config against it (before anything compiles),
runs each strategy's rounds with S seeds in one process and writes, in the
workdir: ``config.json``, ``results.csv`` (rewritten after every round, so a
crash loses at most the round in flight), ``labeled_indices.npz``,
``learning_curve.png`` and a ``DONE`` marker.

In a multi-process run every process writes the rows and pools of its own
seeds to ``processes/process_<i>/`` (and its own checkpoint shards); process 0
also writes the run's files above, the same as a one-process run's.
"""

from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import checkpoint as checkpoint_lib
from jaxal import config as config_lib
from jaxal import data as data_lib
from jaxal import parallel, report
from jaxal import strategies as strategies_lib
from jaxal.loop import acquisition_rounds, make_engine, make_train_phases, run_rounds
from jaxal.rng import seed_keys
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


def to_device(ds: data_lib.Dataset, placement=parallel.SINGLE_DEVICE) -> Data:
    """The dataset as device arrays: on the default device, or replicated on the mesh."""
    arrays = (ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.x_val, ds.y_val)
    if placement.mesh is None:
        return Data(*(jnp.asarray(a) for a in arrays))
    return parallel.put_shared(Data(*arrays), placement)


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

    primary = jax.process_index() == 0  # multi-process: one writer of result files
    console = console or Console(quiet=not primary)
    config_lib.validate(config)
    check_workdir(workdir, overwrite)
    ds = data_lib.load(config.dataset)
    config_lib.validate_sizes(config, ds)

    ckpt_dir = os.path.join(workdir, "checkpoints")
    if overwrite and primary and os.path.exists(ckpt_dir):
        shutil.rmtree(ckpt_dir)
    resume_from = None
    if config.checkpoint.enabled and os.path.exists(ckpt_dir):
        resume_from = _check_resumable(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    if primary:
        for stale in (DONE, "labeled_indices.npz", "learning_curve.png"):
            if os.path.exists(os.path.join(workdir, stale)):
                os.remove(os.path.join(workdir, stale))
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))

    seeds = seeds_of(config)
    names = config_lib.strategy_names(config)
    n_pool, n_cls = int(ds.x_train.shape[0]), int(ds.num_classes)
    init = config_lib.initial_size(config, n_cls)
    budget = config_lib.budget(config, n_cls)
    k = int(config.query_size)
    rounds_per = config_lib.num_acquisitions(config, n_cls) + 1
    model = config_lib.build_model(config, n_cls)
    try:
        placement = parallel.make_placement(
            len(seeds), int(config.num_devices), int(config.seed_threads)
        )
    except ValueError as e:
        raise config_lib.ConfigError(f"config.num_devices: {e}") from None
    data = to_device(ds, placement)
    mine = {int(x) for x in seeds[parallel.local_seeds(placement, len(seeds))]}  # own seeds
    own_dir = None
    if jax.process_count() > 1:
        own_dir = os.path.join(workdir, "processes", f"process_{jax.process_index()}")
        os.makedirs(own_dir, exist_ok=True)

    console.print(
        f"[bold]jaxal[/]: {ds.name} (pool {n_pool}, test {ds.x_test.shape[0]}, {n_cls} classes), "
        f"model {model.name}, {len(seeds)} seeds, strategies {', '.join(names)}, "
        f"{init} -> {budget} labels in steps of {k}"
    )
    ckpt = None
    if config.checkpoint.enabled:
        ckpt = checkpoint_lib.RunCheckpointer(
            ckpt_dir,
            max_to_keep=int(config.checkpoint.max_to_keep),
            async_save=bool(config.checkpoint.async_save),
        )
    # Progress so far: rows, finished strategies' orders, the state in flight.
    all_rows: list[dict] = []
    orders: dict[str, np.ndarray] = {}
    restored = None  # (strategy index, next round, flat state)
    if ckpt is not None and resume_from is not None:
        found = ckpt.restore_latest_good()
        if found is not None:
            step, flat, meta = found
            all_rows = list(meta["rows"])
            orders = {n: np.asarray(o, np.int32) for n, o in meta["orders"].items()}
            restored = (int(meta["strategy_index"]), int(meta["next_round"]), flat)
            console.print(
                f"resuming from checkpoint {step}: strategy {names[restored[0]]!r}, "
                f"round {restored[1]}"
            )
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
    config_json = json.loads(config.to_json_best_effort())
    try:
        with bar:
            done_rounds = len({(r["strategy"], r["round"]) for r in all_rows})
            task = bar.add_task(
                "active learning", total=len(names) * rounds_per, completed=done_rounds
            )
            for si, name in enumerate(names):
                if name in orders:
                    continue  # finished before the restart
                strategy = strategies_lib.get(
                    name, **config_lib.strategy_kwargs(config, name, n_pool)
                )
                engine = make_engine(config, model, strategy, n_pool, n_cls, budget, phases)
                bar.update(task, description=f"{name} ({engine.seed_execution} over seeds)")
                state, start = None, 0
                if restored is not None and restored[0] == si:
                    template = engine.init(parallel.put_seeds(seed_keys(seeds), placement), data)
                    state, start = _from_flat(restored[2], template, placement), restored[1]

                def on_round(rec, new_state, name=name, si=si):
                    all_rows.extend(report.rows(name, seeds, [rec]))
                    if ckpt is not None:
                        meta = {
                            "config": config_json,
                            "strategy_index": si,
                            "next_round": rec.round + 1,
                            "rows": all_rows,
                            "orders": {n: o.tolist() for n, o in orders.items()},
                        }
                        ckpt.save(si * rounds_per + rec.round, new_state, meta)
                    if primary:
                        report.write_csv(os.path.join(workdir, "results.csv"), all_rows)
                    if own_dir is not None:
                        report.write_csv(
                            os.path.join(own_dir, "results.csv"),
                            [r for r in all_rows if r["seed"] in mine],
                        )
                    bar.console.print(report.format_row(name, rec), soft_wrap=True)
                    bar.advance(task)

                state, _ = run_rounds(
                    engine,
                    seeds,
                    data,
                    init_size=init,
                    query_size=k,
                    budget=budget,
                    on_round=on_round,
                    state=state,
                    start_round=start,
                )
                orders[name] = parallel.to_host(state.order)
    finally:
        if ckpt is not None:
            ckpt.close()

    rounds = {n: acquisition_rounds(o, init, k) for n, o in orders.items()}
    if own_dir is not None:
        pick = np.isin(seeds, sorted(mine))
        report.write_labeled_indices(
            os.path.join(own_dir, "labeled_indices.npz"),
            {n: o[pick] for n, o in orders.items()},
            {n: r[pick] for n, r in rounds.items()},
            seeds[pick],
        )
    if not primary:
        return all_rows
    report.write_labeled_indices(
        os.path.join(workdir, "labeled_indices.npz"), orders, rounds, seeds
    )
    report.write_csv(os.path.join(workdir, "results.csv"), all_rows)
    report.plot_learning_curves(
        os.path.join(workdir, "learning_curve.png"), all_rows, title=f"{ds.name} / {model.name}"
    )
    report.write_tensorboard(os.path.join(workdir, "tensorboard"), all_rows)
    console.print(report.summary_table(all_rows))
    console.print(f"results in {os.path.abspath(workdir)}")
    with open(os.path.join(workdir, DONE), "w") as f:
        f.write("finished\n")
    return all_rows


# Only these keys may differ between a checkpointed run and its resumption.
_RESUMABLE_CHANGES = ("budget", "num_rounds")


def _check_resumable(config, workdir: str) -> str | None:
    """The workdir's checkpointed config must match ``config`` (but the budget)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        old = json.load(f)
    new = json.loads(config.to_json_best_effort())
    for key in _RESUMABLE_CHANGES + ("checkpoint",):
        old.pop(key, None)
        new.pop(key, None)
    diff = _diff(old, new)
    if diff:
        raise config_lib.ConfigError(
            f"workdir {workdir!r} holds a checkpointed run with a different config "
            f"({'; '.join(diff[:3])}); only the round budget may change on resume — "
            "use another --workdir or pass --overwrite"
        )
    return path


def _diff(old, new, prefix: str = "config") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{prefix}.{key}")
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def _from_flat(flat: dict, template, placement):
    """A restored flat ``{path: array}`` checkpoint in ``template``'s structure.

    The acquisition-order buffer is padded with -1 (or cut) to the template's
    capacity, so a run can be resumed with a larger or smaller budget.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for path, leaf in leaves:
        value = flat[jax.tree_util.keystr(path)]
        if value.shape != leaf.shape:  # `order [S, capacity]` after a budget change
            value = np.asarray(value)
            cap = leaf.shape[-1]
            value = np.pad(
                value[..., :cap],
                [(0, 0)] * (value.ndim - 1) + [(0, max(0, cap - value.shape[-1]))],
                constant_values=-1,
            )
        out.append(value)
    return parallel.put_seeds(jax.tree.unflatten(treedef, out), placement)
