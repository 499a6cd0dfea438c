"""Re-optimise the hyperparameters on the labeled pools of a finished grid run:
the "BO" column of Huseljic et al. (2023), Table 1.

::

    python experiments/hp_role/reoptimize.py RUN_DIR --labels 2000,4000 --out DIR \\
        [--splits 3] [--val-fraction 0.1] [--grid-size 7] [--lanes N] [--set KEY=VALUE ...]

``RUN_DIR`` is a finished jaxal run with a hyperparameter grid (``config.grid``,
e.g. ``experiments/hp_role/config.py``). For every series (strategy x grid
setting), every seed and every ``|L|`` of ``--labels``:

1. **Pool**: the first ``|L|`` labels the seed acquired (``labeled_indices.npz``,
   acquisition order; :func:`jaxal.pools.load`).
2. **Validation splits**: ``--splits`` (3) random splits holding out
   ``round(0.1 |L|)`` of the pool. This follows the paper (Sec. 3: "we randomly
   sample a validation split of 10% of the labeled pool ... we use three
   validation splits for each HP"); the authors' ``hparam.py`` uses a 10-fold
   ``KFold`` instead. Split ``j`` of seed ``s`` at ``|L|`` holds out the pool
   positions ``numpy.random.default_rng((split_seed, s, |L|, j)).permutation(|L|)[:n_val]``:
   the same positions for every series (common random numbers across strategies
   and settings), different across seeds and splits, reproducible.
3. **Search** over learning rate x weight decay, each log-uniform in
   ``[1e-5, 1e-1]`` (the paper's ranges, their ``tune.loguniform(1e-5, .1)``):
   a log-spaced ``--grid-size`` x ``--grid-size`` grid (default 7 x 7 = 49,
   about the paper's 50 trials) plus the run's own grid settings (their code
   also evaluates a given point first, ``points_to_evaluate``; the search can
   thus never do worse on validation than the DAL setting). Each candidate trains
   on the other 90 % with the run's recipe (model, epochs, batch, optimizer,
   momentum, schedule, warm-up, augmentation; ``--set`` changes it) and is scored
   by its accuracy on the held-out 10 % after the last epoch (as their
   ``trainer.validate``). The chosen setting has the highest mean validation
   accuracy over the splits; ties (frequent on small validation sets) go to the
   lower mean validation NLL; a candidate that diverged on a split is out.
4. **Retrain** on the whole pool with the chosen setting and report its accuracy on
   the test split.

**Why a grid, not TPE.** The paper ran Bayesian optimisation (optuna's TPE sampler
through ray tune, 50 trials per pool). TPE is sequential: each trial is proposed
from the ones before it. A grid's candidates are independent, so here they train
side by side as lanes of one jaxal program — the optimizer's hyperparameters
are injected data (:mod:`jaxal.grid`), so one compiled program serves every
candidate, split, seed, series and ``|L|`` (``--lanes`` of them per call), and on
an accelerator the lanes fill the device instead of 50 sequential batch-32
trainings leaving it mostly idle. It also needs no extra dependency and is
deterministic. The price: a 7 x 7 grid over four decades has a spacing of
10^(2/3) = 4.6x per axis, so it finds the optimum to within that factor, where
TPE concentrates later trials near the best region (``--grid-size 9``: 3.2x).

**Keys.** A lane of seed ``s`` at ``|L|`` uses the run's keys of seed ``s`` in the
round in which the run had ``|L|`` labels (model initialisation, batch order,
augmentation), so retraining with the DAL setting on the whole pool reproduces
the run's own test accuracy at ``|L|`` (bit for bit under
``seed_execution=loop``; ``tests/test_hp_role.py``): the re-opt column differs
from the DAL column only by the hyperparameters.

Outputs in ``--out``: ``table1.md`` / ``table1.csv`` (rows ``(|L|, strategy)``;
per DAL setting the run's own test accuracy at ``|L|`` ("DAL") and the
re-optimised one ("re-opt"), mean ± std over seeds, %, std with ``ddof=0`` as
jaxal's tables), ``reoptimized.csv`` (per series and seed: the chosen setting,
its mean validation accuracy, the test accuracies), ``search.csv`` (every
candidate's validation accuracy and NLL per split), ``splits.npz``
(``<|L|>/<series>/val``: ``[S, splits, n_val]`` held-out pool indices),
``reoptimize.json`` (the settings) and ``tasks.jsonl`` (each trained lane,
appended as it finishes: rerunning the same command resumes where it stopped).
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import json
import math
import os
import sys
from collections.abc import Sequence

import numpy as np

LR_RANGE = (1e-5, 1e-1)
WD_RANGE = (1e-5, 1e-1)


class ReoptError(ValueError):
    """The re-optimisation cannot run: one line saying why."""


# --- the finished run -------------------------------------------------------------------


@dataclasses.dataclass
class FinishedRun:
    path: str
    config: dict  # config.json
    rows: list[dict]  # results.csv
    seeds: np.ndarray  # [S]
    budget: int
    strategies: list[str]  # in run order
    settings: list[tuple[str, float, float]]  # (name, learning rate, weight decay), grid order

    def series(self, strategy: str, setting: str) -> str:
        return f"{strategy}@{setting}"


def read_run(path: str) -> FinishedRun:
    """A finished grid run, checked (one-line :class:`ReoptError` otherwise)."""
    from jaxal import grid as grid_lib

    if not os.path.isdir(path):
        raise ReoptError(f"{path!r} is not a folder (expected a finished jaxal run)")
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        raise ReoptError(f"{path!r} has no config.json: not a jaxal workdir")
    if not os.path.isfile(os.path.join(path, "DONE")):
        raise ReoptError(f"the run in {path!r} is not finished (no DONE); finish it first")
    with open(cfg_path) as f:
        config = json.load(f)
    settings = grid_lib.parse(config.get("grid") or "")
    if not settings:
        raise ReoptError(
            f"the run in {path!r} has no hyperparameter grid (config.grid is empty); "
            "re-optimisation compares the DAL settings of a grid run "
            "(e.g. experiments/hp_role/config.py)"
        )
    with open(os.path.join(path, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    with np.load(os.path.join(path, "labeled_indices.npz")) as z:
        seeds = np.asarray(z["seeds"])
        budget = int(next(z[k].shape[1] for k in z.files if k.endswith("/order")))
    lr0, wd0 = float(config["train"]["learning_rate"]), float(config["train"]["weight_decay"])
    named = []
    for s in settings:
        d = dict(s)
        named.append((grid_lib.name(s), d.get("learning_rate", lr0), d.get("weight_decay", wd0)))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    return FinishedRun(path, config, rows, seeds, budget, strategies, named)


def dal_accuracy(run: FinishedRun, strategy: str, setting: str, seed: int, labels: int):
    """``(test accuracy, round)`` of the run's row at ``labels`` labels (first such round)."""
    for r in run.rows:
        if (
            r["strategy"] == strategy
            and r.get("setting") == setting
            and int(r["seed"]) == seed
            and int(r["num_labeled"]) == labels
        ):
            return float(r["test_accuracy"]), int(r["round"])
    raise ReoptError(
        f"{run.series(strategy, setting)!r} seed {seed} has no round with {labels} labels in "
        f"{run.path!r}/results.csv (labels per round: "
        f"{', '.join(sorted({r['num_labeled'] for r in run.rows}, key=int)[:8])}, ...)"
    )


