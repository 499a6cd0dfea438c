"""``jaxal report RUN_DIR [RUN_DIR ...] --out REPORT_DIR``: one HTML page comparing runs.

Reads finished or running workdirs (``config.json``, ``results.csv``,
``labeled_indices.npz``, ``DONE``) and writes to ``REPORT_DIR``:

    index.html               self-contained (figures as base64 PNG, inline CSS)
    report.md                every table, and the figures as links
    learning_curves.png      mean ± std test accuracy over seeds vs labels
    time_split.png           mean seconds per round: train / eval / score / select
    class_distribution.png   classes of the acquired labels (bundled / npz datasets)
    overlap.png              mean Jaccard of the final labeled sets between strategies
    <table>.md, <table>.csv  status, summary, time_split, class_distribution,
                             overlap, config_diff

The metrics are those of :mod:`jaxal.metrics`, computed per seed and then
summarised as mean ± std over seeds. In the CSV files accuracies are fractions
(as in ``results.csv``); the page and the markdown show percentages.

Also ``python -m jaxal.report_html ...`` and ``python -m jaxal.report ...``.
Exit status 2, with one line, for unusable input (a folder that is not a
workdir, runs on different datasets, bad ``--targets``).
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from jaxal import metrics

USAGE_EXIT = 2
PHASES = ("train_seconds", "eval_seconds", "score_seconds", "select_seconds")
_INT_COLUMNS = ("seed", "round", "num_labeled", "train_epochs", "diverged")
# Config keys that do not change what a run computes (or are compared by other
# means: seeds by value, strategies by label, budgets on the labels axis). They
# do not split the learning curves into facets, nor stop a run's `random` from
# serving as another run's reference.
_NOT_SETTINGS = (
    "strategy",
    "seed",
    "num_seeds",
    "seed_execution",
    "seed_threads",
    "num_devices",
    "score_batch_size",
    "train.eval_batch_size",
    "budget",
    "num_rounds",
    "dataset.data_dir",
    "dataset.download",
    "checkpoint.",
)


_FIGURES = ("learning_curves", "time_split", "class_distribution", "overlap")
_TABLES = ("status", "summary", "time_split", "class_distribution", "overlap", "config_diff")
_OUTPUTS = (
    ("index.html", "report.md")
    + tuple(f"{f}.png" for f in _FIGURES)
    + tuple(f"{t}.{ext}" for t in _TABLES for ext in ("md", "csv"))
)


class ReportError(ValueError):
    """The input cannot be reported on (one line, exit status 2)."""


# --- reading workdirs ---------------------------------------------------------


@dataclass
class Run:
    """One workdir as read from disk."""

    path: str
    name: str
    config: dict
    rows: list[dict]
    done: bool
    indices: dict | None  # "seeds" and per strategy "<label>/order", "<label>/round"
    strategies: list[str]  # labels: the config's in run order, then any others in rows

    @property
    def dataset_name(self) -> str:
        given = (self.config.get("python_objects") or {}).get("dataset")
        return str(given or (self.config.get("dataset") or {}).get("name"))

    @property
    def expected_seeds(self) -> list[int]:
        s0, n = self.config.get("seed", 0), self.config.get("num_seeds")
        return list(range(int(s0), int(s0) + int(n))) if n is not None else []


def _parse_row(raw: dict) -> dict:
    out = {}
    for k, v in raw.items():
        if k == "strategy" or k is None:
            out[k] = v
        elif k in _INT_COLUMNS:
            out[k] = int(float(v))
        else:
            out[k] = float(v) if v not in ("", None) else float("nan")
    return out


def _split_top(text: str) -> list[str]:
    """``text`` split at commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in [*out, cur] if p.strip()]


def _config_labels(config: dict) -> list[str]:
    """The strategy labels of ``config.strategy`` (as the run names them)."""
    labels = []
    for item in _split_top(str(config.get("strategy") or "")):
        head = item.split("(", 1)[0]
        labels.append(item.split("=", 1)[0].strip() if "=" in head else "".join(item.split()))
    return labels


def load_run(path: str, name: str | None = None) -> Run:
    """Reads one workdir.

    Raises:
      ReportError: ``path`` is not a folder or has no ``config.json``.
    """
    if not os.path.isdir(path):
        raise ReportError(f"{path!r} is not a folder (expected a jaxal workdir)")
    cfg_path = os.path.join(path, "config.json")
    if not os.path.exists(cfg_path):
        raise ReportError(f"{path!r} has no config.json: not a jaxal workdir")
    try:
        with open(cfg_path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"{cfg_path}: cannot read it ({e})") from None
    rows = []
    csv_path = os.path.join(path, "results.csv")
    if os.path.exists(csv_path):
        with open(csv_path, newline="") as f:
            rows = [_parse_row(r) for r in csv.DictReader(f)]
    indices = None
    npz_path = os.path.join(path, "labeled_indices.npz")
    if os.path.exists(npz_path):
        try:
            with np.load(npz_path) as z:
                indices = {k: np.asarray(z[k]) for k in z.files}
        except (OSError, ValueError):
            indices = None
    strategies = _config_labels(config)
    for r in rows:
        if r["strategy"] not in strategies:
            strategies.append(r["strategy"])
    return Run(
        path=path,
        name=name or os.path.basename(os.path.normpath(path)),
        config=config,
        rows=rows,
        done=os.path.exists(os.path.join(path, "DONE")),
        indices=indices,
        strategies=strategies,
    )


