"""``run_experiment(config, workdir)``: one config, every strategy, every seed.

Reads top to bottom: setup (assemble the run, before anything compiles),
resume (from the last checkpoint), rounds (every strategy, all seeds at once),
results (files, table). What is written when is :mod:`jaxal.workdir`'s job.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxal import checkpoint as checkpoint_lib
from jaxal import config as config_lib
from jaxal import interrupt, parallel, report
from jaxal.assemble import Run, assemble, to_device  # noqa: F401  (to_device: public API)
from jaxal.live import LiveLog
from jaxal.lock import WorkdirLock, WorkdirLocked
from jaxal.loop import acquisition_rounds, init_state, rounds
from jaxal.workdir import DONE, DiskError, Finished, RunWriter, WorkdirError  # noqa: F401

# Only these keys may differ between a checkpointed run and its resumption.
_RESUMABLE_CHANGES = ("budget", "num_rounds")


class Resume(NamedTuple):
    """Where a checkpointed run goes on: the strategy in flight and its next round."""

    step: int
    strategy_index: int
    next_round: int
    rows: list[dict]  # the rows of the strategy in flight so far
    state: dict  # its flat checkpointed SeedState


def seeds_of(config) -> np.ndarray:
    return np.arange(int(config.seed), int(config.seed) + int(config.num_seeds))


def run_experiment(
    config,
    workdir: str,
    *,
    overwrite: bool = False,
    console=None,
    progress: bool = True,
    dataset=None,
    model: Any = None,
) -> list[dict]:
    """Run every strategy of ``config`` for all its seeds; write results to ``workdir``.

    Args:
      config: an experiment ``ConfigDict`` (see :func:`jaxal.config.base_config`).
      workdir: output folder (created if missing).
      overwrite: replace a finished run in ``workdir``.
      console: a ``rich.console.Console`` (default: a new one on stdout).
      progress: show a progress bar with ETA.
      dataset: your own :class:`jaxal.data.Dataset` (e.g. ``jaxal.data.from_arrays``)
        instead of ``config.dataset.name``.
      model: your own model instead of ``config.model``: a Flax Linen module with
        ``__call__(x, train) -> (logits, embedding)``, a ``factory(num_classes)``
        returning one, or a jaxal ``Model``.

    Returns:
      The rows of ``results.csv``.

    Raises:
      jaxal.config.ConfigError: invalid config (nothing has been compiled or written).
      WorkdirError: ``workdir`` holds a finished run and ``overwrite`` is False, is
        a file, or is in use by another live run.
      DiskError: a write failed (full disk, no permission); the last finished
        round's checkpoint is intact.
      jaxal.interrupt.Interrupted: SIGTERM or SIGINT; the run stopped at a safe
        point (``.where`` says after which round) and resumes when rerun.
    """
    from rich.console import Console

    # --- Setup: everything checked and built before anything compiles --------
    primary = jax.process_index() == 0  # multi-process: one writer of the run's files
    console = console or Console(quiet=not primary)
    if not budget_change_of_finished(config, workdir):  # that one is extended in place
        RunWriter(workdir).check_not_finished(overwrite)
    run = assemble(config, dataset=dataset, model=model)
    lanes = run.lanes  # seeds, or (grid setting, seed) pairs
    idx = parallel.local_seeds(run.placement, len(lanes))
    names = np.asarray(lanes.names)[lanes.setting]
    mine = [(int(lanes.seed[i]), str(names[i])) for i in idx]
    writer = RunWriter(
        workdir,
        primary=primary,
        process_index=jax.process_index(),
        multi_process=jax.process_count() > 1,
        own_seeds=mine,
    )
    config_json = _config_json(config, dataset, model, run)
    with contextlib.ExitStack() as stack:
        if primary:  # one run per workdir; a lock left by a killed run is taken over
            try:
                stack.enter_context(WorkdirLock(workdir))
            except WorkdirLocked as e:
                raise WorkdirError(str(e)) from None
        stack.enter_context(interrupt.graceful())  # SIGTERM / Ctrl-C: stop at a safe point
        compiles = stack.enter_context(_counting_compiles())
        rows = _run(run, writer, config_json, overwrite, console, progress)
        console.print(
            f"compiled {compiles['n']} XLA programs in {compiles['s']:.1f} s "
            "(included in the round times above)",
            highlight=False,
        )
        return rows


@contextlib.contextmanager
def _counting_compiles():
    """``{"n": XLA compilations, "s": their seconds}`` while the block runs (a
    run compiles a bounded set of programs: it must not grow with rounds)."""
    out = {"n": 0, "s": 0.0}

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            out["n"] += 1
            out["s"] += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield out
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def _run(run: Run, writer: RunWriter, config_json: dict, overwrite: bool, console, progress):
    """Resume, rounds and results of an assembled run (see :func:`run_experiment`)."""
    seeds, plan, labels, settings = run.lanes, run.plan, list(run.strategies), run.settings
    resuming = settings.checkpoint_enabled and not overwrite
    if resuming and _check_resumable(config_json, writer) is None:
        resuming = False
    with _disk("the run's config", writer):
        writer.start(config_json, overwrite)
    ckpt = None
    if settings.checkpoint_enabled:
        ckpt = checkpoint_lib.RunCheckpointer(
            writer.checkpoint_dir,
            max_to_keep=settings.checkpoint_max_to_keep,
            async_save=settings.checkpoint_async,
        )
    in_round = None  # checkpoint.every_epochs / every_minutes: saves inside a round
    if ckpt is not None and (settings.checkpoint_every_epochs or settings.checkpoint_every_minutes):
        from jaxal.in_round import InRoundCheckpoints

        in_round = InRoundCheckpoints(
            writer.checkpoint_dir,
            every_epochs=settings.checkpoint_every_epochs,
            every_minutes=settings.checkpoint_every_minutes,
            round_step=_step,
            budget=plan.budget,
            async_save=settings.checkpoint_async,
            guard=lambda: _disk("an in-round checkpoint", writer),
        )
    console.print(
        f"[bold]jaxal[/]: {run.dataset.name} (pool {plan.num_pool}, test "
        f"{run.dataset.x_test.shape[0]}, {plan.num_classes} classes), model {run.model.name}, "
        f"{len(seeds.seeds)} seeds"
        + (f" x {seeds.num_settings} grid settings" if seeds.grid else "")
        + f", strategies {', '.join(labels)}, "
        f"{plan.initial_size} -> {plan.budget} labels in steps of {plan.query_size}"
    )

    # --- Initial pools: self-supervised encoders trained (or read from their
    # cache, also on resume) once per run, before any seed's program runs --------
    from jaxal.initial import resolve_cache_dir

    with _disk("the initial-pool encoder cache", writer):
        run.prepare_initial(
            resolve_cache_dir(settings.initial, writer.workdir),
            log=lambda m: console.print(m, markup=False, highlight=False),
            write=writer.primary,
        )
    if settings.init_from:  # train.init_from: pretrained (cached) or a file's variables
        from jaxal import pretrain

        with _disk("the pretraining cache", writer):
            run.prepare_start(
                pretrain.resolve_cache_dir(settings.pretrain, writer.workdir),
                log=lambda m: console.print(m, markup=False, highlight=False),
                write=writer.primary,
            )

    # --- Resume: finished strategies from their records, the one in flight
    # from the latest readable checkpoint ---------------------------------------
    resume = _latest(ckpt) if resuming else None
    finished: dict[str, Finished] = {}
    if resume is not None:
        finished = writer.load_finished(labels, resume.strategy_index)
        console.print(
            f"resuming from checkpoint {resume.step}: strategy "
            f"{labels[resume.strategy_index]!r}, round {resume.next_round}"
        )
    # A changed budget (grow or shrink, mid-run or after the run finished)
    # brings every strategy to the new plan: rounds whose rows are those of a
    # run started with this budget are kept; the rest are recomputed from the
    # state the first differing round starts from (see `_retarget`).
    restart: dict[str, tuple[int, Any, list]] = {}
    if resume is not None:
        with _disk("the run's records", writer):
            finished, restart = _retarget_run(
                run, writer, ckpt, finished, resume, labels, console
            )
    all_rows = [r for f in finished.values() for r in f.rows]
    orders = {label: f.order for label, f in finished.items()}
    with _disk("metrics.jsonl", writer):
        if resume is None:
            writer.keep_live_log(labels, 0, 0)
        else:
            writer.keep_live_log(labels, resume.strategy_index, resume.next_round)

    # --- Rounds ---------------------------------------------------------------
    live = LiveLog(writer.workdir, config_json, enabled=writer.primary)  # per-round scalars
    last = "before its first round"  # where a stop leaves the run
    try:
        with _progress_bar(console, progress) as bar:
            # Progress and ETA count work, not rounds: a round costs about as
            # much as the labels it trains on, so later rounds weigh more.
            work = [plan.labels_at(r) for r in range(plan.num_rounds)]
            done = len(finished) * sum(work) + sum(sum(work[: v[0]]) for v in restart.values())
            task = bar.add_task("active learning", total=len(labels) * sum(work), completed=done)
            for si, label in enumerate(labels):
                if label in finished:
                    continue
                engine = run.engine(label)
                bar.update(task, description=f"{label} ({engine.seed_execution} over seeds)")
                # (the description names the strategy; rounds are printed line by line)
                state, start, rows = None, 0, []
                if label in restart:
                    start, flat, rows = restart[label]
                    if flat is not None:
                        template = init_state(engine, seeds, run.data)
                        state = _from_flat(flat, template, run.placement)
                    rows = list(rows)
                    all_rows += rows
                recent: list = []  # (round, state) of the last rounds: kept for budget changes
                hooks = None if in_round is None else in_round.for_strategy(si)
                for rec, state in rounds(  # noqa: B020 (each round's state replaces the last)
                    engine, seeds, run.data, state=state, start_round=start, in_round=hooks
                ):
                    new = report.rows(label, seeds, [rec])
                    rows += new
                    all_rows += new
                    if ckpt is not None:
                        meta = {
                            "config": config_json,
                            "strategy_index": si,
                            "next_round": rec.round + 1,
                            "rows": rows,
                        }
                        with _disk("a checkpoint", writer):
                            ckpt.save(_step(si, rec.round), state, meta)
                    recent = (recent + [(rec.round, state)])[-3:]
                    with _disk("results.csv", writer):
                        writer.write_rows(all_rows)
                        live.round(label, seeds, rec)
                    bar.console.print(report.format_row(label, rec), soft_wrap=True)
                    for lane in np.flatnonzero(np.asarray(rec.diverged, bool)):
                        where = f"seed {seeds.seed[lane]}"
                        if seeds.grid:
                            where += f" setting {seeds.names[seeds.setting[lane]]}"
                        bar.console.print(
                            f"[yellow]warning[/]: {label} {where} round {rec.round}: "
                            "training diverged (NaN/inf loss); this round's selection fell "
                            "back to random (results.csv column 'diverged')"
                        )
                    bar.advance(task, work[rec.round])
                    last = f"after round {rec.round} of {label!r}"
                orders[label] = parallel.to_host(state.order)
                with _disk("a finished strategy's record", writer):
                    writer.save_finished(si, label, rows, orders[label])
                    if ckpt is not None:  # the states a later budget change starts from
                        _save_finished_states(writer, si, recent[:-1])
    except interrupt.Interrupted as stop:
        stop.where = last
        raise
    finally:
        live.close()
        if ckpt is not None:
            with _disk("the last checkpoint", writer):
                ckpt.close()
                if in_round is not None:
                    in_round.close()

    # --- Results ----------------------------------------------------------------
    rank = {label: i for i, label in enumerate(labels)}  # a fresh run's row order
    all_rows.sort(key=lambda r: (rank[r["strategy"]], r["round"]))
    # Per series (strategy, or strategy@setting in a grid run): [S, budget].
    series, setting_of = {}, {}
    for label in labels:
        for (name, mask), g_name in zip(seeds.series(label), seeds.names, strict=True):
            series[name], setting_of[name] = np.asarray(orders[label])[mask], g_name
    acquired = {name: acquisition_rounds(o, plan) for name, o in series.items()}
    with _disk("the result files", writer):
        writer.finish(
            all_rows,
            series,
            acquired,
            seeds.seeds,
            title=f"{run.dataset.name} / {run.model.name}",
            console=console,
            band=settings.report_band,
            settings=setting_of,
        )
    return all_rows


@contextlib.contextmanager
def _disk(what: str, writer: RunWriter):
    """An OS error while writing ``what`` becomes one :class:`DiskError` line."""
    try:
        yield
    except OSError as e:
        raise DiskError(
            f"could not write {what} in {writer.workdir!r}: {e.strerror or e}; the last "
            "complete round's checkpoint and results.csv are kept — fix the disk and rerun "
            "the same command to resume"
        ) from None


def _progress_bar(console, enabled: bool):
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% of the work"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=True,
    )


def _config_json(config, dataset, model, run: Run) -> dict:
    """The resolved config as JSON; objects given from Python are named in it."""
    out = json.loads(config.to_json_best_effort())
    given = {}
    if dataset is not None:
        given["dataset"] = run.dataset.name
    if model is not None:
        given["model"] = run.model.name
    if given:
        out["python_objects"] = given
    return out


_STRIDE = 1_000_000  # checkpoint step = strategy index x _STRIDE + round (budget-free)


def _step(strategy_index: int, round_: int) -> int:
    return strategy_index * _STRIDE + round_


def _finished_states_dir(writer: RunWriter, index: int) -> str:
    import os

    return os.path.join(writer.checkpoint_dir, "finished", f"{index}-states")


def _save_finished_states(writer: RunWriter, index: int, recent: list) -> None:
    """Keep the states after a finished strategy's last rounds but one (the
    round a larger or slightly smaller budget recomputes from).

    Every process takes part: Orbax synchronises the processes when it opens
    a checkpoint directory, and each process writes the shards it owns."""
    if not recent:
        return
    with checkpoint_lib.RunCheckpointer(
        _finished_states_dir(writer, index),
        max_to_keep=len(recent),
        async_save=False,
        name=f"finished-{index}",
    ) as keep:
        for r, state in recent:
            keep.save(r, state, {"round": r})


def _retarget(rows: list[dict], plan) -> tuple[int, list[dict], bool]:
    """Where a strategy's recorded rounds stop being those of ``plan``.

    A recorded round is the new plan's round when it trained on the labels the
    plan gives it and labeled what the plan takes after it (``queried``);
    rounds before the first that is not are kept as they are (the same keys
    and arithmetic give the same rows, whatever the budget: the random draws
    are prefix-consistent in the buffer capacity).

    Returns ``(start, kept rows, done)``: ``done`` means every round of the
    new plan is recorded (a shrink to a round boundary: the last kept round's
    ``queried`` and ``scored`` become 0: the last round acquires nothing, so it
    scores nothing); otherwise rounds ``start, ...`` are to be run from
    the state after round ``start - 1``.
    """
    first = {}
    for r in rows:
        first.setdefault(int(r["round"]), r)
    j = 0
    while j in first and j < plan.num_rounds:
        n, q = int(first[j]["num_labeled"]), int(first[j].get("queried", -1))
        take = plan.take(n) if j < plan.num_acquisitions else 0
        if n != plan.labels_at(j) or q != take:
            break
        j += 1
    if j >= plan.num_rounds:
        return plan.num_rounds, [r for r in rows if r["round"] < plan.num_rounds], True
    last = plan.num_rounds - 1
    if j == last and j in first and int(first[j]["num_labeled"]) == plan.labels_at(j):
        kept = [r for r in rows if r["round"] < j]
        kept += [
            dict(r, queried=0, **({"scored": 0} if "scored" in r else {}))
            for r in rows
            if r["round"] == j
        ]
        return plan.num_rounds, kept, True
    return j, [r for r in rows if r["round"] < j], False


def _cut_order(order: np.ndarray, capacity: int) -> np.ndarray:
    order = np.asarray(order)[..., :capacity]
    pad = capacity - order.shape[-1]
    return np.pad(order, [(0, 0)] * (order.ndim - 1) + [(0, pad)], constant_values=-1)


def _retarget_run(
    run: Run, writer: RunWriter, ckpt, finished: dict, resume: Resume, labels, console
):
    """Every recorded strategy against the run's plan: ``(finished, restart)``.

    ``restart[label] = (start round, flat state after start - 1 or None, kept rows)``.

    Raises:
      ConfigError: the state a changed budget needs was not kept (one line).
    """
    plan = run.plan
    out: dict[str, Finished] = {}
    restart: dict[str, tuple[int, Any, list]] = {}
    recorded = dict(finished)
    in_flight = labels[resume.strategy_index]
    recorded[in_flight] = Finished(list(resume.rows), None)
    for si, label in enumerate(labels):
        if label not in recorded:
            continue
        rec = recorded[label]
        start, kept, done = _retarget(rec.rows, plan)
        if done:
            order = rec.order
            if order is None:  # the in-flight strategy's pools are in its state
                order = np.asarray(resume.state[".order"])
            out[label] = Finished(kept, _cut_order(order, plan.budget))
            if label == in_flight or kept != rec.rows:
                writer.save_finished(si, label, kept, out[label].order)
            continue
        flat = None
        if start > 0:
            flat = _state_after(ckpt, writer, si, start - 1, resume)
            if flat is None:
                raise config_lib.ConfigError(
                    f"config.budget={plan.budget}: strategy {label!r} would restart at round "
                    f"{start}, but the state after round {start - 1} was not kept (only a "
                    "finished strategy's last rounds are); choose a budget on a round "
                    "boundary of the old run (initial + j x query_size) or pass --overwrite"
                )
        restart[label] = (start, flat, kept)
        if (label != in_flight or start != resume.next_round) and console is not None:
            console.print(f"budget change: {label!r} goes on from round {start}")
    # strategies after the one in flight have not started: they run from round 0
    return out, restart


def _state_after(ckpt, writer: RunWriter, si: int, round_: int, resume: Resume):
    """The flat state after round ``round_`` of strategy ``si``, if kept."""
    if si == resume.strategy_index and round_ == resume.next_round - 1:
        return resume.state
    import os

    for directory, step in (
        (None, _step(si, round_)),
        (_finished_states_dir(writer, si), round_),
    ):
        if directory is None:
            keep = ckpt
        elif os.path.isdir(directory):
            keep = checkpoint_lib.RunCheckpointer(directory, async_save=False, name=f"kept-{si}")
        else:
            continue
        try:
            if keep is not None and step in keep.all_steps():
                flat, _ = keep.restore(step)
                return flat
        finally:
            if directory is not None:
                keep.close()
    return None


def _latest(ckpt) -> Resume | None:
    found = None if ckpt is None else ckpt.restore_latest_good()
    if found is None:
        return None
    step, flat, meta = found
    return Resume(
        step, int(meta["strategy_index"]), int(meta["next_round"]), list(meta["rows"]), flat
    )


def _check_resumable(config_json: dict, writer: RunWriter) -> dict | None:
    """The workdir's checkpointed config must match ``config`` (but the budget).

    Returns the saved config (``None``: nothing to resume).
    """
    import os

    if not os.path.exists(writer.checkpoint_dir):
        return None
    old = writer.saved_config()
    if old is None:
        return None
    saved = old
    diff = _budget_diff(old, config_json)
    if diff:
        raise config_lib.ConfigError(
            f"workdir {writer.workdir!r} holds a checkpointed run with a different config "
            f"({'; '.join(diff[:3])}); only the round budget may change on resume — "
            "use another --workdir or pass --overwrite"
        )
    budget_changed = any(old.get(k) != config_json.get(k) for k in _RESUMABLE_CHANGES)
    adaptive = (config_json.get("labeling_rate") or {}).get("schedule") == "adaptive"
    patience = (config_json.get("stop") or {}).get("patience") is not None
    if budget_changed and (adaptive or patience):
        raise config_lib.ConfigError(
            f"config.budget: workdir {writer.workdir!r} holds a run with another budget, and "
            "with an adaptive labeling rate or stop.patience its seeds' label counts differ, so "
            "it cannot be brought to a new budget; use another --workdir or pass --overwrite"
        )
    return saved


def _budget_diff(old: dict, new: dict) -> list[str]:
    """Differences between two config JSONs other than the budget (and checkpointing)."""
    old, new = dict(old), dict(new)
    for key in _RESUMABLE_CHANGES + ("checkpoint",):
        old.pop(key, None)
        new.pop(key, None)
    return _diff(old, new)


def budget_change_of_finished(config, workdir: str) -> bool:
    """``workdir`` holds a finished run of ``config`` with another budget: rerunning
    extends (or shrinks) it in place, without ``--overwrite``."""
    import os

    writer = RunWriter(workdir)
    old = writer.saved_config()
    if old is None or not os.path.exists(writer.path(DONE)):
        return False
    new = json.loads(config.to_json_best_effort())
    if "python_objects" in old or _budget_diff(old, new):
        return False
    return any(old.get(k) != new.get(k) for k in _RESUMABLE_CHANGES) and os.path.isdir(
        writer.checkpoint_dir
    )


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