def config_from_json(config: dict):
    """A run's ``config.json`` as a ``ConfigDict`` again (lists become tuples)."""
    import ml_collections

    def conv(v):
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return tuple(conv(x) for x in v)
        return v

    return ml_collections.ConfigDict(
        conv({k: v for k, v in config.items() if k != "python_objects"})
    )


# --- splits and candidates --------------------------------------------------------------


def num_val(labels: int, fraction: float) -> int:
    return int(round(fraction * labels))


def validation_positions(
    labels: int, seed: int, split: int, fraction: float = 0.1, split_seed: int = 0
) -> np.ndarray:
    """Positions (``0..labels-1``) of the pool held out in split ``split`` of ``seed``."""
    perm = np.random.default_rng((split_seed, seed, labels, split)).permutation(labels)
    return np.sort(perm[: num_val(labels, fraction)])


def split_pool(pool: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` pool indices; ``train`` keeps the acquisition order."""
    held = np.zeros(len(pool), bool)
    held[positions] = True
    return pool[~held], pool[held]


def candidates(grid_size: int, lr_range=LR_RANGE, wd_range=WD_RANGE, extra=()) -> list:
    """``(learning rate, weight decay)`` pairs: the log-spaced grid (lr-major), then
    the ``extra`` pairs not already in it."""
    lrs = np.geomspace(*lr_range, grid_size) if grid_size > 1 else np.array([lr_range[0]])
    wds = np.geomspace(*wd_range, grid_size) if grid_size > 1 else np.array([wd_range[0]])
    out = [(float(lr), float(wd)) for lr in lrs for wd in wds]
    for pair in extra:
        pair = (float(pair[0]), float(pair[1]))
        if not any(math.isclose(a, pair[0]) and math.isclose(b, pair[1]) for a, b in out):
            out.append(pair)
    return out


def choose(val_acc: np.ndarray, val_nll: np.ndarray, diverged: np.ndarray) -> int:
    """The best candidate of ``[C, splits]`` validation results: highest mean
    accuracy; ties: lowest mean NLL, then the first; diverged on any split: out."""
    out = diverged.any(axis=1)
    acc = np.where(out, -np.inf, val_acc.mean(axis=1))
    nll = val_nll.mean(axis=1)
    nll = np.where(np.isfinite(nll) & ~out, nll, np.inf)
    best = np.flatnonzero(acc == acc.max())
    return int(best[np.argmin(nll[best])])


# --- training lanes -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Task:
    """One lane: train on ``train`` with ``(lr, wd)``; evaluate on ``val`` (pool
    indices) or, when ``val`` is ``None``, on the test split."""

    key: str
    seed: int
    round: int
    train: np.ndarray
    lr: float
    wd: float
    val: np.ndarray | None = None


class Trainer:
    """The run's training recipe as one jaxal program over ``lanes`` lanes.

    Every call trains ``lanes`` tasks (the last call of a list is padded with
    repeats), each with its own pool, hyperparameters and keys, so the fit
    compiles once for every search and retrain of every ``|L|``.
    """

    def __init__(self, config, lanes: int, val_size: int, *, dataset=None, model=None):
        import jax.numpy as jnp
        import optax

        from jaxal.assemble import assemble
        from jaxal.predict import map_chunks

        self.run = assemble(config, dataset=dataset, model=model)
        self.engine = self.run.engine(next(iter(self.run.strategies)))
        self.lanes, self.val_size = int(lanes), max(int(val_size), 1)
        self.capacity = self.run.plan.budget
        net, chunk = self.run.model, int(self.run.settings.train.eval_batch_size)

        def val_seed(variables, idx, w, data):
            x, y = data.x_pool[idx], data.y_pool[idx]
            logits = map_chunks(lambda xb, _: net.apply(variables, xb, train=False)[0], x, chunk)
            nll = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            correct = (logits.argmax(-1) == y).astype(jnp.float32)
            total = jnp.maximum(w.sum(), 1.0)
            return (w * correct).sum() / total, (w * nll).sum() / total

        self._val = self.run.executor.wrap(val_seed, (0, 0, 0, None))
        self._jnp = jnp

    def __call__(self, tasks: Sequence[Task]):
        """``(accuracy, nll, diverged)`` ``[len(tasks)]`` of up to ``lanes`` tasks,
        all of the same round and all on validation or all on the test split."""
        from jaxal import parallel
        from jaxal.grid import Lanes
        from jaxal.loop import init_state

        jnp = self._jnp
        n = len(tasks)
        assert 0 < n <= self.lanes and len({t.round for t in tasks}) == 1
        tasks = list(tasks) + [tasks[0]] * (self.lanes - n)
        run, pl = self.run, self.run.placement
        k, num_pool = self.lanes, run.plan.num_pool
        order = np.full((k, self.capacity), -1, np.int32)
        labeled = np.zeros((k, num_pool), bool)
        count = np.zeros(k, np.int32)
        for i, t in enumerate(tasks):
            order[i, : len(t.train)] = t.train
            labeled[i, t.train] = True
            count[i] = len(t.train)
        seeds = np.asarray([t.seed for t in tasks])
        state = init_state(self.engine, Lanes.of(seeds, run.settings.train), run.data)
        hp = dict(state.hparams)
        hp["learning_rate"] = jnp.asarray([t.lr for t in tasks], jnp.float32)
        hp["weight_decay"] = jnp.asarray([t.wd for t in tasks], jnp.float32)
        state = state._replace(
            labeled=parallel.put_seeds(jnp.asarray(labeled), pl),
            order=parallel.put_seeds(jnp.asarray(order), pl),
            num_labeled=parallel.put_seeds(jnp.asarray(count), pl),
            hparams=parallel.put_seeds(hp, pl),
        )
        variables, fm = self.engine.fit(state, jnp.int32(tasks[0].round), run.data)
        if tasks[0].val is None:
            acc, nll = self.engine.evaluate(variables, run.data)[:2]  # test accuracy, NLL
        else:
            idx = np.zeros((k, self.val_size), np.int32)
            w = np.zeros((k, self.val_size), np.float32)
            for i, t in enumerate(tasks):
                idx[i, : len(t.val)], w[i, : len(t.val)] = t.val, 1.0
            acc, nll = self._val(
                variables,
                parallel.put_seeds(jnp.asarray(idx), pl),
                parallel.put_seeds(jnp.asarray(w), pl),
                run.data,
            )
        acc, nll, div = (np.asarray(parallel.to_host(a))[:n] for a in (acc, nll, fm.diverged))
        return acc, nll, div.astype(bool)


def run_tasks(trainer: Trainer, tasks: list[Task], done: dict, log, advance) -> dict:
    """Train every task not in ``done`` (key -> result), ``trainer.lanes`` at a time
    (grouped by round and by evaluation split); append each result to ``log``."""
    todo = [t for t in tasks if t.key not in done]
    groups: dict[tuple, list[Task]] = {}
    for t in todo:
        groups.setdefault((t.round, t.val is None), []).append(t)
    for group in groups.values():
        for start in range(0, len(group), trainer.lanes):
            chunk = group[start : start + trainer.lanes]
            acc, nll, div = trainer(chunk)
            for t, a, b, c in zip(chunk, acc, nll, div, strict=True):
                done[t.key] = {"accuracy": float(a), "nll": float(b), "diverged": bool(c)}
                if log is not None:
                    log.write(json.dumps({"key": t.key, **done[t.key]}) + "\n")
            if log is not None:
                log.flush()
            advance(len(chunk))
    return done


# --- the study ------------------------------------------------------------------------------


def _parse_value(text: str):
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def search_config(run: FinishedRun, lanes: int, cands: list, overrides: dict | None = None):
    """The run's config made into the trainer's: ``lanes`` lanes on one device, the
    run's budget as the order capacity, and a weight-decay term in the optimizer."""
    from jaxal.config import apply_overrides

    cfg = config_from_json(run.config)
    for key, value in (overrides or {}).items():
        node = cfg
        for part in key.split("."):
            if not hasattr(node, "keys") or part not in node.keys():
                raise ReoptError(f"--set {key}={value!r}: the run's config has no key {key!r}")
            node = node[part]
        try:
            apply_overrides(cfg, {key: value})
        except (KeyError, AttributeError, TypeError, ValueError) as e:
            raise ReoptError(f"--set {key}={value!r}: {' '.join(str(e).split())}") from None
    apply_overrides(cfg, {"budget": run.budget})
    # The fit program's optimizer gets its structure (a decay term) from the grid;
    # every lane then injects its own values.
    lr = max(c[0] for c in cands)
    cfg.grid = f"learning_rate={lr!r},weight_decay={max(c[1] for c in cands)!r}"
    cfg.num_seeds, cfg.seed, cfg.num_devices = int(lanes), 0, 1
    cfg.strategy = "random"
    cfg.initial.strategy, cfg.initial.size = "random", 1
    cfg.checkpoint.enabled = False
    return cfg


def reoptimize(
    run_dir: str,
    labels: Sequence[int],
    out: str,
    *,
    splits: int = 3,
    val_fraction: float = 0.1,
    grid_size: int = 7,
    lr_range=LR_RANGE,
    wd_range=WD_RANGE,
    include_run_settings: bool = True,
    split_seed: int = 0,
    lanes: int | None = None,
    strategies: Sequence[str] | None = None,
    overrides: dict | None = None,
    progress: bool = True,
    console=None,
    dataset=None,
    model=None,
) -> list[dict]:
    """Re-optimise every (strategy, setting, seed) pool of ``run_dir`` at each of
    ``labels``; write the tables to ``out``. Returns the rows of ``reoptimized.csv``.

    ``dataset`` / ``model``: the run's own objects when it was started from Python
    with them (``run_experiment(dataset=..., model=...)``).

    Raises:
      ReoptError: a run without a grid or not finished, ``|L|`` beyond the budget
        or not a round's label count, too few labels for a validation split, ... (one line).
      jaxal.config.ConfigError: the run's config with ``--set`` is invalid.
    """
    from rich.console import Console

    from jaxal import pools as pools_lib

    console = console or Console()
    run = read_run(run_dir)
    if run.config.get("python_objects") and dataset is None and model is None:
        raise ReoptError(
            f"the run in {run_dir!r} was given {run.config['python_objects']} from Python; "
            "call reoptimize(..., dataset=..., model=...) with the same objects"
        )
    labels = [int(n) for n in labels]
    if not labels:
        raise ReoptError("--labels is empty; give e.g. --labels 2000,4000")
    if splits < 1:
        raise ReoptError(f"--splits {splits}: need at least 1 validation split")
    if not 0 < val_fraction < 1:
        raise ReoptError(f"--val-fraction {val_fraction}: must be in (0, 1)")
    if grid_size < 1:
        raise ReoptError(f"--grid-size {grid_size}: must be >= 1")
    for lo, hi, what in ((*lr_range, "learning rate"), (*wd_range, "weight decay")):
        if not 0 < lo <= hi:
            raise ReoptError(f"{what} range [{lo}, {hi}]: need 0 < low <= high")
    for n in labels:
        if not 1 <= n <= run.budget:
            raise ReoptError(f"--labels {n} is outside 1..{run.budget} (the run's budget)")
        nv = num_val(n, val_fraction)
        if nv < 1 or nv >= n:
            raise ReoptError(
                f"--labels {n}: a {val_fraction:g} validation split holds {nv} of {n} points; "
                "need at least one point on each side"
            )
    strategies = list(strategies) if strategies else run.strategies
    unknown = [s for s in strategies if s not in run.strategies]
    if unknown:
        raise ReoptError(
            f"--strategies {','.join(unknown)}: not in the run ({', '.join(run.strategies)})"
        )
    extra = [(lr, wd) for _, lr, wd in run.settings] if include_run_settings else []
    cands = candidates(grid_size, lr_range, wd_range, extra)
    lanes = int(lanes or len(cands))
    if lanes < 1:
        raise ReoptError(f"--lanes {lanes}: must be >= 1")

    # The pools and the DAL accuracies (all checked before anything trains).
    series = [(st, name, lr, wd) for st in strategies for name, lr, wd in run.settings]
    pool = {}
    dal = {}
    for st, name, _, _ in series:
        try:
            rows, seeds = pools_lib.load(run_dir, run.series(st, name), max(labels))
        except pools_lib.PoolError as e:
            raise ReoptError(str(e)) from None
        pool[st, name] = rows
        for n in labels:
            for s in seeds:
                dal[n, st, name, int(s)] = dal_accuracy(run, st, name, int(s), n)
    seeds = [int(s) for s in run.seeds]

    settings_json = {
        "run": os.path.abspath(run_dir),
        "labels": labels,
        "splits": splits,
        "val_fraction": val_fraction,
        "split_seed": split_seed,
        "search": "grid",
        "grid_size": grid_size,
        "learning_rate_range": list(lr_range),
        "weight_decay_range": list(wd_range),
        "include_run_settings": include_run_settings,
        "candidates": [list(c) for c in cands],
        "strategies": strategies,
        "overrides": {k: repr(v) for k, v in (overrides or {}).items()},
    }
    # The trainer (the run's config with --set, validated; the dataset on device)
    # before anything is written to `out`.
    trainer = Trainer(
        search_config(run, lanes, cands, overrides),
        lanes,
        max(num_val(n, val_fraction) for n in labels),
        dataset=dataset,
        model=model,
    )
    os.makedirs(out, exist_ok=True)
    done = _resume(out, settings_json)

    # Tasks: per |L|, every (series, seed, split, candidate), then the retrains.
    search, splits_out = [], {}
    for n in labels:
        for st, name, _, _ in series:
            val_rows = []
            for i, s in enumerate(seeds):
                p = pool[st, name][i, :n]
                _, rnd = dal[n, st, name, s]
                per_split = []
                for j in range(splits):
                    train, val = split_pool(
                        p, validation_positions(n, s, j, val_fraction, split_seed)
                    )
                    per_split.append(val)
                    for lr, wd in cands:
                        key = f"{n}|{st}@{name}|{s}|{j}|{lr!r}|{wd!r}"
                        search.append(Task(key, s, rnd, train, lr, wd, val))
                val_rows.append(per_split)
            splits_out[f"{n}/{st}@{name}/val"] = np.asarray(val_rows, np.int32)
    n_retrain = len(labels) * len(series) * len(seeds)
    total = len(search) + n_retrain
    console.print(
        f"[bold]reoptimize[/]: {run_dir}: {len(series)} series x {len(seeds)} seeds x "
        f"|L| in {labels}; {splits} validation splits of {val_fraction:.0%}; "
        f"{len(cands)} candidates ({grid_size}x{grid_size} log grid lr {lr_range}, "
        f"wd {wd_range}"
        + (f" + {len(cands) - grid_size**2} run settings" if extra else "")
        + f"); {total} trainings, {lanes} lanes per call"
        + (f" ({len(done)} already done)" if done else "")
    )
    results = []
    with open(os.path.join(out, "tasks.jsonl"), "a") as log, _progress(console, progress) as bar:
        task = bar.add_task("search", total=total, completed=len(done))
        advance = lambda k: bar.advance(task, k)  # noqa: E731
        for n in labels:
            bar.update(task, description=f"|L|={n} search")
            mine = [t for t in search if t.key.startswith(f"{n}|")]
            run_tasks(trainer, mine, done, log, advance)
            finals, chosen = [], {}
            for st, name, _, _ in series:
                for i, s in enumerate(seeds):
                    res = [
                        [done[f"{n}|{st}@{name}|{s}|{j}|{lr!r}|{wd!r}"] for j in range(splits)]
                        for lr, wd in cands
                    ]
                    va = np.asarray([[r["accuracy"] for r in c] for c in res])
                    vn = np.asarray([[r["nll"] for r in c] for c in res])
                    dv = np.asarray([[r["diverged"] for r in c] for c in res])
                    b = choose(va, vn, dv)
                    lr, wd = cands[b]
                    chosen[st, name, s] = (b, float(va[b].mean()))
                    key = f"{n}|{st}@{name}|{s}|final|{lr!r}|{wd!r}"
                    finals.append(
                        Task(key, s, dal[n, st, name, s][1], pool[st, name][i, :n], lr, wd)
                    )
            bar.update(task, description=f"|L|={n} retrain")
            run_tasks(trainer, finals, done, log, advance)
            for t in finals:
                _, ser, s, _, _, _ = t.key.split("|")
                st, name = ser.split("@", 1)
                b, val_mean = chosen[st, name, t.seed]
                r = done[t.key]
                results.append(
                    {
                        "labels": n,
                        "strategy": st,
                        "setting": name,
                        "seed": t.seed,
                        "dal_test_accuracy": dal[n, st, name, t.seed][0],
                        "best_learning_rate": t.lr,
                        "best_weight_decay": t.wd,
                        "best_val_accuracy": val_mean,
                        "reopt_test_accuracy": r["accuracy"],
                        "reopt_test_nll": r["nll"],
                        "reopt_diverged": int(r["diverged"]),
                    }
                )
    _write_outputs(out, run, results, search, done, splits_out, seeds, settings_json)
    console.print(
        _read(os.path.join(out, "table1.md")), markup=False, highlight=False, soft_wrap=True
    )
    console.print(f"tables in {out}")
    return results


def _resume(out: str, settings_json: dict) -> dict:
    """Results of tasks already trained in ``out`` by the same settings (else refuse)."""
    meta, log = os.path.join(out, "reoptimize.json"), os.path.join(out, "tasks.jsonl")
    done = {}
    if os.path.isfile(meta):
        with open(meta) as f:
            old = json.load(f)
        if old != settings_json:
            diff = [k for k in settings_json if old.get(k) != settings_json[k]]
            raise ReoptError(
                f"--out {out!r} holds a re-optimisation with other settings ({', '.join(diff)}); "
                "use another --out or delete it"
            )
        if os.path.isfile(log):
            with open(log) as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:  # a line cut by a kill
                        continue
                    done[rec.pop("key")] = rec
    else:
        if os.path.isfile(log):
            os.remove(log)
        with open(meta, "w") as f:
            json.dump(settings_json, f, indent=1)
    return done


def _progress(console, enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trainings"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=True,
    )


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


# --- tables ---------------------------------------------------------------------------------


def _short(lr: float, wd: float) -> str:
    return f"lr={lr:g}, wd={wd:g}"


def table_rows(run: FinishedRun, results: list[dict]) -> list[dict]:
    """Table 1 as rows ``(labels, strategy)`` with, per DAL setting ``k`` (1-based),
    ``HP{k} DAL mean/std`` and ``HP{k} re-opt mean/std`` in %."""
    out = []
    for n in dict.fromkeys(r["labels"] for r in results):
        for st in dict.fromkeys(r["strategy"] for r in results):
            row = {"labels": n, "strategy": st}
            for k, (name, _, _) in enumerate(run.settings, 1):
                mine = [
                    r
                    for r in results
                    if (r["labels"], r["strategy"], r["setting"]) == (n, st, name)
                ]
                for col, field in (("DAL", "dal_test_accuracy"), ("re-opt", "reopt_test_accuracy")):
                    v = 100 * np.asarray([r[field] for r in mine], float)
                    row[f"HP{k} {col} mean"] = float(v.mean())
                    row[f"HP{k} {col} std"] = float(v.std())
            row["seeds"] = len({r["seed"] for r in results})
            out.append(row)
    return out


def table_markdown(run: FinishedRun, rows: list[dict]) -> str:
    """Table 1 in markdown; after each ``|L|`` a row with the spread of the
    strategies' means (best - worst) per column: the gap re-optimisation shrinks."""
    ks = range(1, len(run.settings) + 1)
    cols = [f"HP{k} {c}" for k in ks for c in ("DAL", "re-opt")]
    head = ["\\|L\\|", "strategy"] + [c.replace("HP", "HP ") for c in cols]
    data = (run.config.get("python_objects") or {}).get("dataset") or run.config["dataset"]["name"]
    lines = [
        f"Test accuracy (%) of `{run.path}` ({data}, {run.config['model']['name']}): "
        f"mean ± std over {rows[0]['seeds'] if rows else 0} seeds. DAL = the run's own "
        "accuracy with the fixed setting; re-opt = retrained on the same pool with the "
        "setting chosen on held-out validation splits of the pool. Bold: the best strategy "
        "of a column at that |L|; spread: best - worst strategy mean.",
        "",
        "; ".join(
            f"HP {k}: {_short(lr, wd)}" for k, (_, lr, wd) in zip(ks, run.settings, strict=True)
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for n in dict.fromkeys(r["labels"] for r in rows):
        same = [r for r in rows if r["labels"] == n]
        for row in same:
            cells = [str(n), row["strategy"]]
            for c in cols:
                m, s = row[f"{c} mean"], row[f"{c} std"]
                cell = f"{m:.2f} ± {s:.2f}"
                if len(same) > 1 and m == max(r[f"{c} mean"] for r in same):
                    cell = f"**{cell}**"
                cells.append(cell)
            lines.append("| " + " | ".join(cells) + " |")
        if len(same) > 1:
            spread = [
                max(r[f"{c} mean"] for r in same) - min(r[f"{c} mean"] for r in same) for c in cols
            ]
            lines.append(f"| {n} | *spread* | " + " | ".join(f"*{v:.2f}*" for v in spread) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _write_outputs(out, run, results, search, done, splits_out, seeds, settings_json) -> None:
    rows = table_rows(run, results)
    with open(os.path.join(out, "table1.md"), "w") as f:
        f.write(table_markdown(run, rows))
    _write_csv(os.path.join(out, "table1.csv"), rows)
    _write_csv(os.path.join(out, "reoptimized.csv"), results)
    search_rows = []
    for t in search:
        n, ser, s, j, _, _ = t.key.split("|")
        st, name = ser.split("@", 1)
        r = done[t.key]
        search_rows.append(
            {
                "labels": int(n),
                "strategy": st,
                "setting": name,
                "seed": int(s),
                "split": int(j),
                "learning_rate": t.lr,
                "weight_decay": t.wd,
                "val_accuracy": r["accuracy"],
                "val_nll": r["nll"],
                "diverged": int(r["diverged"]),
            }
        )
    _write_csv(os.path.join(out, "search.csv"), search_rows)
    np.savez(os.path.join(out, "splits.npz"), seeds=np.asarray(seeds), **splits_out)


# --- command line -------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from None


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LOW,HIGH") from None
    return lo, hi


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python experiments/hp_role/reoptimize.py",
        description="Re-optimise learning rate x weight decay on the labeled pools of a "
        "finished grid run (Huseljic et al. 2023, Table 1) and write table1.md/.csv.",
    )
    p.add_argument("run_dir", help="a finished jaxal run with config.grid")
    p.add_argument("--labels", type=_ints, required=True, help="|L| values, e.g. 2000,4000")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--splits", type=int, default=3, help="random validation splits (3)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held out per split (0.1)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the validation splits")
    p.add_argument("--grid-size", type=int, default=7, help="log-spaced values per axis (7)")
    p.add_argument("--lr-range", type=_range, default=LR_RANGE, help="LOW,HIGH (1e-5,0.1)")
    p.add_argument("--wd-range", type=_range, default=WD_RANGE, help="LOW,HIGH (1e-5,0.1)")
    p.add_argument(
        "--no-run-settings",
        action="store_true",
        help="do not add the run's own grid settings to the candidates",
    )
    p.add_argument("--strategies", default=None, help="only these strategies (comma list)")
    p.add_argument(
        "--lanes", type=int, default=None, help="trainings per program call (default: candidates)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change the training config, e.g. --set train.epochs=100 (repeatable)",
    )
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            print(f"reoptimize: error: --set {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        overrides[key.strip().removeprefix("config.")] = _parse_value(value.strip())
    from jaxal.config import ConfigError

    try:
        reoptimize(
            args.run_dir,
            args.labels,
            args.out,
            splits=args.splits,
            val_fraction=args.val_fraction,
            grid_size=args.grid_size,
            lr_range=args.lr_range,
            wd_range=args.wd_range,
            include_run_settings=not args.no_run_settings,
            split_seed=args.split_seed,
            lanes=args.lanes,
            strategies=args.strategies.split(",") if args.strategies else None,
            overrides=overrides,
            progress=not args.no_progress,
        )
    except (ReoptError, ConfigError) as e:
        print(f"reoptimize: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
