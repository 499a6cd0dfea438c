"""Results as files, tables and plots: results.csv, labeled_indices.npz, learning_curve.png."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import numpy as np

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
    "diverged",
    "train_seconds",
    "eval_seconds",
    "score_seconds",
    "select_seconds",
)


def rows(strategy: str, seeds: Sequence[int], records: Sequence[RoundRecord]) -> list[dict]:
    """One CSV row per (seed, round). Phase times are the wall time of the phase
    for all seeds together divided by the number of seeds."""
    out = []
    s = len(seeds)
    for rec in records:
        for i, seed in enumerate(seeds):
            out.append(
                {
                    "strategy": strategy,
                    "seed": int(seed),
                    "round": rec.round,
                    "num_labeled": rec.num_labeled,
                    "test_accuracy": float(rec.test_accuracy[i]),
                    "test_nll": float(rec.test_nll[i]),
                    "train_epochs": int(rec.train_epochs[i]),
                    "train_accuracy": float(rec.train_accuracy[i]),
                    "diverged": int(rec.diverged[i]),
                    "train_seconds": rec.train_seconds / s,
                    "eval_seconds": rec.eval_seconds / s,
                    "score_seconds": rec.score_seconds / s,
                    "select_seconds": rec.select_seconds / s,
                }
            )
    return out


def write_csv(path: str, all_rows: Sequence[dict]) -> None:
    """Write rows atomically (temp file + rename): a crash never leaves half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in all_rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    os.replace(tmp, path)


def curves(all_rows: Sequence[dict]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per strategy: (num_labeled, mean accuracy, std accuracy) over seeds."""
    out = {}
    for strategy in dict.fromkeys(r["strategy"] for r in all_rows):
        sub = [r for r in all_rows if r["strategy"] == strategy]
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


def plot_learning_curves(path: str, all_rows: Sequence[dict], title: str = "") -> None:
    """Mean ± std test accuracy over seeds against the number of labels, per strategy."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for strategy, (n, mean, std) in curves(all_rows).items():
        ax.plot(n, mean, marker="o", ms=3, label=strategy)
        ax.fill_between(n, mean - std, mean + std, alpha=0.2)
    seeds = len({r["seed"] for r in all_rows})
    ax.set_xlabel("number of labeled points")
    ax.set_ylabel(f"test accuracy (mean ± std, {seeds} seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"  # atomic: a kill never leaves half a picture
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


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
    acc = rec.test_accuracy
    return (
        f"{strategy[:16]:>16s} r{rec.round:<3d} {rec.num_labeled:6d} labels  "
        f"acc {100 * acc.mean():5.1f} ± {100 * acc.std():4.1f}%  "
        f"fit {rec.train_seconds:5.2f}s score {rec.score_seconds:4.2f}s "
        f"select {rec.select_seconds:4.2f}s"
    )


def summary_table(all_rows: Sequence[dict]):
    """A rich Table: labels × strategy, mean ± std test accuracy over seeds."""
    from rich.table import Table

    cv = curves(all_rows)
    labels = sorted({int(n) for v in cv.values() for n in v[0]})
    seeds = len({r["seed"] for r in all_rows})
    table = Table(caption=f"test accuracy %, mean ± std over {seeds} seeds")
    table.add_column("labels", justify="right")
    for s in cv:
        table.add_column(s, justify="right")
    for n in labels:
        cells = []
        for ns, mean, std in cv.values():
            hit = np.nonzero(ns == n)[0]
            cells.append(f"{100 * mean[hit[0]]:.2f} ± {100 * std[hit[0]]:.2f}" if len(hit) else "")
        table.add_row(str(n), *cells)
    return table


def write_tensorboard(logdir: str, all_rows: Sequence[dict]) -> bool:
    """TensorBoard event files of the learning curves, one run per strategy.

    Scalars ``test_accuracy/mean``, ``test_accuracy/std`` and ``test_nll/mean``
    over seeds, with the number of labels as the step. Uses TensorBoard's own
    event writer (no TensorFlow needed); returns False when ``tensorboard``
    is not installed (``pip install 'jaxal[tfds]'``).
    """
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        return False
    for strategy, (labels, mean, std) in curves(all_rows).items():
        sub = [r for r in all_rows if r["strategy"] == strategy]
        nll = [
            np.mean([float(r["test_nll"]) for r in sub if int(r["num_labeled"]) == n])
            for n in labels
        ]
        writer = EventFileWriter(os.path.join(logdir, strategy))
        for i, n in enumerate(labels):
            values = [
                summary_pb2.Summary.Value(tag="test_accuracy/mean", simple_value=float(mean[i])),
                summary_pb2.Summary.Value(tag="test_accuracy/std", simple_value=float(std[i])),
                summary_pb2.Summary.Value(tag="test_nll/mean", simple_value=float(nll[i])),
            ]
            writer.add_event(
                event_pb2.Event(step=int(n), summary=summary_pb2.Summary(value=values))
            )
        writer.close()
    return True


if __name__ == "__main__":  # ``python -m jaxal.report RUN_DIR ... --out DIR``: the HTML report
    import sys

    from jaxal.report_html import main as _report_main

    sys.exit(_report_main(sys.argv[1:]))
