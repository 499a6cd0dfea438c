"""Results as files, tables and plots: results.csv, labeled_indices.npz, learning_curve.png."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import numpy as np

from jaxal.grid import Lanes, series_name
from jaxal.loop import RoundRecord

COLUMNS = (
    "strategy",
    "seed",
    "round",
    "num_labeled",
    "test_accuracy",
    "test_nll",
    "train_epochs",
    "train_accuracy",
    "val_accuracy",
    "val2_accuracy",
    "queried",
    "stopped",
    "diverged",
    "train_seconds",
    "eval_seconds",
    "scored",
    "score_seconds",
    "select_seconds",
)


def rows(strategy: str, seeds, records: Sequence[RoundRecord]) -> list[dict]:
    """One CSV row per (lane, round): per seed, or per (grid setting, seed) when
    ``seeds`` is a :class:`~jaxal.grid.Lanes` with a grid (then with the columns
    ``setting``, ``learning_rate``, ``weight_decay``, ``momentum``). Phase times
    are the wall time of the phase for all lanes together divided by their number.
    ``scored``: unlabeled pool points the strategy scored that round. With
    ``train.retrains = R > 1``, ``test_accuracy`` is the replicas' mean and the
    columns ``test_accuracy_r0 .. r{R-1}`` hold each replica's."""
    lanes = seeds if isinstance(seeds, Lanes) else None
    lane_seeds = seeds.seed if lanes is not None else seeds
    out = []
    s = len(lane_seeds)
    nan = np.full(s, np.nan)
    for rec in records:
        labels = rec.labels if rec.labels is not None else np.full(s, rec.num_labeled)
        for i, seed in enumerate(lane_seeds):
            if rec.active is not None and not rec.active[i]:
                continue  # the lane stopped in an earlier round (stop.patience)
            out.append(
                {
                    "strategy": strategy,
                    **(lanes.columns(i) if lanes is not None else {}),
                    "seed": int(seed),
                    "round": rec.round,
                    "num_labeled": int(labels[i]),
                    "test_accuracy": float(rec.test_accuracy[i]),
                    "test_nll": float(rec.test_nll[i]),
                    "train_epochs": int(rec.train_epochs[i]),
                    "train_accuracy": float(rec.train_accuracy[i]),
                    "val_accuracy": float(_or(rec.val_accuracy, nan)[i]),
                    "val2_accuracy": float(_or(rec.val2_accuracy, nan)[i]),
                    "queried": int(_or(rec.queried, np.zeros(s, int))[i]),
                    "stopped": int(_or(rec.stopped, np.zeros(s, int))[i]),
                    "diverged": int(rec.diverged[i]),
                    "train_seconds": rec.train_seconds / s,
                    "eval_seconds": rec.eval_seconds / s,
                    "scored": int(_or(rec.scored, np.zeros(s, int))[i]),
                    "score_seconds": rec.score_seconds / s,
                    "select_seconds": rec.select_seconds / s,
                    **_replica_columns(rec, i),
                }
            )
    return out


def _replica_columns(rec: RoundRecord, lane: int) -> dict:
    """``test_accuracy_r<j>`` per retrain replica j (none with ``train.retrains = 1``)."""
    reps = getattr(rec, "test_accuracy_replicas", None)
    if reps is None:
        return {}
    return {f"test_accuracy_r{j}": float(a) for j, a in enumerate(reps[lane])}


def _or(a, default):
    return default if a is None else a


def write_csv(path: str, all_rows: Sequence[dict]) -> None:
    """Write rows atomically (temp file + rename): a crash never leaves half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        extra = [k for k in dict.fromkeys(k for r in all_rows for k in r) if k not in COLUMNS]
        w = csv.DictWriter(f, fieldnames=[*COLUMNS[:1], *extra, *COLUMNS[1:]])
        w.writeheader()
        for r in all_rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    os.replace(tmp, path)


def curves(all_rows: Sequence[dict]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per series (strategy, or ``strategy@setting`` in a grid run): (num_labeled,
    mean accuracy, std accuracy) over seeds."""
    out = {}
    for strategy in dict.fromkeys(series_name(r) for r in all_rows):
        sub = [r for r in all_rows if series_name(r) == strategy]
        labels = sorted({int(r["num_labeled"]) for r in sub})
        acc = [
            [float(r["test_accuracy"]) for r in sub if int(r["num_labeled"]) == n] for n in labels
        ]
        out[strategy] = (
            np.array(labels),
            np.array([np.mean(a) for a in acc]),
            np.array([np.std(a) for a in acc]),
        )
    return out


BANDS = ("std", "sem", "ci95")


def strategy_colours(n: int) -> list:
    """``n`` distinct colours: tab10, then tab20's light shades, then an hsv sweep."""
    import matplotlib

    base = list(matplotlib.colormaps["tab10"].colors)
    base += list(matplotlib.colormaps["tab20"].colors[1::2])
    if n <= len(base):
        return base[:n]
    hsv = matplotlib.colormaps["hsv"]
    return base + [hsv(i / (n - len(base) + 1)) for i in range(n - len(base))]