def _run_names(paths: Sequence[str]) -> list[str]:
    """Short unique names: the folder names, or the paths where those repeat."""
    base = [os.path.basename(os.path.normpath(p)) for p in paths]
    if len(set(base)) == len(base):
        return base
    names = [os.path.normpath(p) for p in paths]
    return names if len(set(names)) == len(names) else [f"{n}#{i}" for i, n in enumerate(names)]


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """``{"a.b": value}`` of a nested config; values as compact JSON text."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v)
    return out


def _is_setting(key: str) -> bool:
    return not any(key == k or (k.endswith(".") and key.startswith(k)) for k in _NOT_SETTINGS)


def differing_keys(configs: Sequence[dict]) -> list[str]:
    """Flattened keys whose values (or presence) differ between the configs."""
    flat = [flatten(c) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    return [k for k in keys if len({f.get(k, "\0missing") for f in flat}) > 1]


# --- per strategy curves -----------------------------------------------------


@dataclass
class Series:
    """One strategy of one run: the unit every figure and table compares."""

    run: Run
    strategy: str
    label: str
    rows: list[dict] = field(repr=False)

    def seed_curves(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per seed ``(labels, accuracy)`` sorted by labels."""
        by_seed: dict[int, dict[int, float]] = {}
        for r in self.rows:
            by_seed.setdefault(r["seed"], {})[r["num_labeled"]] = r["test_accuracy"]
        out = {}
        for seed in sorted(by_seed):
            pts = sorted(by_seed[seed].items())
            out[seed] = (
                np.array([p[0] for p in pts], np.float64),
                np.array([p[1] for p in pts], np.float64),
            )
        return out

    def mean_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(labels, mean, std)`` over the seeds that have each number of labels."""
        labels = sorted({r["num_labeled"] for r in self.rows})
        acc = [[r["test_accuracy"] for r in self.rows if r["num_labeled"] == n] for n in labels]
        return (
            np.array(labels, np.float64),
            np.array([np.mean(a) for a in acc]),
            np.array([np.std(a) for a in acc]),
        )


def make_series(runs: Sequence[Run]) -> list[Series]:
    """Every (run, strategy) that has rows; labels get the run name when runs > 1."""
    out = []
    for run in runs:
        for s in run.strategies:
            rows = [r for r in run.rows if r["strategy"] == s]
            if rows:
                label = s if len(runs) == 1 else f"{s} ({run.name})"
                out.append(Series(run, s, label, rows))
    return out


def _reference(series: Series, all_series: Sequence[Series]) -> Series | None:
    """The `random` curve a series is compared with: its own run's, else that of
    a run whose settings equal its run's (keys in ``_NOT_SETTINGS`` and
    ``strategy_params.*`` aside)."""
    randoms = [s for s in all_series if s.strategy == "random"]
    for s in randoms:
        if s.run is series.run:
            return s

    def settings(run):
        return {
            k: v
            for k, v in flatten(run.config).items()
            if _is_setting(k) and not k.startswith("strategy_params.")
        }

    for s in randoms:
        if settings(s.run) == settings(series.run):
            return s
    return None


# --- summary ------------------------------------------------------------------


def _mean_std(values) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std()), int(v.size)


def _tkey(t: float) -> str:
    return f"labels_to_{t:g}"


def summarize(all_series: Sequence[Series], targets: Sequence[float]) -> list[dict]:
    """One row per series: every summary metric, per seed then mean ± std.

    Columns: ``run, strategy, label, seeds, final_labels``;
    ``final_accuracy_{mean,std,rank}`` (each seed's last round);
    ``aulc_{mean,std,rank}`` (:func:`jaxal.metrics.normalized_aulc` per seed);
    per target ``t``: ``labels_to_t`` (on the mean curve, NaN = not reached) and
    its ``_rank``, and the per-seed ``labels_to_t_seed_{mean,std}`` over the
    ``labels_to_t_seeds_reached`` seeds that reach it; with a `random`
    reference: ``random_reference``, ``labeling_efficiency_{mean,std,seeds,rank}``
    and ``gain_over_random_{mean,std,seeds,rank}`` at each seed's final budget,
    against the same seed of the reference (seeds present in both).
    """
    out = []
    any_ref = False
    for s in all_series:
        curves = s.seed_curves()
        finals = [float(y[-1]) for _, y in curves.values()]
        final_labels = [float(x[-1]) for x, _ in curves.values()]
        row = {
            "run": s.run.name,
            "strategy": s.strategy,
            "label": s.label,
            "seeds": len(curves),
            "final_labels": (
                int(final_labels[0])
                if len(set(final_labels)) == 1
                else float(np.mean(final_labels))
            ),
        }
        m, sd, _ = _mean_std(finals)
        row.update(final_accuracy_mean=m, final_accuracy_std=sd)
        m, sd, _ = _mean_std([metrics.normalized_aulc(x, y) for x, y in curves.values()])
        row.update(aulc_mean=m, aulc_std=sd)
        mx, my, _ = s.mean_curve()
        for t in targets:
            k = _tkey(t)
            row[k] = metrics.labels_to_target(mx, my, t)
            m, sd, n = _mean_std([metrics.labels_to_target(x, y, t) for x, y in curves.values()])
            row.update({f"{k}_seed_mean": m, f"{k}_seed_std": sd, f"{k}_seeds_reached": n})
        ref = _reference(s, all_series)
        row["random_reference"] = ref.label if ref is not None else ""
        eff, gain = [], []
        if ref is not None:
            any_ref = True
            rc = ref.seed_curves()
            for seed, (x, y) in curves.items():
                if seed in rc:
                    rx, ry = rc[seed]
                    eff.append(metrics.labeling_efficiency(rx, ry, x[-1], y[-1]))
                    gain.append(metrics.gain_over_random(rx, ry, x[-1], y[-1]))
        for name, vals in (("labeling_efficiency", eff), ("gain_over_random", gain)):
            m, sd, n = _mean_std(vals)
            row.update({f"{name}_mean": m, f"{name}_std": sd, f"{name}_seeds": n})
        out.append(row)
    ranked = [("final_accuracy_mean", True), ("aulc_mean", True)]
    ranked += [(_tkey(t), False) for t in targets]
    if any_ref:
        ranked += [("labeling_efficiency_mean", True), ("gain_over_random_mean", True)]
    for key, higher in ranked:
        ranks = metrics.rank([r[key] for r in out], higher_is_better=higher)
        rank_key = key.removesuffix("_mean") + "_rank"
        for r, k in zip(out, ranks, strict=True):
            r[rank_key] = int(k)
    if not any_ref:
        drop = ("random_reference", "labeling_efficiency_", "gain_over_random_")
        out = [{k: v for k, v in r.items() if not k.startswith(drop)} for r in out]
    return out


# --- status, timings, pools -----------------------------------------------------


def _expected_rounds(run: Run) -> tuple[int | None, int | None]:
    """(rounds, final labels) the config asks for, from round 0's labels."""
    n0 = [r["num_labeled"] for r in run.rows if r["round"] == 0]
    if not n0:
        return None, None
    n0 = min(n0)
    k = int(run.config.get("query_size") or 0)
    budget, num_rounds = run.config.get("budget"), run.config.get("num_rounds")
    if budget is not None and k > 0:
        return 1 + max(0, math.ceil((int(budget) - n0) / k)), int(budget)
    if num_rounds is not None:
        return int(num_rounds) + 1, n0 + int(num_rounds) * k
    return None, None


def status_rows(runs: Sequence[Run]) -> list[dict]:
    """Per (run, strategy): complete / in progress / incomplete / not started."""
    out = []
    for run in runs:
        want_rounds, want_labels = _expected_rounds(run)
        want_seeds = run.expected_seeds
        for s in run.strategies:
            rows = [r for r in run.rows if r["strategy"] == s]
            seeds = sorted({r["seed"] for r in rows})
            per_seed = {sd: {r["round"] for r in rows if r["seed"] == sd} for sd in seeds}
            missing_seeds = [sd for sd in want_seeds if sd not in per_seed]
            detail = []
            if missing_seeds:
                detail.append(f"missing seeds {', '.join(map(str, missing_seeds))}")
            if want_rounds is not None:
                for sd in seeds:
                    lack = sorted(set(range(want_rounds)) - per_seed[sd])
                    if lack:
                        detail.append(f"seed {sd} lacks rounds {', '.join(map(str, lack))}")
            if not rows:
                state = "not started" if not run.done else "missing"
            elif detail:
                state = "in progress" if not run.done else "incomplete"
            else:
                state = "complete" if run.done else "in progress (rows complete, no DONE)"
            rounds_found = min((len(v) for v in per_seed.values()), default=0)
            out.append(
                {
                    "run": run.name,
                    "strategy": s,
                    "status": state,
                    "done_file": int(run.done),
                    "seeds_found": len(seeds),
                    "seeds_expected": len(want_seeds),
                    "rounds_found": rounds_found,
                    "rounds_expected": want_rounds if want_rounds is not None else "",
                    "labels_found": max((r["num_labeled"] for r in rows), default=0),
                    "labels_expected": want_labels if want_labels is not None else "",
                    "diverged_rows": sum(r.get("diverged", 0) for r in rows),
                    "detail": "; ".join(detail),
                }
            )
    return out


def time_rows(all_series: Sequence[Series]) -> list[dict]:
    """Per series: mean seconds per round of each phase (rounds ≥ 1 when there
    are any: round 0 includes compilation), round 0's total and the wall total.

    A row of ``results.csv`` holds the phase's wall time for all seeds ÷ S, so
    a round's time is the sum over its seed rows (``results.csv`` repeats the
    same share on every seed's row).
    """
    out = []
    for s in all_series:
        rounds = sorted({r["round"] for r in s.rows})
        per_round = {
            rd: {p: sum(r[p] for r in s.rows if r["round"] == rd) for p in PHASES} for rd in rounds
        }
        use = [rd for rd in rounds if rd >= 1] or rounds
        row = {"label": s.label, "rounds_averaged": len(use)}
        for p in PHASES:
            row[p] = float(np.mean([per_round[rd][p] for rd in use]))
        row["round_seconds"] = float(sum(row[p] for p in PHASES))
        row["round0_seconds"] = float(sum(per_round[0].values())) if 0 in per_round else ""
        row["wall_seconds"] = float(sum(sum(v.values()) for v in per_round.values()))
        out.append(row)
    return out


def _load_pool_labels(run: Run, cache: dict) -> tuple[np.ndarray | None, str]:
    """The pool's labels ``y_train`` of a run's dataset, or ``(None, why not)``."""
    if (run.config.get("python_objects") or {}).get("dataset"):
        return None, f"{run.name}: the dataset was given from Python, not by name"
    saved = run.config.get("dataset") or {}
    name = str(saved.get("name"))
    from jaxal.data import BUNDLED

    if not (name in BUNDLED or name.startswith("npz:")):
        return None, (
            f"{run.name}: dataset {name!r} is neither bundled ({', '.join(BUNDLED)}) "
            "nor npz:PATH; its labels are not loaded for a report"
        )
    key = json.dumps(saved, sort_keys=True)
    if key not in cache:
        from jaxal import data

        cfg = data.default_config()
        try:
            for k, v in saved.items():
                if k in cfg:
                    cfg[k] = v
            cache[key] = (np.asarray(data.load(cfg).y_train), "")
        except Exception as e:  # a note in the report, not a crash
            cache[key] = (None, f"{run.name}: could not load dataset {name!r}: {e}")
    return cache[key]


def _final_sets(s: Series) -> dict[int, np.ndarray] | None:
    """Per seed, the final labeled pool indices (``None``: no labeled_indices.npz)."""
    ind = s.run.indices
    if ind is None or f"{s.strategy}/order" not in ind:
        return None
    order = ind[f"{s.strategy}/order"]
    return {int(sd): order[i][order[i] >= 0] for i, sd in enumerate(ind["seeds"])}


def class_rows(all_series: Sequence[Series], notes: list[str]) -> tuple[list[dict], int]:
    """Per series: class fractions of the acquired labels (rounds ≥ 1), mean over
    seeds, plus one ``pool`` row per dataset; and the number of classes."""
    cache: dict = {}
    out, num_classes, pools_done = [], 0, set()
    for s in all_series:
        ind = s.run.indices
        if ind is None or f"{s.strategy}/order" not in ind:
            why = (
                f"{s.run.name}: no labeled_indices.npz (written when the run finishes)"
                if ind is None
                else f"{s.label}: not in labeled_indices.npz"
            )
            if why not in notes:
                notes.append(why)
            continue
        y, why = _load_pool_labels(s.run, cache)
        if y is None:
            if why not in notes:
                notes.append(why)
            continue
        order, rnd = ind[f"{s.strategy}/order"], ind[f"{s.strategy}/round"]
        if order.size and order.max() >= y.size:
            notes.append(f"{s.label}: pool indices beyond the dataset's {y.size} points")
            continue
        c = max(int(y.max()) + 1, num_classes)
        num_classes = c
        fracs, counts = [], []
        for i in range(order.shape[0]):
            pick = order[i][(order[i] >= 0) & (rnd[i] >= 1)]
            if pick.size:
                fracs.append(np.bincount(y[pick], minlength=c)[:c] / pick.size)
                counts.append(pick.size)
        if not fracs:
            notes.append(f"{s.label}: no labels acquired after the initial pool")
            continue
        dkey = json.dumps(s.run.config.get("dataset"), sort_keys=True)
        if dkey not in pools_done:
            pools_done.add(dkey)
            pool_name = "pool" if len(pools_done) == 1 else f"pool ({s.run.name})"
            out.append(
                {"label": pool_name, "acquired_per_seed": int(y.size), "fractions": _frac(y, c)}
            )
        out.append(
            {
                "label": s.label,
                "acquired_per_seed": float(np.mean(counts)),
                "fractions": np.mean(fracs, axis=0),
            }
        )
    for r in out:
        r["fractions"] = np.pad(r["fractions"], (0, num_classes - len(r["fractions"])))
    return out, num_classes


def _frac(y: np.ndarray, c: int) -> np.ndarray:
    return np.bincount(y, minlength=c)[:c] / max(1, y.size)


def overlap_matrix(all_series: Sequence[Series]) -> tuple[list[str], np.ndarray]:
    """Mean over shared seeds of the Jaccard index ``|A ∩ B| / |A ∪ B|`` of the
    final labeled sets, for every pair of series with labeled_indices.npz."""
    sets = [(s.label, _final_sets(s)) for s in all_series]
    sets = [(lab, d) for lab, d in sets if d is not None]
    n = len(sets)
    mat = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            a, b = sets[i][1], sets[j][1]
            vals = []
            for seed in sorted(set(a) & set(b)):
                union = np.union1d(a[seed], b[seed]).size
                inter = np.intersect1d(a[seed], b[seed]).size
                vals.append(inter / union if union else 1.0)
            if vals:
                mat[i, j] = float(np.mean(vals))
    return [lab for lab, _ in sets], mat


# --- figures ----------------------------------------------------------------------


def _plt():
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colors(n: int) -> list:
    """``n`` distinct colours, as in the run's own plot (``report.strategy_colours``)."""
    from jaxal.report import strategy_colours

    return strategy_colours(n)


def _facets(all_series: Sequence[Series]) -> tuple[list[tuple[str, list[Series]]], list[str]]:
    """Series grouped by the settings in which their runs differ (one group if none)."""
    runs = list(dict.fromkeys(id(s.run) for s in all_series))
    by_id = {id(s.run): s.run for s in all_series}
    keys = [k for k in differing_keys([by_id[i].config for i in runs]) if _is_setting(k)]
    if not keys:
        return [("", list(all_series))], []
    groups: dict[tuple, list[Series]] = {}
    for s in all_series:
        flat = flatten(s.run.config)
        groups.setdefault(tuple(flat.get(k, "—") for k in keys), []).append(s)
    out = []
    for values, members in groups.items():
        parts = [f"{k}={v}" for k, v in zip(keys, values, strict=True)]
        title = ", ".join(parts[:3]) + (", …" if len(parts) > 3 else "")
        out.append((title, members))
    return out, keys


def _save(fig, path: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    _plt().close(fig)
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return data


def plot_learning_curves(path: str, all_series: Sequence[Series]) -> tuple[bytes, list[str]]:
    """Mean ± std accuracy (%) over seeds vs labels; faceted when settings differ."""
    from matplotlib.ticker import PercentFormatter

    plt = _plt()
    groups, keys = _facets(all_series)
    if keys:  # the same strategy gets the same colour in every facet
        names = list(dict.fromkeys(s.strategy for s in all_series))
        color_of = dict(zip(names, colors(len(names)), strict=True))
        pick = lambda s: color_of[s.strategy]
    else:
        color_of = dict(zip([s.label for s in all_series], colors(len(all_series)), strict=True))
        pick = lambda s: color_of[s.label]
    ncol = min(3, len(groups))
    nrow = math.ceil(len(groups) / ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(5.2 * ncol, 3.8 * nrow), dpi=100, squeeze=False, sharey=True
    )
    handles = {}
    for ax, (title, members) in zip(axes.flat, groups, strict=False):
        for s in members:
            x, mean, std = s.mean_curve()
            c = pick(s)
            (line,) = ax.plot(x, 100 * mean, marker="o", ms=3, color=c, label=s.label)
            ax.fill_between(x, 100 * (mean - std), 100 * (mean + std), color=c, alpha=0.18)
            handles[s.strategy if keys else s.label] = line
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("number of labeled points")
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
    fig.tight_layout()
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        title="strategy" if keys else None,
    )
    return _save(fig, path), keys


def plot_time_split(path: str, rows: Sequence[dict]) -> bytes:
    """Stacked bars: mean seconds per round of each phase, per series."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(rows) + 2), 3.8), dpi=100)
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for p, c in zip(PHASES, colors(len(PHASES)), strict=True):
        v = np.array([r[p] for r in rows])
        ax.bar(x, v, bottom=bottom, color=c, label=p.removesuffix("_seconds"))
        bottom += v
    ax.set_xticks(x, [r["label"] for r in rows], rotation=30 if len(rows) > 3 else 0, ha="right")
    ax.set_ylabel("seconds per round (mean over rounds ≥ 1)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def _heatmap(path: str, mat: np.ndarray, rows: list[str], cols: list[str], xlabel: str, cbar):
    """``mat`` as an annotated heatmap; ``cbar="%"``: fractions shown as percentages."""
    plt = _plt()
    pct = cbar == "%"
    shown = 100 * mat if pct else mat
    # colour scale: 0 .. the largest percentage; a Jaccard index is always 0 .. 1
    hi = (float(np.nanmax(shown)) if np.isfinite(shown).any() else 0.0) if pct else 1.0
    hi = hi or 1.0
    fig, ax = plt.subplots(
        figsize=(max(4.5, 0.55 * len(cols) + 3), max(2.5, 0.4 * len(rows) + 1.5)), dpi=100
    )
    im = ax.imshow(shown, cmap="viridis", aspect="auto", vmin=0, vmax=hi)
    tilt = sum(len(c) + 2 for c in cols) > 40
    ax.set_xticks(
        range(len(cols)), cols, rotation=35 if tilt else 0, ha="right" if tilt else "center"
    )
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(xlabel)
    if mat.size <= 400:
        for (i, j), v in np.ndenumerate(shown):
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:.0f}" if pct else f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if v > 0.6 * hi else "white",
                )
    fig.colorbar(im, ax=ax, label="% of acquired labels" if pct else "Jaccard index")
    fig.tight_layout()
    return _save(fig, path)


# --- tables -----------------------------------------------------------------------


@dataclass
class Table:
    """A table three ways: formatted cells (markdown, HTML) and raw rows (CSV)."""

    name: str
    title: str
    columns: list[str]
    cells: list[list[str]]
    raw: list[dict]
    note: str = ""

    def markdown(self) -> str:
        esc = lambda t: str(t).replace("|", "\\|")
        lines = [f"## {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(esc(c) for c in self.columns) + " |")
        lines.append("|" + "|".join(" --- " for _ in self.columns) + "|")
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in self.cells]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in self.cells
        )
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return f'{note}<table id="table-{self.name}"><tr>{head}</tr>{body}</table>'

    def write(self, out_dir: str) -> None:
        with open(os.path.join(out_dir, f"{self.name}.md"), "w") as f:
            f.write(self.markdown())
        fields = list(dict.fromkeys(k for r in self.raw for k in r))
        with open(os.path.join(out_dir, f"{self.name}.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in self.raw:
                w.writerow({k: _csv_value(k, v) for k, v in r.items()})


def _csv_value(key: str, v):
    if isinstance(v, float | np.floating):
        if not np.isfinite(v):
            if key.startswith("labels_to_") and not key.endswith(("_mean", "_std")):
                return "not reached"
            return ""
        return repr(float(v))
    return v


def _pct(m: float, sd: float | None = None) -> str:
    if not np.isfinite(m):
        return "—"
    return f"{100 * m:.2f}" + (f" ± {100 * sd:.2f}" if sd is not None else "")


def _num(m: float, sd: float | None = None, fmt: str = ".1f") -> str:
    if not np.isfinite(m):
        return "—"
    return f"{m:{fmt}}" + (f" ± {sd:{fmt}}" if sd is not None else "")


def summary_table(rows: Sequence[dict], targets: Sequence[float]) -> Table:
    has_ref = any("labeling_efficiency_mean" in r for r in rows)
    cols = ["strategy", "seeds", "labels", "final accuracy %", "AULC %"]
    cols += [f"labels to {100 * t:g}%" for t in targets]
    if has_ref:
        cols += ["labeling efficiency ×", "gain over random (points)"]
    cells = []
    for r in rows:
        c = [r["label"], str(r["seeds"]), _num(float(r["final_labels"]), fmt=".0f")]
        c.append(
            f"{_pct(r['final_accuracy_mean'], r['final_accuracy_std'])} #{r['final_accuracy_rank']}"
        )
        c.append(f"{_pct(r['aulc_mean'], r['aulc_std'])} #{r['aulc_rank']}")
        for t in targets:
            k = _tkey(t)
            if np.isfinite(r[k]):
                spread = _num(r[f"{k}_seed_mean"], r[f"{k}_seed_std"])
                n = r[f"{k}_seeds_reached"]
                c.append(f"{r[k]:.1f} #{r[f'{k}_rank']} (seeds: {spread}, {n}/{r['seeds']})")
            else:
                c.append("not reached")
        if has_ref:
            if not r["random_reference"]:
                c += ["no random run", "no random run"]
            else:
                n = r["labeling_efficiency_seeds"]
                eff = _num(r["labeling_efficiency_mean"], r["labeling_efficiency_std"], ".2f")
                tail = "" if n == r["seeds"] else f" ({n}/{r['seeds']} seeds)"
                c.append(f"{eff} #{r['labeling_efficiency_rank']}{tail}")
                g = r["gain_over_random_mean"], r["gain_over_random_std"]
                c.append(f"{_pct(*g)} #{r['gain_over_random_rank']}")
        cells.append(c)
    note = (
        "Mean ± std over seeds of per-seed values; #k = rank (1 = best). Final accuracy: each "
        "seed's last round. AULC: trapezoid area under accuracy vs labels ÷ label range. "
        "Labels to a target: linear interpolation on the mean curve (seeds: the same per "
        "seed, over the seeds that reach it)."
    )
    if has_ref:
        note += (
            " Labeling efficiency: labels random needs to reach the strategy's final "
            "accuracy (interpolated on random's curve, same seed) ÷ labels the strategy used; "
            "seeds where random never reaches it are left out. Gain over random: final "
            "accuracy − random's accuracy at the same labels (same seed), in points."
        )
    return Table("summary", "Summary", cols, cells, list(rows), note)


# --- the report -------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee} .note{color:#555;font-size:13px}
h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
"""


def build_report(run_dirs: Sequence[str], out_dir: str, targets=(0.8, 0.9), title=None) -> dict:
    """Reads the runs and writes the report into ``out_dir``.

    Returns:
      ``{"html": path, "figures": [png paths], "tables": [names], "notes": [...]}``.

    Raises:
      ReportError: a folder that is not a workdir, or runs on different datasets.
    """
    names = _run_names(run_dirs)
    runs = [load_run(p, n) for p, n in zip(run_dirs, names, strict=True)]
    datasets = {r.dataset_name for r in runs}
    if len(datasets) > 1:
        which = ", ".join(f"{r.name}: {r.dataset_name}" for r in runs)
        raise ReportError(
            f"the runs use different datasets ({which}); a report compares runs on one dataset"
        )
    os.makedirs(out_dir, exist_ok=True)
    for stale in _OUTPUTS:  # an earlier report's files that this one may not write
        if os.path.exists(os.path.join(out_dir, stale)):
            os.remove(os.path.join(out_dir, stale))
    notes: list[str] = []
    series = make_series(runs)
    sections: list[tuple[str, str, str]] = []  # (id, title, html)
    tables: list[Table] = []
    figures: list[str] = []

    def figure(name: str, png: bytes, alt: str) -> str:
        figures.append(os.path.join(out_dir, f"{name}.png"))
        b64 = base64.b64encode(png).decode("ascii")
        return f'<img id="fig-{name}" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'

    # status
    st = status_rows(runs)
    st_cols = ["run", "strategy", "status", "seeds", "rounds", "labels", "diverged", "detail"]
    st_cells = [
        [
            r["run"],
            r["strategy"],
            r["status"],
            f"{r['seeds_found']}/{r['seeds_expected']}",
            f"{r['rounds_found']}/{r['rounds_expected'] or '?'}",
            f"{r['labels_found']}/{r['labels_expected'] or '?'}",
            str(r["diverged_rows"]),
            r["detail"],
        ]
        for r in st
    ]
    unfinished = [r for r in st if r["status"] != "complete"]
    st_note = (
        "Every run and strategy; rounds = fewest rounds any seed has. Unfinished ones are "
        "reported on the rounds they have."
        if unfinished
        else "Every run is complete."
    )
    tables.append(Table("status", "Status", st_cols, st_cells, st, st_note))
    sections.append(("status", "Status", tables[-1].html()))

    if series:
        png, keys = plot_learning_curves(os.path.join(out_dir, "learning_curves.png"), series)
        cap = (
            f"Faceted by {', '.join(keys)} (the settings in which the runs differ)."
            if keys
            else "All strategies on one axis."
        )
        body = f'<p class="note">{html.escape(cap)} Shaded: ± std over seeds.</p>'
        sections.append(
            ("learning-curves", "Learning curves", body + figure("learning_curves", png, cap))
        )

        summ = summarize(series, targets)
        tables.append(summary_table(summ, targets))
        sections.append(("summary", "Summary", tables[-1].html()))

        tr = time_rows(series)
        png = plot_time_split(os.path.join(out_dir, "time_split.png"), tr)
        t_cols = [
            "strategy",
            "rounds",
            "train s",
            "eval s",
            "score s",
            "select s",
            "per round s",
            "round 0 s",
            "total s",
        ]
        t_cells = [
            [r["label"], str(r["rounds_averaged"])]
            + [f"{r[p]:.3f}" for p in (*PHASES, "round_seconds")]
            + [
                f"{r['round0_seconds']:.2f}" if r["round0_seconds"] != "" else "—",
                f"{r['wall_seconds']:.2f}",
            ]
            for r in tr
        ]
        t_note = (
            "Mean wall seconds per round over rounds ≥ 1 (round 0 includes compilation and is "
            "shown apart); total = every round of the strategy."
        )
        tables.append(Table("time_split", "Time per round", t_cols, t_cells, tr, t_note))
        sections.append(
            (
                "time",
                "Time per round",
                tables[-1].html() + figure("time_split", png, "time split per round"),
            )
        )

        cnotes: list[str] = []
        crows, c = class_rows(series, cnotes)
        if any(r["label"] != "pool" and not r["label"].startswith("pool (") for r in crows):
            mat = np.stack([r["fractions"] for r in crows])
            png = _heatmap(
                os.path.join(out_dir, "class_distribution.png"),
                mat,
                [r["label"] for r in crows],
                [str(i) for i in range(c)],
                "class",
                "%",
            )
            c_cols = ["strategy", "acquired / seed"] + [f"class {i} %" for i in range(c)]
            c_cells = [
                [r["label"], f"{r['acquired_per_seed']:g}"]
                + [f"{100 * v:.1f}" for v in r["fractions"]]
                for r in crows
            ]
            c_raw = [
                {"label": r["label"], "acquired_per_seed": r["acquired_per_seed"]}
                | {f"class_{i}": float(v) for i, v in enumerate(r["fractions"])}
                for r in crows
            ]
            c_note = (
                "Class fractions of the labels each strategy acquired (rounds ≥ 1, the shared "
                "initial pool left out), mean over seeds; pool = the whole unlabeled pool."
            )
            if cnotes:
                c_note += " Skipped: " + "; ".join(cnotes) + "."
            tables.append(
                Table(
                    "class_distribution",
                    "Class distribution of acquired labels",
                    c_cols,
                    c_cells,
                    c_raw,
                    c_note,
                )
            )
            sections.append(
                (
                    "classes",
                    "Class distribution of acquired labels",
                    tables[-1].html() + figure("class_distribution", png, "class distribution"),
                )
            )
        else:
            why = "; ".join(cnotes) or "no labels were acquired"
            notes.append(f"class distribution skipped: {why}")
            sections.append(
                (
                    "classes",
                    "Class distribution of acquired labels",
                    f'<p class="note">Skipped: {html.escape(why)}.</p>',
                )
            )

        labels, mat = overlap_matrix(series)
        if labels:
            png = _heatmap(
                os.path.join(out_dir, "overlap.png"), mat, labels, labels, "strategy", "jaccard"
            )
            o_cells = [[a] + [_num(v, fmt=".3f") for v in mat[i]] for i, a in enumerate(labels)]
            o_raw = [
                {"label": a} | {b: float(mat[i, j]) for j, b in enumerate(labels)}
                for i, a in enumerate(labels)
            ]
            o_note = (
                "Mean over seeds of the Jaccard index |A ∩ B| / |A ∪ B| of the final labeled "
                "sets (initial pool included)."
            )
            missing = [s.label for s in series if s.label not in labels]
            if missing:
                o_note += f" Without labeled_indices.npz (unfinished): {', '.join(missing)}."
            tables.append(
                Table(
                    "overlap",
                    "Overlap of labeled pools",
                    ["strategy", *labels],
                    o_cells,
                    o_raw,
                    o_note,
                )
            )
            sections.append(
                (
                    "overlap",
                    "Overlap of labeled pools",
                    tables[-1].html() + figure("overlap", png, "labeled pool overlap"),
                )
            )
        else:
            notes.append("overlap skipped: no run has labeled_indices.npz (none finished)")
            sections.append(
                (
                    "overlap",
                    "Overlap of labeled pools",
                    '<p class="note">Skipped: no run has labeled_indices.npz.</p>',
                )
            )
    else:
        notes.append("no results.csv rows yet: only the status table is reported")

    if len(runs) > 1:
        diff = differing_keys([r.config for r in runs])
        flat = [flatten(r.config) for r in runs]
        d_cells = [[k] + [f.get(k, "—") for f in flat] for k in diff]
        d_raw = [
            {"key": k} | {r.name: f.get(k, "") for r, f in zip(runs, flat, strict=True)}
            for k in diff
        ]
        tables.append(
            Table(
                "config_diff",
                "Config differences",
                ["key", *[r.name for r in runs]],
                d_cells,
                d_raw,
                "" if diff else "The configs are identical.",
            )
        )
        body = tables[-1].html()
    else:
        body = '<p class="note">One run: nothing to compare.</p>'
    sections.append(("config", "Config differences", body))

    for t in tables:
        t.write(out_dir)
    heading = title or f"jaxal report: {', '.join(r.name for r in runs)}"
    runs_html = "".join(
        f"<li>{html.escape(r.name)}: {html.escape(os.path.abspath(r.path))} "
        f"(dataset {html.escape(r.dataset_name)}, {'finished' if r.done else 'not finished'})</li>"
        for r in runs
    )
    nav = " · ".join(f'<a href="#{i}">{html.escape(t)}</a>' for i, t, _ in sections)
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(heading)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(heading)}</h1><ul>{runs_html}</ul><p>{nav}</p>"
        + (f'<ul class="note">{notes_html}</ul>' if notes else "")
        + "".join(
            f'<section id="{i}"><h2>{html.escape(t)}</h2>{b}</section>' for i, t, b in sections
        )
        + "</body></html>\n"
    )
    html_path = os.path.join(out_dir, "index.html")
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(page)
    md = [f"# {heading}", ""] + [f"- {n}" for n in notes] + [""]
    md += [f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in figures] + [""]
    md += [t.markdown() for t in tables]
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return {
        "html": html_path,
        "figures": figures,
        "tables": [t.name for t in tables],
        "notes": notes,
    }