def plot_learning_curves(
    path: str, all_rows: Sequence[dict], title: str = "", band: str = "std"
) -> None:
    """Mean test accuracy (%) over seeds against the number of labels, per strategy,
    with a ``band`` of ``std``, ``sem`` (standard error) or ``ci95`` (95% t
    interval); written as ``path`` (PNG) and beside it as PDF and SVG."""
    if band not in BANDS:
        raise ValueError(f"band={band!r}; allowed: {', '.join(BANDS)}")
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    cv = curves(all_rows)
    seeds = len({r["seed"] for r in all_rows})
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    for colour, (strategy, (n, mean, std)) in zip(
        strategy_colours(len(cv)), cv.items(), strict=True
    ):
        spread = std * np.sqrt(seeds / max(seeds - 1, 1))  # sample std over seeds
        if band == "sem":
            spread = spread / np.sqrt(seeds)
        elif band == "ci95":
            spread = spread / np.sqrt(seeds) * stats.t.ppf(0.975, max(seeds - 1, 1))
        elif band == "std":
            spread = std
        ax.plot(n, 100 * mean, marker="o", ms=3, label=strategy, color=colour)
        ax.fill_between(n, 100 * (mean - spread), 100 * (mean + spread), alpha=0.2, color=colour)
    what = {"std": "± std", "sem": "± standard error", "ci95": "95% CI"}[band]
    ax.set_xlabel("number of labeled points")
    ax.set_ylabel(f"test accuracy % (mean, {what}, {seeds} seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    root, ext = os.path.splitext(path)
    for suffix in (ext, ".pdf", ".svg"):  # atomic: a kill never leaves half a picture
        tmp = f"{root}.tmp{suffix}"
        fig.savefig(tmp, bbox_inches="tight")
        os.replace(tmp, root + suffix)
    plt.close(fig)


def write_labeled_indices(
    path: str, orders: dict[str, np.ndarray], rounds: dict[str, np.ndarray], seeds: Sequence[int]
) -> None:
    """``{strategy}/order`` ``[S, budget]`` pool indices in acquisition order and
    ``{strategy}/round`` ``[S, budget]`` the round each was labeled (0 = initial)."""
    arrays = {"seeds": np.asarray(seeds)}
    for name in orders:
        arrays[f"{name}/order"] = np.asarray(orders[name])
        arrays[f"{name}/round"] = np.asarray(rounds[name])
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def format_row(strategy: str, rec: RoundRecord) -> str:
    """The console line of a round. Its phase seconds are wall time for all seeds
    together (``results.csv`` holds them divided by the number of seeds)."""
    acc = rec.test_accuracy
    return (
        f"{strategy[:16]:>16s} r{rec.round:<3d} {rec.num_labeled:6d} labels  "
        f"acc {100 * acc.mean():5.1f} ± {100 * acc.std():4.1f}%  "
        f"wall: fit {rec.train_seconds:5.2f}s score {rec.score_seconds:4.2f}s "
        f"select {rec.select_seconds:4.2f}s"
    )


def _cell(curve, n) -> str:
    ns, mean, std = curve
    hit = np.nonzero(ns == n)[0]
    return f"{100 * mean[hit[0]]:.2f} ± {100 * std[hit[0]]:.2f}" if len(hit) else ""


def _spread(values: list, k: int) -> list:
    """``k`` of ``values``, evenly spaced, first and last included."""
    if len(values) <= k:
        return list(values)
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, k)).astype(int))
    return [values[i] for i in idx]


_CELL = 16  # "97.20 ± 0.30" plus padding and a border


def summary_table(all_rows: Sequence[dict], width: int = 80):
    """A rich Table of mean ± std test accuracy (%) over seeds that fits ``width``.

    Labels × strategy while the strategies fit side by side; otherwise
    strategy × labels, with as many label counts (evenly spaced, the first and
    the final budget always included) as fit, so it stays readable in an
    80-column log at any number of strategies.
    """
    from rich.table import Table

    cv = curves(all_rows)
    labels = sorted({int(n) for v in cv.values() for n in v[0]})
    seeds = len({r["seed"] for r in all_rows})
    caption = f"test accuracy %, mean ± std over {seeds} seeds"
    name_width = min(28, max([len(s) for s in cv] + [8]))
    # labels x strategy while it fits: a column is as wide as its cell or its name
    if 10 + sum(max(len(s), _CELL - 4) + 4 for s in cv) <= width:
        table = Table(caption=caption)
        table.add_column("labels", justify="right", no_wrap=True)
        for s in cv:
            table.add_column(s, justify="right", no_wrap=True)
        for n in labels:
            table.add_row(str(n), *[_cell(c, n) for c in cv.values()])
        return table
    shown = _spread(labels, max(1, (width - name_width - 4) // _CELL))
    left_out = "" if shown == labels else ", some left out"
    table = Table(caption=f"{caption}; columns: number of labels{left_out}")
    table.add_column("strategy", no_wrap=True, max_width=name_width, overflow="ellipsis")
    for n in shown:
        table.add_column(str(n), justify="right", no_wrap=True)
    for s, c in cv.items():
        table.add_row(s, *[_cell(c, n) for n in shown])
    return table


if __name__ == "__main__":  # ``python -m jaxal.report RUN_DIR ... --out DIR``: the HTML report
    import sys

    from jaxal.reporting import main as _report_main

    sys.exit(_report_main(sys.argv[1:]))