def _targets(text: str) -> list[float]:
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated accuracies in (0, 1], e.g. 0.8,0.9"
        ) from None
    if not vals or any(not 0 < v <= 1 for v in vals):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated accuracies in (0, 1], e.g. 0.8,0.9"
        )
    return vals


def main(argv: Sequence[str] | None = None) -> int:
    """``jaxal report RUN_DIR [RUN_DIR ...] --out REPORT_DIR [--targets 0.8,0.9]``."""
    parser = argparse.ArgumentParser(
        prog="jaxal report",
        description="Compare jaxal runs: one self-contained HTML page, PNG figures, "
        "markdown and CSV tables.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="jaxal workdirs")
    parser.add_argument("--out", required=True, metavar="REPORT_DIR", help="output folder")
    parser.add_argument(
        "--targets",
        type=_targets,
        default=[0.8, 0.9],
        help="target accuracies for 'labels to target', comma-separated (default 0.8,0.9)",
    )
    parser.add_argument("--title", default=None, help="page title")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        got = build_report(args.run_dirs, args.out, targets=args.targets, title=args.title)
    except ReportError as e:
        print(f"jaxal report: error: {e}", file=sys.stderr)
        return USAGE_EXIT
    for n in got["notes"]:
        print(f"jaxal report: note: {n}")
    print(
        f"jaxal report: wrote {got['html']} ({len(got['figures'])} figures, "
        f"tables {', '.join(got['tables'])} as .md and .csv)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
